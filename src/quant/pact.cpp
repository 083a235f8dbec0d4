#include "dnn_gating/quant/pact.h"

namespace dnn_gating::quant {
namespace {

struct PactFunction : torch::autograd::Function<PactFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& upper_bound) {
    ctx->save_for_backward({x, upper_bound});
    return torch::clamp(x, 0, upper_bound.item<double>());
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor& x = saved[0];
    const torch::Tensor& u = saved[1];
    const torch::Tensor& g = grads[0];
    const torch::Tensor above = x > u;
    torch::Tensor grad_x = g.masked_fill(above.logical_or(x < 0), 0);
    torch::Tensor grad_u = g.masked_fill(above.logical_not(), 0).sum().reshape(u.sizes());
    return {grad_x, grad_u};
  }
};

}  // namespace

torch::Tensor pact_relu(const torch::Tensor& x, const torch::Tensor& upper_bound) {
  TORCH_CHECK(upper_bound.numel() == 1, "PACT upper_bound must have one element, got ",
              upper_bound.numel());
  return PactFunction::apply(x, upper_bound);
}

PactReLUImpl::PactReLUImpl(PactReLUOptions options_) : options(std::move(options_)) { reset(); }

void PactReLUImpl::reset() {
  TORCH_CHECK(options.upper_bound() > 0, "PACT upper_bound must be positive, got ",
              options.upper_bound());
  upper_bound = register_parameter(
      "upper_bound", torch::full({}, options.upper_bound(), torch::kFloat));
}

void PactReLUImpl::pretty_print(std::ostream& stream) const {
  stream << "dnn_gating::PactReLU(upper_bound=" << options.upper_bound() << ")";
}

torch::Tensor PactReLUImpl::forward(const torch::Tensor& x) { return pact_relu(x, upper_bound); }

}  // namespace dnn_gating::quant
