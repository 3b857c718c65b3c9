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


# Flags shared by every C++ translation unit: contraction off so every SIMD level, and the
# emulated CUDA kernels, round identically (and never fast-math); -fno-math-errno lets sqrt
# vectorize; no -march: SIMD levels are dispatched at run time. -fopenmp: at::parallel_for is
# an inline OpenMP region, so without it the CPU backend would silently run on one thread.
COMMON_CXX = ["-O3", "-ffp-contract=off", "-fno-math-errno", "-fopenmp", "-Wall",
              "-Wno-unused-function"]


def extensions():
    import torch
    from torch.utils import cpp_extension

    groups = read_sources()
    sources = groups["cpu"] + groups["torch"]
    include_dirs = [str(ROOT / "csrc" / "include"), str(ROOT / "csrc" / "cpu"),
                    str(ROOT / "csrc" / "torch")]
    macros = [("FUSEDOPT_VERSION", f'"{version()}"')]
    cxx = list(COMMON_CXX)

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
        # --fmad=false: no FMA contraction, so GPU results round like the CPU backend (the
        # kernels are memory-bound; contraction buys nothing measurable there).
        nvcc = ["-O3", "-std=c++17", "--expt-relaxed-constexpr", "--fmad=false"]
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
