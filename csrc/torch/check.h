// Error checks of the op layer.
#pragma once

#include <sstream>
#include <stdexcept>

namespace fusedopt {
namespace torch_glue {

// Throws std::runtime_error(message): the dispatcher raises it in Python as RuntimeError with
// exactly that text (STD_TORCH_CHECK would prefix the C++ function and file:line).
template <class... Parts>
[[noreturn]] void fail(const Parts&... parts) {
  std::ostringstream s;
  (s << ... << parts);
  throw std::runtime_error(s.str());
}
#define FUSEDOPT_CHECK(cond, ...)                               \
  do {                                                          \
    if (!(cond)) ::fusedopt::torch_glue::fail(__VA_ARGS__);     \
  } while (0)

}  // namespace torch_glue
}  // namespace fusedopt
