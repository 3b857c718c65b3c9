#!/usr/bin/env bash
# The on-GPU check of the CUDA backend (issue 11; docs/kernels.md "Measured on a GPU"):
#   tools/gpu_check.sh [--budget-s 480] [--out DIR] [--dry-run]
# from the repository root, on a machine with a GPU, torch (CUDA build), nvcc and
# compute-sanitizer. It builds the extension for the local GPU only, runs the suite's GPU tests
# (pytest -m gpu), the GPU benchmark and compute-sanitizer memcheck/racecheck, and writes
# gpu_check.json + summary.md under DIR (default gpu_check_results/<UTC time>); the summary is
# printed last. --dry-run checks the script here (no GPU): what needs one says "no GPU".
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-python3}" tools/gpu_check.py "$@"
