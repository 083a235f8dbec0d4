#include "dnn_gating/quant/quantize.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "dnn_gating/setting_error.h"
#include "kernels/fusable.h"
#include "kernels/quantize.h"

namespace dnn_gating::quant {

void check_bit_width(const std::string& name, int64_t bits) {
  check_setting(bits >= kMinBits && bits <= kMaxBits, name,
                "{" + name + "} must be between " + std::to_string(kMinBits) +
                    " (full precision) and " + std::to_string(kMaxBits) + ", got " +
                    std::to_string(bits));
}

namespace {

using namespace kernels::quantize;  // NOLINT: the element loops and their grid

void check_bits(int64_t bits) { check_bit_width("bits", bits); }

void check_truncation(int64_t bits, int64_t high_bits) {
  TORCH_CHECK(bits > high_bits && high_bits > 0,
              "truncation needs bits > high_bits > 0, got bits=", bits, " high_bits=", high_bits);
  check_bits(bits);
}

double levels(int64_t bits) { return static_cast<double>((int64_t{1} << bits) - 1); }

// Computes the scale m = max|x| + 1e-7, then runs body(x, begin, end, m) over
// x in parallel.
template <typename Body>
void run_scaled(const torch::Tensor& x, Body body) {
  const float* data = x.data_ptr<float>();
  const int64_t n = x.numel();
  const float m = scale_of(data, n);
  at::parallel_for(0, n, kGrain, [=](int64_t begin, int64_t end) { body(data, begin, end, m); });
}

torch::Tensor quantize_values(const torch::Tensor& x_in, int64_t bits) {
  check_bits(bits);
  if (bits == 0) return x_in;
  if (!kernels::fusable(x_in)) return reference::quantize(x_in, bits);
  const torch::Tensor x = kernels::dense(x_in);
  torch::Tensor y = torch::empty_like(x);
  float* out = y.data_ptr<float>();
  if (bits == 1) {
    const float* data = x.data_ptr<float>();
    at::parallel_for(0, x.numel(), kGrain,
                     [&](int64_t begin, int64_t end) { binarize_kernel(data, out, begin, end); });
    return y;
  }
  const Grid grid = grid_of(bits, 0);
  run_scaled(x, [=](const float* data, int64_t begin, int64_t end, float m) {
    quantize_kernel(data, out, begin, end, m, grid);
  });
  return y;
}

// Q_bits(x) for 2 or more bits on a fusable tensor, and the mask x != 0.
std::pair<torch::Tensor, torch::Tensor> quantize_marking(const torch::Tensor& x_in, int64_t bits) {
  const torch::Tensor x = kernels::dense(x_in);
  torch::Tensor y = torch::empty_like(x);
  torch::Tensor nonzero = torch::empty_like(x, x.options().dtype(torch::kBool));
  float* out = y.data_ptr<float>();
  auto* marks = reinterpret_cast<uint8_t*>(nonzero.data_ptr<bool>());
  const Grid grid = grid_of(bits, 0);
  run_scaled(x, [=](const float* data, int64_t begin, int64_t end, float m) {
    quantize_marking_kernel(data, out, marks, begin, end, m, grid);
  });
  return {y, nonzero};
}

// g where `keep` (a bool tensor of g's shape) is set.
torch::Tensor keep_gradient(const torch::Tensor& grad_in, const torch::Tensor& keep) {
  const torch::Tensor g = kernels::laid_like(grad_in, keep);
  torch::Tensor out = torch::empty_like(g);
  const float* gp = g.data_ptr<float>();
  const auto* kp = reinterpret_cast<const uint8_t*>(keep.data_ptr<bool>());
  float* op = out.data_ptr<float>();
  at::parallel_for(0, g.numel(), kGrain,
                   [=](int64_t begin, int64_t end) { keep_kernel(gp, kp, op, begin, end); });
  return out;
}

torch::Tensor truncate_values(const torch::Tensor& x_in, int64_t bits, int64_t high_bits) {
  check_truncation(bits, high_bits);
  if (!kernels::fusable(x_in)) return reference::truncate(x_in, bits, high_bits);
  const torch::Tensor x = kernels::dense(x_in);
  torch::Tensor y = torch::empty_like(x);
  float* out = y.data_ptr<float>();
  const Grid grid = grid_of(bits, high_bits);
  run_scaled(x, [=](const float* data, int64_t begin, int64_t end, float m) {
    truncate_kernel(data, out, begin, end, m, grid);
  });
  return y;
}

// Gradient of an STE quantizer: g where x != 0 (everywhere for 1 bit).
torch::Tensor ste_grad(const torch::Tensor& grad, const torch::Tensor& x, bool binary) {
  return binary ? grad : ste_gradient(grad, x);
}

// On fusable tensors the backward pass keeps the one-byte mask x != 0
// instead of x.
struct QuantizeFunction : torch::autograd::Function<QuantizeFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               int64_t bits) {
    ctx->saved_data["bits"] = bits;
    if (!(bits >= 2 && x.requires_grad() && kernels::fusable(x))) {
      ctx->save_for_backward({x});
      return quantize_values(x, bits);
    }
    auto [y, nonzero] = quantize_marking(x, bits);
    ctx->save_for_backward({nonzero});
    return y;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const torch::Tensor saved = ctx->get_saved_variables()[0];
    if (saved.scalar_type() == torch::kBool) {  // the mask x != 0 was kept
      return {keep_gradient(grads[0], saved), torch::Tensor()};
    }
    const bool binary = ctx->saved_data["bits"].toInt() == 1;
    return {ste_grad(grads[0], saved, binary), torch::Tensor()};
  }
};

