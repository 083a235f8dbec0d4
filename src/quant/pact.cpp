#include "dnn_gating/quant/pact.h"

#include <ATen/Parallel.h>

#include <algorithm>

#include "dnn_gating/setting_error.h"
#include "kernels/fusable.h"
#include "kernels/pact.h"

namespace dnn_gating::quant {
namespace {

using kernels::pact::pact_backward_kernel;
using kernels::pact::pact_forward_kernel;

// clamp(x, 0, upper_bound): on the CPU with the bound read once; on a device
// with the bound as a tensor there, so that no layer waits for the device.
torch::Tensor clamp_to_bound(const torch::Tensor& x, const torch::Tensor& upper_bound) {
  if (x.device().is_cpu()) return torch::clamp(x, 0, upper_bound.item<double>());
  return torch::clamp(x, torch::zeros_like(upper_bound), upper_bound);
}

// The fused path on float CPU tensors keeps the regions for the backward
// pass; the ATen operations elsewhere keep x.
struct PactFunction : torch::autograd::Function<PactFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x_in,
                               const torch::Tensor& upper_bound) {
    if (!kernels::fusable(x_in)) {
      ctx->save_for_backward({x_in, upper_bound});
      return clamp_to_bound(x_in, upper_bound);
    }
    const torch::Tensor x = kernels::dense(x_in);
    torch::Tensor y = torch::empty_like(x);
    torch::Tensor region = torch::empty_like(x, x.options().dtype(torch::kByte));
    const float* xp = x.data_ptr<float>();
    float* yp = y.data_ptr<float>();
    uint8_t* rp = region.data_ptr<uint8_t>();
    const float bound = upper_bound.item<float>();
    at::parallel_for(0, x.numel(), 16384, [=](int64_t begin, int64_t end) {
      pact_forward_kernel(xp, yp, rp, begin, end, bound);
    });
    ctx->save_for_backward({region, upper_bound});
    return y;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor& u = saved[1];
    if (saved[0].scalar_type() != torch::kByte) {  // x itself was kept
      const torch::Tensor& x = saved[0];
      const torch::Tensor above = x > u;
      return {grads[0].masked_fill(above.logical_or(x < 0), 0),
              grads[0].masked_fill(above.logical_not(), 0).sum().reshape(u.sizes())};
    }
    // Blocks of kBlock elements are summed in float, the blocks in double.
    constexpr int64_t kBlock = 4096;
    const torch::Tensor g = kernels::laid_like(grads[0], saved[0]);
    torch::Tensor grad_x = torch::empty_like(g);
    const float* gp = g.data_ptr<float>();
    const uint8_t* rp = saved[0].data_ptr<uint8_t>();
    float* out = grad_x.data_ptr<float>();
    const int64_t n = g.numel();
    const double above_sum = at::parallel_reduce(
        0, (n + kBlock - 1) / kBlock, 4, 0.0,
        [=](int64_t first, int64_t last, double acc) {
          for (int64_t b = first; b < last; ++b) {
            acc += pact_backward_kernel(gp, rp, out, b * kBlock, std::min(n, (b + 1) * kBlock));
          }
          return acc;
        },
        std::plus<double>());
    return {grad_x, torch::full(u.sizes(), above_sum, u.options())};
  }
};

}  // namespace

torch::Tensor pact_relu(const torch::Tensor& x, const torch::Tensor& upper_bound) {
  TORCH_CHECK(upper_bound.numel() == 1, "PACT upper_bound must have one element, got ",
              upper_bound.numel());
  if (!torch::GradMode::is_enabled()) return clamp_to_bound(x, upper_bound);
  return PactFunction::apply(x, upper_bound);
}

PactReLUImpl::PactReLUImpl(PactReLUOptions options_) : options(std::move(options_)) { reset(); }

void PactReLUImpl::reset() {
  check_setting(options.upper_bound() > 0, "upper_bound",
                c10::str("PACT {upper_bound} must be positive, got ", options.upper_bound()));
  upper_bound = register_parameter("upper_bound", torch::full({}, options.upper_bound()));
}

void PactReLUImpl::pretty_print(std::ostream& stream) const {
  stream << "dnn_gating::PactReLU(upper_bound=" << options.upper_bound() << ")";
}

torch::Tensor PactReLUImpl::forward(const torch::Tensor& x) { return pact_relu(x, upper_bound); }

}  // namespace dnn_gating::quant
