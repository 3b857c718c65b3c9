// Benchmark helper (bench/abi_boxing/run.sh), not part of the product.
#include <torch/library.h>
// The same no-op op on the regular (unstable) C++ API: lists arrive unboxed as ArrayRef.
void noop(at::TensorList a, at::TensorList b, at::TensorList c, at::TensorList d, at::TensorList e) {}
TORCH_LIBRARY(noopat, m) {
  m.def("noop(Tensor(a!)[] a, Tensor[] b, Tensor(b!)[] c, Tensor(c!)[] d, Tensor(d!)[] e) -> ()");
}
TORCH_LIBRARY_IMPL(noopat, CPU, m) { m.impl("noop", &noop); }
