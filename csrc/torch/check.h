// Error checks of the op layer.
#pragma once

#include <cstdint>
#include <sstream>
#include <stdexcept>

namespace fusedopt {
namespace torch_glue {

// The list position (index into the op's params/grads/states lists) of the tensor the last
// failed check of this thread was about; -1 when it concerned no single position. The op
// _last_error_index returns it, so Python names the user's param from data instead of parsing
// the message.
inline thread_local int64_t g_last_error_index = -1;

// Throws std::runtime_error(message): the dispatcher raises it in Python as RuntimeError with
// exactly that text (STD_TORCH_CHECK would prefix the C++ function and file:line).
template <class... Parts>
[[noreturn]] void fail_at(int64_t index, const Parts&... parts) {
  std::ostringstream s;
  (s << ... << parts);
  g_last_error_index = index;
  throw std::runtime_error(s.str());
}
#define FUSEDOPT_CHECK(cond, ...)                                  \
  do {                                                             \
    if (!(cond)) ::fusedopt::torch_glue::fail_at(-1, __VA_ARGS__); \
  } while (0)
// A check about the tensor at list position `index` (recorded with the error).
#define FUSEDOPT_CHECK_AT(index, cond, ...)                                                     \
  do {                                                                                          \
    if (!(cond)) ::fusedopt::torch_glue::fail_at(static_cast<int64_t>(index), __VA_ARGS__);     \
  } while (0)

}  // namespace torch_glue
}  // namespace fusedopt
