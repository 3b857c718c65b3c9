// Benchmark helper (bench/abi_boxing/run.sh), not part of the product.
#include <torch/csrc/stable/library.h>
#include <torch/csrc/stable/tensor.h>
#include <vector>
using torch::stable::Tensor;
// Takes adam_'s five tensor lists and does nothing: the cost of the stable ABI's boxing alone.
void noop(std::vector<Tensor> a, std::vector<Tensor> b, std::vector<Tensor> c, std::vector<Tensor> d,
          std::vector<Tensor> e) {}
// The same, plus one dtype and one data_ptr query per tensor of every list.
int64_t touch(std::vector<Tensor> a, std::vector<Tensor> b, std::vector<Tensor> c, std::vector<Tensor> d,
              std::vector<Tensor> e) {
  int64_t s = 0;
  for (auto* l : {&a, &b, &c, &d, &e})
    for (auto& t : *l) { int32_t dt; aoti_torch_get_dtype(t.get(), &dt); s += dt + (reinterpret_cast<intptr_t>(t.data_ptr()) & 1); }
  return s;
}
STABLE_TORCH_LIBRARY(noopns, m) {
  m.def("noop(Tensor(a!)[] a, Tensor[] b, Tensor(b!)[] c, Tensor(c!)[] d, Tensor(d!)[] e) -> ()");
  m.def("touch(Tensor(a!)[] a, Tensor[] b, Tensor(b!)[] c, Tensor(c!)[] d, Tensor(d!)[] e) -> int");
}
STABLE_TORCH_LIBRARY_IMPL(noopns, CPU, m) { m.impl("noop", TORCH_BOX(&noop)); m.impl("touch", TORCH_BOX(&touch)); }
