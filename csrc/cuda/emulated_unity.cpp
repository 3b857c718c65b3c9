// The cuda-emulated backend: every csrc/cuda kernel source compiled with g++ against the SIMT
// emulator (csrc/testing/simt) into namespace fusedopt::cuda_emulated. Torch-free; used by the
// Python extension (FUSEDOPT_EMULATED=1, registered by csrc/torch/emulated_glue.cpp) and by the
// C++ tests in tests/csrc/cuda (there with race-checker / traffic-counter instrumentation).
// Build with -ffp-contract=off and without fast-math: results are then bit-identical to the
// CPU backend for the elementwise optimizers (docs/kernels.md).
#ifndef FUSEDOPT_SIMT
#define FUSEDOPT_SIMT 1
#endif
#include "fusedopt_simt.h"

#include "runtime.cu"
#include "elementwise.cu"
#include "lars.cu"
#include "lamb.cu"
#include "l2_norm.cu"
