#include "dnn_gating/quant/pact.h"

#include "simd.h"

#include <ATen/Parallel.h>

#include <algorithm>

namespace dnn_gating::quant {
namespace {

// Over one block: grad_x = g where 0 <= x <= u, and returns the sum of g
// where x > u.
DNN_GATING_SIMD_CLONES
float pact_backward_kernel(const float* __restrict g, const float* __restrict x,
                           float* __restrict grad_x, int64_t begin, int64_t end, float bound) {
  return simd::lane_sum(begin, end, [=](int64_t i) {
    const bool above = x[i] > bound;
    grad_x[i] = (x[i] < 0.0f || above) ? 0.0f : g[i];
    return above ? g[i] : 0.0f;
  });
}

// grad_x and grad_u in one pass over contiguous float CPU tensors (the ATen
// fallback takes four). Blocks of kBlock elements are summed in float, the
// blocks in double.
std::pair<torch::Tensor, torch::Tensor> pact_backward(const torch::Tensor& g_in,
                                                      const torch::Tensor& x_in,
                                                      const torch::Tensor& u) {
  if (!(g_in.device().is_cpu() && g_in.scalar_type() == torch::kFloat &&
        x_in.scalar_type() == torch::kFloat)) {
    const torch::Tensor above = x_in > u;
    return {g_in.masked_fill(above.logical_or(x_in < 0), 0),
            g_in.masked_fill(above.logical_not(), 0).sum().reshape(u.sizes())};
  }
  constexpr int64_t kBlock = 4096;
  const torch::Tensor g = g_in.contiguous();
  const torch::Tensor x = x_in.contiguous();
  torch::Tensor grad_x = torch::empty_like(g);
  const float* gp = g.data_ptr<float>();
  const float* xp = x.data_ptr<float>();
  float* out = grad_x.data_ptr<float>();
  const float bound = u.item<float>();
  const int64_t n = g.numel();
  const double above_sum = at::parallel_reduce(
      0, (n + kBlock - 1) / kBlock, 4, 0.0,
      [=](int64_t first, int64_t last, double acc) {
        for (int64_t b = first; b < last; ++b) {
          acc += pact_backward_kernel(gp, xp, out, b * kBlock, std::min(n, (b + 1) * kBlock), bound);
        }
        return acc;
      },
      std::plus<double>());
  return {grad_x, torch::full(u.sizes(), above_sum, u.options())};
}

struct PactFunction : torch::autograd::Function<PactFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& upper_bound) {
    ctx->save_for_backward({x, upper_bound});
    return torch::clamp(x, 0, upper_bound.item<double>());
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    auto [grad_x, grad_u] = pact_backward(grads[0], saved[0], saved[1]);
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
