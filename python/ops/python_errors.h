#pragma once
/// What the PyTorch extension's operators throw: a setting the library
/// refuses (SettingError) reaches Python as ValueError with the library's
/// message, any other error as RuntimeError, never an abort.

#include <torch/torch.h>

#include <utility>

#include "dnn_gating/setting_error.h"

namespace dnn_gating::python {

/// f(), with a SettingError turned into c10::ValueError (Python's ValueError).
template <typename F>
auto with_python_errors(F&& f) -> decltype(f()) {
  try {
    return std::forward<F>(f)();
  } catch (const SettingError& e) {
    TORCH_CHECK_VALUE(false, e.what());
  }
}

}  // namespace dnn_gating::python
