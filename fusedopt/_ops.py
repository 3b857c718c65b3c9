"""Loads the op library (which registers ``torch.ops.fusedopt.*``) and adds the fake (meta)
implementations torch.compile needs. Every op either mutates its tensor lists in place and
returns nothing, or returns a new tensor (norm ops)."""
from __future__ import annotations

import contextlib
import os

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


_C = _Native()

def _register_fakes(namespace: str) -> None:
    """The fake (meta) implementations torch.compile needs, for the ops of ``namespace``."""
    lib = getattr(torch.ops, namespace)
    for line in lib._declarations().splitlines():
        name = line.split()[0].split("=", 1)[1]
        if "extras=" in line and int(line.split("extras=")[1].split()[0]) & 8:  # NORM_SUMS_OUT
            def _sums_fake(params, *args, **kwargs):
                device = params[0].device if len(params) else torch.device("cpu")
                return torch.empty((2 * len(params),), dtype=torch.float64, device=device)
            torch.library.register_fake(f"{namespace}::{name}")(_sums_fake)
        else:
            # In-place list ops: nothing to allocate, shapes are unchanged.
            torch.library.register_fake(f"{namespace}::{name}")(lambda *args, **kwargs: None)

    @torch.library.register_fake(f"{namespace}::l2_norms")
    def _l2_norms_fake(tensors, grad_scale=None):
        device = tensors[0].device if len(tensors) else torch.device("cpu")
        return torch.empty((len(tensors),), dtype=torch.float32, device=device)

    @torch.library.register_fake(f"{namespace}::sums_of_squares")
    def _sums_of_squares_fake(tensors, scaled, grad_scale=None):
        first = list(tensors) + list(scaled)
        device = first[0].device if first else torch.device("cpu")
        return torch.empty((len(tensors) + len(scaled),), dtype=torch.float64, device=device)

    @torch.library.register_fake(f"{namespace}::global_l2_norm")
    def _global_l2_norm_fake(tensors, grad_scale=None):
        device = tensors[0].device if len(tensors) else torch.device("cpu")
        return torch.empty((), dtype=torch.float32, device=device)


_register_fakes("fusedopt")


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
        + (["cuda-emulated"] if "cuda-emulated" in available_backends() else []),
        "cuda_compiled": bool(_C.cuda_compiled),
        "cuda_archs": _build_info_attr("cuda_archs", []),
        "cuda_available": bool(_C.cuda_compiled and torch.cuda.is_available()),
        "cpu_simd_level": _C.simd_level(),
        "cpu_simd_levels_available": available_simd_levels(),
        "cpu_threads": torch.get_num_threads(),
    }


# ---- backend selection for CPU tensors --------------------------------------------------------
# CPU tensors normally run on the CPU backend (torch.ops.fusedopt). A build with
# FUSEDOPT_EMULATED=1 also has the test-only op library fusedopt/_emulated.abi3.so, whose ops
# (torch.ops.fusedopt_emulated, the same schemas) run the CUDA kernel sources on the SIMT
# emulator. It is loaded only when asked for: FUSEDOPT_BACKEND=cuda-emulated in the environment,
# or set_backend("cuda-emulated"). The optimizers then call that namespace for CPU tensors, so
# the dispatcher (and a profiler, or torch.compile's graph) sees which backend runs.

_EMULATED_LIBRARY = os.path.join(os.path.dirname(_LIBRARY), "_emulated.abi3.so")
_cpu_ops = ops  # the op namespace CPU tensors go to


def available_backends() -> list:
    """Backends usable for CPU tensors in this build (``cuda`` is chosen by tensor device)."""
    return ["cpu"] + (["cuda-emulated"] if os.path.exists(_EMULATED_LIBRARY) else [])


def get_backend() -> str:
    return "cpu" if _cpu_ops is ops else "cuda-emulated"


def _emulated_ops():
    if not hasattr(torch.ops, "fusedopt_emulated") or \
            not hasattr(torch.ops.fusedopt_emulated, "_declarations"):
        torch.ops.load_library(_EMULATED_LIBRARY)
        _register_fakes("fusedopt_emulated")
    return torch.ops.fusedopt_emulated


def set_backend(name: str) -> None:
    global _cpu_ops
    if name not in available_backends():
        raise ValueError(
            f"fusedopt backend {name!r} is not available in this build (available: "
            f"{available_backends()}); the cuda-emulated backend needs a build with "
            "FUSEDOPT_EMULATED=1 (see README)")
    _cpu_ops = ops if name == "cpu" else _emulated_ops()


def ops_for(device: torch.device):
    """The op namespace for tensors on ``device``: the selected backend's for CPU tensors,
    torch.ops.fusedopt for CUDA tensors."""
    return _cpu_ops if device.type == "cpu" else ops


def _init_backend_from_env() -> None:
    name = os.environ.get("FUSEDOPT_BACKEND")
    if name:
        set_backend(name)


_init_backend_from_env()