struct TruncateFunction : torch::autograd::Function<TruncateFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               int64_t bits, int64_t high_bits) {
    ctx->save_for_backward({x});
    return truncate_values(x, bits, high_bits);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    return {ste_grad(grads[0], ctx->get_saved_variables()[0], false), torch::Tensor(),
            torch::Tensor()};
  }
};

}  // namespace

torch::Tensor ste_gradient(const torch::Tensor& grad_in, const torch::Tensor& x_in) {
  TORCH_CHECK(grad_in.sizes() == x_in.sizes(), "ste_gradient: gradient shape ", grad_in.sizes(),
              " differs from input shape ", x_in.sizes());
  if (!kernels::fusable(grad_in) || !kernels::fusable(x_in))
    return grad_in.masked_fill(x_in == 0, 0);
  const torch::Tensor x = kernels::dense(x_in);
  const torch::Tensor g = kernels::laid_like(grad_in, x);
  torch::Tensor out = torch::empty_like(g);
  const float* gp = g.data_ptr<float>();
  const float* xp = x.data_ptr<float>();
  float* op = out.data_ptr<float>();
  at::parallel_for(0, g.numel(), kGrain,
                   [=](int64_t begin, int64_t end) { ste_kernel(gp, xp, op, begin, end); });
  return out;
}

torch::Tensor quantize(const torch::Tensor& x, int64_t bits) {
  check_bits(bits);
  if (bits == 0) return x;
  return QuantizeFunction::apply(x, bits);
}

torch::Tensor truncate(const torch::Tensor& x, int64_t bits, int64_t high_bits) {
  check_truncation(bits, high_bits);
  return TruncateFunction::apply(x, bits, high_bits);
}

torch::Tensor split_msb_lsb(const torch::Tensor& x_in, int64_t bits, int64_t high_bits) {
  check_truncation(bits, high_bits);
  torch::NoGradGuard no_grad;
  if (!kernels::fusable(x_in)) {
    torch::Tensor msb = reference::truncate(x_in, bits, high_bits);
    return torch::stack({msb, reference::quantize(x_in, bits) - msb});
  }
  const torch::Tensor x = kernels::dense(x_in);
  std::vector<int64_t> shape{2};
  shape.insert(shape.end(), x.sizes().begin(), x.sizes().end());
  // A channels-last x gives two channels-last halves, one after the other
  // (as [2N, C, H, W] channels-last), each in x's element order.
  torch::Tensor both = kernels::channels_last(x)
                           ? torch::empty({2 * x.size(0), x.size(1), x.size(2), x.size(3)},
                                          x.options().memory_format(at::MemoryFormat::ChannelsLast))
                                 .view(shape)
                           : torch::empty(shape, x.options());
  float* hi = both.data_ptr<float>();
  float* lo = hi + x.numel();
  const Grid grid = grid_of(bits, high_bits);
  run_scaled(x, [=](const float* data, int64_t begin, int64_t end, float m) {
    split_kernel(data, hi, lo, begin, end, m, grid);
  });
  return both;
}

namespace reference {

// m = max|x| + 1e-7 as a 0-dim tensor and |x| / m clamped to [0, 1], exactly
// the original's sequence of operations.
static std::pair<torch::Tensor, torch::Tensor> scale_and_unit(const torch::Tensor& x) {
  torch::Tensor m = x.abs().max() + kernels::quantize::kScaleEpsilon;
  return {m, torch::clamp(x.abs() / m, 0, 1)};
}

torch::Tensor quantize(const torch::Tensor& x, int64_t bits) {
  check_bits(bits);
  torch::NoGradGuard no_grad;
  if (bits == 0) return x;
  if (bits == 1) return torch::round((torch::clamp(x, -1, 1) + 1) / 2) * 2 - 1;
  auto [m, c] = scale_and_unit(x);
  const double n = levels(bits);
  return torch::round(c * n) / n * m * torch::sign(x);
}

torch::Tensor truncate(const torch::Tensor& x, int64_t bits, int64_t high_bits) {
  check_truncation(bits, high_bits);
  torch::NoGradGuard no_grad;
  auto [m, c] = scale_and_unit(x);
  const double n = levels(bits);
  const double step = static_cast<double>(int64_t{1} << (bits - high_bits));
  torch::Tensor code = torch::round(c * n);
  return torch::floor(code / step) * step / n * m * torch::sign(x);
}

}  // namespace reference
}  // namespace dnn_gating::quant
