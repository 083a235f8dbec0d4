// The quantizers and PACT as PyTorch operators: torch.ops.dnn_gating.quantize,
// .truncate, .pact_relu. Each is the library's differentiable function,
// registered without a kernel of its own per dispatch key, so that autograd
// records the library's own backward.

#include <torch/library.h>
#include <torch/torch.h>

#include "dnn_gating/quant/pact.h"
#include "dnn_gating/quant/quantize.h"
#include "python_errors.h"

namespace dnn_gating::python {
namespace {

torch::Tensor quantize_op(const torch::Tensor& x, int64_t bits) {
  return with_python_errors([&] {
    quant::check_bit_width("bits", bits);
    return quant::quantize(x, bits);
  });
}

torch::Tensor truncate_op(const torch::Tensor& x, int64_t bits, int64_t high_bits) {
  return with_python_errors([&] {
    quant::check_bit_width("b", bits);
    TORCH_CHECK_VALUE(high_bits > 0 && high_bits < bits, "truncate needs 0 < bh < b, got b=", bits,
                      " bh=", high_bits);
    return quant::truncate(x, bits, high_bits);
  });
}

torch::Tensor pact_relu_op(const torch::Tensor& x, const torch::Tensor& upper_bound) {
  TORCH_CHECK_VALUE(upper_bound.numel() == 1, "pact_relu: upper_bound must hold one value, got ",
                    upper_bound.numel());
  return quant::pact_relu(x, upper_bound);
}

}  // namespace

TORCH_LIBRARY(dnn_gating, m) {
  m.def("quantize(Tensor x, int bits) -> Tensor", &quantize_op);
  m.def("truncate(Tensor x, int b, int bh) -> Tensor", &truncate_op);
  m.def("pact_relu(Tensor x, Tensor upper_bound) -> Tensor", &pact_relu_op);
}

}  // namespace dnn_gating::python
