"""Builds fusedopt's native extension against the torch that is installed.

Install with ``pip install --no-build-isolation .`` (or ``-e .``): build isolation would compile
against a freshly downloaded torch instead of the one that will import the extension.

Environment knobs:
  FUSEDOPT_CUDA=auto|0|1   build the CUDA backend (auto: when torch has CUDA and nvcc exists)
  FUSEDOPT_CUDA_ARCHS      e.g. "80;90;100" (default) for the CUDA backend
  FUSEDOPT_EMULATED=0|1    also build the cuda-emulated backend (CUDA sources on the SIMT emulator)
"""
import os
import re
from pathlib import Path

from setuptools import setup

ROOT = Path(__file__).resolve().parent


def read_sources():
    groups = {}
    for line in (ROOT / "csrc" / "SOURCES.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            group, path = line.split()
            groups.setdefault(group, []).append(path)
    return groups


def version():
    text = (ROOT / "fusedopt" / "_version.py").read_text()
    return re.search(r'__version__ = "([^"]+)"', text).group(1)


def read_build_flags():
    """csrc/build_flags.txt: {kind: [flags]} (std, cxx, nvcc), shared with CMakeLists.txt."""
    flags = {}
    for line in (ROOT / "csrc" / "build_flags.txt").read_text().splitlines():
        line = line.split("#", 1)[0].split()
        if line:
            flags.setdefault(line[0], []).extend(line[1:])
    return flags


def extensions():
    import torch
    from torch.utils import cpp_extension

    groups = read_sources()
    sources = groups["cpu"] + groups["torch"]
    include_dirs = [str(ROOT / "csrc" / "include"), str(ROOT / "csrc" / "cpu"),
                    str(ROOT / "csrc" / "torch")]
    macros = [("FUSEDOPT_VERSION", f'"{version()}"')]
    flags = read_build_flags()
    std = "-std=" + flags["std"][0]
    # -fopenmp: at::parallel_for is an inline OpenMP region, so without it the CPU backend
    # would silently run on one thread (the torch-free C++ tests bring their own threads).
    cxx = [std] + flags["cxx"] + ["-fopenmp"]

    want_cuda = os.environ.get("FUSEDOPT_CUDA", "auto")
    has_cuda_toolchain = torch.version.cuda is not None and cpp_extension.CUDA_HOME is not None
    if want_cuda == "1" and not has_cuda_toolchain:
        raise RuntimeError("FUSEDOPT_CUDA=1 needs a CUDA build of torch and nvcc (CUDA_HOME)")
    build_cuda = want_cuda == "1" or (want_cuda == "auto" and has_cuda_toolchain)
    build_emulated = os.environ.get("FUSEDOPT_EMULATED", "0") == "1"

    ext_cls = cpp_extension.CppExtension
    extra = {"cxx": cxx}
    # --- CUDA backend (csrc/cuda, docs/kernels.md) ---
    if build_cuda and groups.get("cuda"):
        ext_cls = cpp_extension.CUDAExtension
        sources += groups["cuda"] + groups.get("torch_cuda", [])
        macros.append(("FUSEDOPT_WITH_CUDA", "1"))
        archs = os.environ.get("FUSEDOPT_CUDA_ARCHS", "80;90;100").split(";")
        nvcc = [std] + flags["nvcc"]
        if os.environ.get("FUSEDOPT_CUDA_VERBOSE_PTXAS", "0") == "1":
            nvcc.append("-Xptxas=-v")
        nvcc += [f"-gencode=arch=compute_{a},code=sm_{a}" for a in archs]
        include_dirs.append(str(ROOT / "csrc" / "testing" / "simt"))  # fusedopt_launch.h
        extra["nvcc"] = nvcc
    # --- cuda-emulated backend: the same kernel sources on the SIMT emulator (test use) ---
    if build_emulated and groups.get("cuda"):
        sources += groups.get("emulated", [])
        macros.append(("FUSEDOPT_WITH_EMULATED_CUDA", "1"))
        include_dirs.append(str(ROOT / "csrc" / "testing" / "simt"))
        # The emulator takes vector types and fp16/bf16 conversions from NVIDIA's headers.
        cuda_home = cpp_extension.CUDA_HOME or "/usr/local/cuda"
        include_dirs.append(os.environ.get("FUSEDOPT_SIMT_CUDA_INCLUDE",
                                           os.path.join(cuda_home, "include")))

    return [ext_cls("fusedopt._C", sources=sources, include_dirs=include_dirs,
                    define_macros=macros, extra_compile_args=extra,
                    extra_link_args=["-fopenmp"])]


def cmdclass():
    from torch.utils.cpp_extension import BuildExtension
    return {"build_ext": BuildExtension.with_options(use_ninja=True)}


setup(
    name="fusedopt",
    version=version(),
    packages=["fusedopt", "fusedopt.apex", "fusedopt.bench"],
    ext_modules=extensions(),
    cmdclass=cmdclass(),
)
