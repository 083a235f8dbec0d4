#pragma once
/// What the PyTorch extension's operators throw: a setting the library
/// refuses (SettingError) reaches Python as ValueError with the library's
/// message, any other error as RuntimeError, never an abort.

#include <torch/torch.h>

#include <string>
#include <utility>

#include "dnn_gating/setting_error.h"

namespace dnn_gating::python {

/// A library setting as the Python modules' arguments name it (the
/// original's: CGConv2d's `p` and `th`).
inline std::string python_argument(const std::string& setting) {
  if (setting == "partitions") return "p";
  if (setting == "ginit") return "th";
  return setting;
}

/// f(), with a SettingError turned into c10::ValueError (Python's
/// ValueError) naming the Python argument.
template <typename F>
auto with_python_errors(F&& f) -> decltype(f()) {
  try {
    return std::forward<F>(f)();
  } catch (const SettingError& e) {
    TORCH_CHECK_VALUE(false, e.message(python_argument));
  }
}

}  // namespace dnn_gating::python
