"""fusedopt: fused multi-tensor optimizers for PyTorch (CUDA kernels and a fast CPU backend)."""
from ._version import __version__
from ._ops import _C  # build information and controls of the op library (not a module)
from ._ops import (available_backends, available_simd_levels, build_info, get_backend, ops,
                   set_backend, simd_level)
from .optimizers import FusedAdam, FusedAdamW, FusedLAMB, FusedLARS, FusedLion, FusedSGD

__all__ = ["FusedAdam", "FusedAdamW", "FusedLAMB", "FusedLARS", "FusedLion", "FusedSGD",
           "build_info", "ops", "available_backends", "available_simd_levels", "get_backend",
           "set_backend", "simd_level", "__version__"]
