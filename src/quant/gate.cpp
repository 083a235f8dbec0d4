#include "dnn_gating/quant/gate.h"

namespace dnn_gating::quant {
namespace {

struct GateStepFunction : torch::autograd::Function<GateStepFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               double level, bool sparse_bp) {
    ctx->saved_data["sparse_bp"] = sparse_bp;
    ctx->saved_data["level"] = level;
    if (sparse_bp) ctx->save_for_backward({x});
    return (x > level).to(x.scalar_type());
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    torch::Tensor grad = grads[0];
    if (ctx->saved_data["sparse_bp"].toBool()) {
      const double level = ctx->saved_data["level"].toDouble();
      grad = grad.masked_fill(ctx->get_saved_variables()[0] < level, 0);
    }
    return {grad, torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor gate_step(const torch::Tensor& x, double level, bool sparse_bp) {
  return GateStepFunction::apply(x, level, sparse_bp);
}

}  // namespace dnn_gating::quant
