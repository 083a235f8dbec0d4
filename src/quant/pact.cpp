#include "dnn_gating/quant/pact.h"

#include <ATen/Parallel.h>

#include <algorithm>

#include "dnn_gating/quant/quantize.h"
#include "dnn_gating/setting_error.h"
#include "kernels/fusable.h"
#include "kernels/pact.h"
#include "kernels/quantize.h"

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

void check_bound(const torch::Tensor& upper_bound) {
  TORCH_CHECK(upper_bound.numel() == 1, "PACT upper_bound must have one element, got ",
              upper_bound.numel());
}

// Blocks of kBlock elements are summed in float, the blocks in double.
template <typename BlockSum>
double sum_in_blocks(int64_t n, BlockSum block_sum) {
  constexpr int64_t kBlock = 4096;
  return at::parallel_reduce(
      0, (n + kBlock - 1) / kBlock, 4, 0.0,
      [=](int64_t first, int64_t last, double acc) {
        for (int64_t b = first; b < last; ++b) {
          acc += block_sum(b * kBlock, std::min(n, (b + 1) * kBlock));
        }
        return acc;
      },
      std::plus<double>());
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
    const torch::Tensor g = kernels::laid_like(grads[0], saved[0]);
    torch::Tensor grad_x = torch::empty_like(g);
    const float* gp = g.data_ptr<float>();
    const uint8_t* rp = saved[0].data_ptr<uint8_t>();
    float* out = grad_x.data_ptr<float>();
    const double above_sum = sum_in_blocks(g.numel(), [=](int64_t begin, int64_t end) {
      return pact_backward_kernel(gp, rp, out, begin, end);
    });
    return {grad_x, torch::full(u.sizes(), above_sum, u.options())};
  }
};

// PACT and Q_bits in one pass on a fusable x (bits >= 2, bound > 0): the
// outputs are q, then y where kept; the backward pass keeps the regions.
struct PactQuantizeFunction : torch::autograd::Function<PactQuantizeFunction> {
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx,
                                                const torch::Tensor& x_in,
                                                const torch::Tensor& upper_bound, int64_t bits,
                                                bool keep_clipped) {
    const torch::Tensor x = kernels::dense(x_in);
    torch::Tensor q = torch::empty_like(x);
    torch::Tensor y = keep_clipped ? torch::empty_like(x) : torch::Tensor();
    torch::Tensor region = torch::empty_like(x, x.options().dtype(torch::kByte));
    const float* xp = x.data_ptr<float>();
    float* yp = keep_clipped ? y.data_ptr<float>() : nullptr;
    float* qp = q.data_ptr<float>();
    uint8_t* rp = region.data_ptr<uint8_t>();
    const float bound = upper_bound.item<float>();
    const float m = kernels::quantize::clipped_scale_of(xp, x.numel(), bound);
    const kernels::quantize::Grid grid = kernels::quantize::grid_of(bits, 0);
    at::parallel_for(0, x.numel(), kernels::quantize::kGrain, [=](int64_t begin, int64_t end) {
      kernels::quantize::clip_quantize_kernel(xp, yp, qp, rp, begin, end, bound, m, grid);
    });
    ctx->save_for_backward({region, upper_bound});
    if (!keep_clipped) return {q};
    return {q, y};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor& region = saved[0];
    const torch::Tensor& u = saved[1];
    // (The engine passes zeros for an output that got no gradient.)
    const torch::Tensor gq = kernels::laid_like(grads[0], region);
    const torch::Tensor gy =
        grads.size() > 1 ? kernels::laid_like(grads[1], region) : torch::Tensor();
    torch::Tensor grad_x = torch::empty_like(gq);
    const float* gqp = gq.data_ptr<float>();
    const float* gyp = gy.defined() ? gy.data_ptr<float>() : nullptr;
    const uint8_t* rp = region.data_ptr<uint8_t>();
    float* out = grad_x.data_ptr<float>();
    const double above_sum = sum_in_blocks(gq.numel(), [=](int64_t begin, int64_t end) {
      return kernels::quantize::clip_quantize_backward_kernel(gyp, gqp, rp, out, begin, end);
    });
    return {grad_x, torch::full(u.sizes(), above_sum, u.options()), torch::Tensor(),
            torch::Tensor()};
  }
};

}  // namespace

ClippedAndQuantized pact_quantize(const torch::Tensor& x, const torch::Tensor& upper_bound,
                                  int64_t bits, bool keep_clipped) {
  check_bound(upper_bound);
  if (bits >= 2 && bits <= kMaxBits && kernels::fusable(x) && torch::GradMode::is_enabled() &&
      x.requires_grad() && upper_bound.item<float>() > 0.0f) {
    const auto outputs = PactQuantizeFunction::apply(x, upper_bound, bits, keep_clipped);
    return {keep_clipped ? outputs[1] : torch::Tensor(), outputs[0]};
  }
  const torch::Tensor y = pact_relu(x, upper_bound);
  return {keep_clipped ? y : torch::Tensor(), quantize(y, bits)};
}

torch::Tensor pact_relu(const torch::Tensor& x, const torch::Tensor& upper_bound) {
  check_bound(upper_bound);
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
