"""Loads fusedopt's op library and checks that the running torch can host it.

fusedopt/_C.abi3.so is an op library on the LibTorch stable ABI (csrc/torch, compiled with
TORCH_TARGET_VERSION = 2.10): it calls torch only through the stable C shim, so one build loads
under every torch >= 2.10, whatever release it was compiled against. It has no Python API (it is
loaded with ``torch.ops.load_library``, which registers the ops), so it does not depend on the
Python version either. What can still go wrong, each turned into an ImportError that names the
versions and the fix:
  * a torch older than 2.10 (no stable ABI of that level);
  * a build with the CUDA backend under a torch without CUDA (the library needs libtorch_cuda and
    the CUDA runtime of a CUDA build of torch);
  * the library missing (a source tree that was never built) or failing to load.
This module imports nothing but the standard library and torch.
"""
from __future__ import annotations

import importlib
import os
import re
from typing import Optional

MIN_TORCH = (2, 10)
_HERE = os.path.dirname(os.path.abspath(__file__))


def release(version: str) -> str:
    """``2.13.0+cpu`` -> ``2.13.0``."""
    return version.partition("+")[0]


def _release_tuple(version: str):
    m = re.match(r"(\d+)\.(\d+)", version)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def rebuild_hint() -> str:
    return ("From a source checkout, `pip install --no-build-isolation --force-reinstall "
            "--no-deps .` builds fusedopt against the installed torch (build isolation would "
            "compile against another torch).")


def unsupported(runtime_version: str, runtime_cuda: Optional[str], cuda_backend: bool,
                built_version: Optional[str]) -> Optional[str]:
    """The ImportError message when this torch cannot host the op library, or None."""
    need = f"{MIN_TORCH[0]}.{MIN_TORCH[1]}"
    built = f"built against torch {built_version}" if built_version else "built"
    if _release_tuple(runtime_version) < MIN_TORCH:
        return (f"fusedopt's op library ({built}) uses the LibTorch stable ABI of torch {need}, "
                f"but torch {runtime_version} is installed: install torch >= {need} "
                f"(`pip install 'torch>={need}'`).")
    if cuda_backend and runtime_cuda is None:
        return (f"this fusedopt build ({built}) contains the CUDA backend, which needs a CUDA "
                f"build of torch, but torch {runtime_version} has no CUDA: install a CUDA "
                f"build of torch >= {need}, or a CPU build of fusedopt. {rebuild_hint()}")
    return None


def _recorded() -> Optional[dict]:
    try:
        info = importlib.import_module("fusedopt._build_info")
    except ImportError:
        return None  # a tree that was never built with this setup.py
    return {"torch_version": info.torch_version, "torch_cuda": info.torch_cuda,
            "cuda_backend": info.cuda_backend}


def check() -> None:
    """Raise ImportError if the running torch cannot host the op library (before loading it)."""
    import torch

    rec = _recorded() or {}
    msg = unsupported(torch.__version__, torch.version.cuda, bool(rec.get("cuda_backend")),
                      rec.get("torch_version"))
    if msg:
        raise ImportError(msg)


def library_path() -> Optional[str]:
    """fusedopt/_C.abi3.so (setup.py names it so: py_limited_api); an older build's
    Python-version-tagged _C.cpython-*.so is not this library and is ignored."""
    path = os.path.join(_HERE, "_C.abi3.so")
    return path if os.path.exists(path) else None


def load_extension() -> str:
    """``check()``, then load the op library (registering torch.ops.fusedopt.*); returns its path.
    A failed load becomes an ImportError naming the torch versions and the fix."""
    import torch

    check()
    path = library_path()
    if path is None:
        raise ImportError("fusedopt's op library (fusedopt/_C.abi3.so) is not built. " + rebuild_hint())
    try:
        torch.ops.load_library(path)
    except OSError as e:
        rec = _recorded()
        built = rec["torch_version"] if rec else "unknown (no fusedopt/_build_info.py)"
        raise ImportError(
            f"fusedopt's op library {path} failed to load under torch {torch.__version__} "
            f"(CUDA {torch.version.cuda or 'none'}); it was built against torch {built}: {e}. "
            + rebuild_hint()) from e
    return path
