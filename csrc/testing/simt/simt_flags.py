"""Compile/link flags of the fusedopt SIMT emulator for setup.py builds.

Mirrors simt.cmake. Import with importlib (this directory is not a package):

    spec = importlib.util.spec_from_file_location("simt_flags", "csrc/testing/simt/simt_flags.py")
    simt_flags = importlib.util.module_from_spec(spec); spec.loader.exec_module(simt_flags)

Rules (see docs/emulator.md):
  * kernel sources (.cu compiled as C++, or a .cpp that #includes them) get
    kernel_compile_args(); add -x c++ only when g++ sees a .cu file;
  * the runtime (RUNTIME_SOURCES) gets runtime_compile_args() and must NEVER
    get -fsanitize=thread (it implements the hooks) - build it separately with
    build_runtime_object() if every source of the extension shares one flag list;
  * never link with -fsanitize=thread (the hooks come from the runtime);
  * raw `extern __shared__ T a[];` declarations need dynsmem_link_args();
    FUSEDOPT_DYNAMIC_SHARED(T, a) needs nothing.
"""
import os
import subprocess

SIMT_DIR = os.path.dirname(os.path.abspath(__file__))
CUDA_INCLUDE_DIR = os.environ.get("FUSEDOPT_SIMT_CUDA_INCLUDE", "/usr/local/cuda/include")
INCLUDE_DIRS = [SIMT_DIR, CUDA_INCLUDE_DIR]
DEFINE_MACROS = [("FUSEDOPT_SIMT", "1")]
RUNTIME_SOURCES = [os.path.join(SIMT_DIR, "simt_runtime.cpp")]
LIBRARIES = ["dl"]

# -ffp-contract=off / no fast-math: bit-exact agreement with the CPU backend.
# -fno-extern-tls-init: __shared__ is thread_local (see fusedopt_simt.h and simt.cmake).
COMMON_FLAGS = [
    "-std=c++17",
    "-DFUSEDOPT_SIMT=1",
    "-ffp-contract=off",
    "-fno-fast-math",
    "-fno-extern-tls-init",
    "-Wno-unknown-pragmas",  # `#pragma unroll`
    "-fPIC",
]
# Race checker + traffic counter: instrument the kernel sources only.
RACECHECK_FLAGS = ["-fsanitize=thread", "-g"]


def include_args():
    return ["-I" + d for d in INCLUDE_DIRS]


def kernel_compile_args(racecheck=False):
    """Flags for kernel translation units (without -x c++)."""
    return COMMON_FLAGS + include_args() + (RACECHECK_FLAGS if racecheck else [])


def runtime_compile_args():
    """Flags for simt_runtime.cpp: always optimised, never instrumented."""
    return COMMON_FLAGS + include_args() + ["-O2"]


def build_runtime_object(out_dir, cxx=None, extra_args=()):
    """Compiles the runtime to out_dir/simt_runtime.o and returns its path
    (for setup.py's extra_objects when all sources share one flag list)."""
    cxx = cxx or os.environ.get("CXX", "g++")
    os.makedirs(out_dir, exist_ok=True)
    obj = os.path.join(out_dir, "simt_runtime.o")
    cmd = [cxx] + runtime_compile_args() + list(extra_args) + ["-c", RUNTIME_SOURCES[0], "-o", obj]
    subprocess.check_call(cmd)
    return obj


def dynsmem_link_args(objects, rsp_path):
    """Linker args aliasing every raw `extern __shared__` array found in the
    compiled kernel objects to the emulator's dynamic shared memory."""
    subprocess.check_call(["sh", os.path.join(SIMT_DIR, "simt_dynsmem_syms.sh"), rsp_path] + list(objects))
    return ["-Wl,@" + rsp_path]


if __name__ == "__main__":  # print the flags, e.g. for shell scripts
    import sys

    racecheck = "--racecheck" in sys.argv
    print(" ".join(runtime_compile_args() if "--runtime" in sys.argv else kernel_compile_args(racecheck)))
