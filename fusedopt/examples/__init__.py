"""Runnable examples (python -m fusedopt.examples.<name>)."""
