"""Loads the op library (which registers ``torch.ops.fusedopt.*``) and adds the fake (meta)
implementations torch.compile needs. Every op either mutates its tensor lists in place and
returns nothing, or returns a new tensor (norm ops)."""
from __future__ import annotations

import contextlib

import torch

from . import _abi

# Loading the op library registers the ops with the dispatcher; fusedopt/_abi.py first checks
# that this torch can host it (stable ABI of torch >= 2.10) and turns a failure into an
# ImportError naming the versions and the fix.
_LIBRARY = _abi.load_extension()

ops = torch.ops.fusedopt


class _Native:
    """Build information and the process-wide controls of the op library (its ``_``-prefixed
    ops: the library has no Python module of its own)."""

    __file__ = _LIBRARY

    def __init__(self):
        info = dict(line.split("=", 1) for line in ops._build_info().splitlines())
        self.__version__ = info["version"]
        self.torch_built_against = info["torch_built_against"]
        self.torch_version = _abi.release(self.torch_built_against)
        self.cuda_compiled = info["cuda_compiled"] == "1"
        self.cuda_emulated_compiled = info["cuda_emulated_compiled"] == "1"

    @staticmethod
    def simd_level() -> str:
        return ops._simd_level()

    @staticmethod
    def set_simd_level(name: str) -> bool:
        return ops._set_simd_level(name)

    @staticmethod
    def available_simd_levels() -> str:
        return ops._available_simd_levels()

    @staticmethod
    def simd_level_env_problem() -> str:
        return ops._simd_level_env_problem()

    @staticmethod
    def set_cpu_route(name: str) -> None:
        ops._set_cpu_route(name)

    @staticmethod
    def get_cpu_route() -> str:
        return ops._get_cpu_route()


_C = _Native()

_MUTATING_OPS = ("adam_", "sgd_", "lion_", "lamb_", "lars_")


def _register_fakes() -> None:
    for name in _MUTATING_OPS:
        # In-place list ops: nothing to allocate, shapes are unchanged.
        torch.library.register_fake(f"fusedopt::{name}")(lambda *args, **kwargs: None)

    @torch.library.register_fake("fusedopt::l2_norms")
    def _l2_norms_fake(tensors, grad_scale):
        device = tensors[0].device if len(tensors) else torch.device("cpu")
        return torch.empty((len(tensors),), dtype=torch.float32, device=device)

    @torch.library.register_fake("fusedopt::lamb_moments_")
    def _lamb_moments_fake(params, *args):
        device = params[0].device if len(params) else torch.device("cpu")
        return torch.empty((2 * len(params),), dtype=torch.float64, device=device)

    torch.library.register_fake("fusedopt::lamb_apply_")(lambda *args, **kwargs: None)

    @torch.library.register_fake("fusedopt::sums_of_squares")
    def _sums_of_squares_fake(tensors, scaled, grad_scale):
        first = list(tensors) + list(scaled)
        device = first[0].device if first else torch.device("cpu")
        return torch.empty((len(tensors) + len(scaled),), dtype=torch.float64, device=device)

    @torch.library.register_fake("fusedopt::global_l2_norm")
    def _global_l2_norm_fake(tensors, grad_scale):
        device = tensors[0].device if len(tensors) else torch.device("cpu")
        return torch.empty((), dtype=torch.float32, device=device)


_register_fakes()


def _init_simd_level_from_env() -> None:
    # FUSEDOPT_CPU_ISA forces a lower CPU SIMD level. One this CPU cannot run, or a typo, warns
    # (naming the levels available) and keeps the best level: all levels give the same bits.
    problem = _C.simd_level_env_problem()
    if problem:
        import warnings

        warnings.warn(problem, RuntimeWarning, stacklevel=3)
        _C.set_simd_level(available_simd_levels()[-1])


def available_simd_levels() -> list:
    """CPU SIMD levels this machine can run, lowest first (``FUSEDOPT_CPU_ISA`` picks one)."""
    return _C.available_simd_levels().split(", ")


_init_simd_level_from_env()


@contextlib.contextmanager
def simd_level(name: str):
    """Run the CPU kernels at SIMD level ``name`` inside the ``with`` block (the process-wide
    level is restored after it). For benchmarks and tests: every level gives the same bits."""
    levels = available_simd_levels()
    if name not in levels:
        raise ValueError(f"simd_level: {name!r} is not a CPU SIMD level this machine can run; "
                         f"choose from {', '.join(levels)}")
    previous = _C.simd_level()
    _C.set_simd_level(name)
    try:
        yield name
    finally:
        _C.set_simd_level(previous)


def _build_info_attr(name, default):
    try:
        from . import _build_info
    except ImportError:  # built by an older setup.py
        return default
    return getattr(_build_info, name, default)


def build_info() -> dict:
    """What this build of fusedopt contains and which CPU SIMD level is in use."""
    return {
        "version": _C.__version__,
        "torch_built_against": _C.torch_built_against,
        "torch_runtime": torch.__version__,
        "backends": ["cpu"]
        + (["cuda"] if _C.cuda_compiled else [])
        + (["cuda-emulated"] if _C.cuda_emulated_compiled else []),
        "cuda_compiled": bool(_C.cuda_compiled),
        "cuda_archs": _build_info_attr("cuda_archs", []),
        "cuda_available": bool(_C.cuda_compiled and torch.cuda.is_available()),
        "cpu_simd_level": _C.simd_level(),
        "cpu_simd_levels_available": available_simd_levels(),
        "cpu_threads": torch.get_num_threads(),
    }


# ---- backend selection for CPU tensors --------------------------------------------------------
# CPU tensors normally run on the CPU backend. A build with the emulated CUDA backend can route
# them through the CUDA kernel sources running on the SIMT emulator instead (test use): set
# FUSEDOPT_BACKEND=cuda-emulated in the environment, or call set_backend().

def available_backends() -> list:
    """Backends usable for CPU tensors in this build (``cuda`` is chosen by tensor device)."""
    return ["cpu"] + (["cuda-emulated"] if _C.cuda_emulated_compiled else [])


def get_backend() -> str:
    return _C.get_cpu_route()


def set_backend(name: str) -> None:
    if name not in available_backends():
        raise ValueError(
            f"fusedopt backend {name!r} is not available in this build (available: "
            f"{available_backends()}); the cuda-emulated backend needs a build with "
            "FUSEDOPT_EMULATED=1 (see README)")
    _C.set_cpu_route(name)


def _init_backend_from_env() -> None:
    import os

    name = os.environ.get("FUSEDOPT_BACKEND")
    if name:
        set_backend(name)


_init_backend_from_env()
