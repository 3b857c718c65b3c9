"""Is the installed torch the one fusedopt's extension was compiled against?

fusedopt/_C is a C++ extension linked against libtorch, whose C++ ABI changes between releases.
Loaded under another torch it fails to dlopen (undefined symbol) or, worse, loads and misbehaves.
setup.py records the torch it built against in fusedopt/_build_info.py (a generated, git-ignored
file); ``check()`` compares it with the running torch BEFORE ``_C`` is imported, and
``load_extension()`` turns a failed dlopen into the same clear ImportError.

What is compared (what matters for the ABI):
  * the release (``2.13.0`` in ``2.13.0+cpu``; a dev/source build's local part such as
    ``+git1a2b3c4`` counts as part of the release, since two such builds differ);
  * for builds that contain the CUDA backend, the CUDA version of torch (``torch.version.cuda``:
    a cu130 build needs libc10_cuda of a CUDA 13.0 torch). A CPU-only build loads under the CPU
    and the CUDA flavour of the same release alike (it links only libtorch_cpu/libc10).
This module imports nothing but the standard library and torch, and never imports ``_C``.
"""
from __future__ import annotations

import importlib
import re
from typing import Optional

_FLAVOUR_TAG = re.compile(r"^(cpu|cu\d+|rocm[\d.]+|xpu)$")


def release(version: str) -> str:
    """``2.13.0+cpu`` -> ``2.13.0``; ``2.14.0a0+git1a2b3c4`` -> ``2.14.0a0+git1a2b3c4``."""
    public, _, local = version.partition("+")
    return public if not local or _FLAVOUR_TAG.match(local) else version


def rebuild_hint(runtime_version: str, built_version: Optional[str]) -> str:
    alt = f", or install the torch it was built for (`pip install torch=={release(built_version)}`)" \
        if built_version else ""
    return ("Reinstall fusedopt built against the installed torch: from a source checkout, "
            "`pip install --no-build-isolation --force-reinstall --no-deps .` (build isolation "
            f"would compile against another torch){alt}.")


def mismatch(built_version: str, built_cuda: Optional[str], cuda_backend: bool,
             runtime_version: str, runtime_cuda: Optional[str]) -> Optional[str]:
    """The ImportError message for a build/runtime torch mismatch, or None when they match."""
    why = None
    if release(built_version) != release(runtime_version):
        why = "a different torch release"
    elif cuda_backend and built_cuda != runtime_cuda:
        why = (f"a torch for CUDA {runtime_cuda or 'none (CPU-only torch)'} while its CUDA backend "
               f"needs the torch for CUDA {built_cuda}")
    if why is None:
        return None
    return (f"fusedopt's native extension was built against torch {built_version} "
            f"(CUDA {built_cuda or 'none'}), but torch {runtime_version} "
            f"(CUDA {runtime_cuda or 'none'}) is installed: {why}, whose C++ ABI the extension "
            f"cannot use. {rebuild_hint(runtime_version, built_version)}")


def _recorded() -> Optional[dict]:
    try:
        info = importlib.import_module("fusedopt._build_info")
    except ImportError:
        return None  # a tree that was never built with this setup.py
    return {"torch_version": info.torch_version, "torch_cuda": info.torch_cuda,
            "cuda_backend": info.cuda_backend}


def check() -> None:
    """Raise ImportError if the running torch is not the one the extension was built against."""
    import torch

    rec = _recorded()
    if rec is None:
        return
    msg = mismatch(rec["torch_version"], rec["torch_cuda"], rec["cuda_backend"],
                   torch.__version__, torch.version.cuda)
    if msg:
        raise ImportError(msg)


_LOAD_ERRORS = ("undefined symbol", "cannot open shared object file", "version `")


def load_extension():
    """``check()``, then import fusedopt._C; a dlopen failure becomes a clear ImportError."""
    import torch

    check()
    try:
        return importlib.import_module("fusedopt._C")
    except (ImportError, OSError) as e:
        text = str(e)
        rec = _recorded()
        built = rec["torch_version"] if rec else None
        if isinstance(e, ModuleNotFoundError) and e.name == "fusedopt._C":
            raise ImportError(
                "fusedopt's native extension (fusedopt._C) is not built. "
                + rebuild_hint(torch.__version__, None)) from e
        if any(s in text for s in _LOAD_ERRORS):
            raise ImportError(
                f"fusedopt's native extension failed to load under torch {torch.__version__} "
                f"(CUDA {torch.version.cuda or 'none'}); it was built against torch "
                f"{built or 'unknown (no fusedopt/_build_info.py)'}: {text}. "
                + rebuild_hint(torch.__version__, built)) from e
        raise


def check_loaded(ext) -> None:
    """After loading: the release compiled into _C (TORCH_VERSION, no local tag) must match too
    (catches a _C that is newer or older than _build_info.py, e.g. a copied .so)."""
    import torch

    built = getattr(ext, "torch_version", None)
    runtime = re.match(r"\d+\.\d+\.\d+", torch.__version__)
    if built and runtime and built != runtime.group(0):
        raise ImportError(
            f"fusedopt's native extension {ext.__file__} was built against torch {built}, but "
            f"torch {torch.__version__} is installed. {rebuild_hint(torch.__version__, built)}")
