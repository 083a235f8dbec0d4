#include "kernels/affine.h"

#include <ATen/Parallel.h>

#include <cmath>
#include <vector>

#include "kernels/fusable.h"
#include "kernels/simd.h"

namespace dnn_gating::kernels {
namespace {

// Runs [first, last) of `run` values each, mapped as ATen's batch_norm,
// relu and clamp_max would: a product and a sum, each rounded, then the
// activation.
DNN_GATING_SIMD_CLONES
void map_runs(float* data, int64_t run, int64_t channels, bool nhwc, const float* scale,
              const float* shift, bool relu, float upper, int64_t first, int64_t last) {
  for (int64_t r = first; r < last; ++r) {
    float* v = data + r * run;
    if (nhwc) {
      for (int64_t c = 0; c < run; ++c) v[c] = activated(v[c] * scale[c] + shift[c], relu, upper);
    } else {
      const float a = scale[r % channels], b = shift[r % channels];
      for (int64_t i = 0; i < run; ++i) v[i] = activated(v[i] * a + b, relu, upper);
    }
  }
}

}  // namespace

std::optional<Affine> as_affine(const torch::nn::BatchNorm2dImpl& bn, bool relu) {
  if (bn.is_training() || !bn.running_mean.defined()) return std::nullopt;
  torch::NoGradGuard no_grad;
  const torch::Tensor inv_std = 1 / torch::sqrt(bn.running_var + bn.options.eps());
  const torch::Tensor scale = bn.weight.defined() ? bn.weight * inv_std : inv_std;
  torch::Tensor shift = -bn.running_mean * scale;
  if (bn.bias.defined()) shift = bn.bias + shift;
  return Affine{scale, shift, relu};
}

void apply_in_place(const Affine& affine, torch::Tensor& y) {
  const int64_t channels = y.dim() == 4 ? y.size(1) : 0;
  const bool nhwc = channels_last(y);
  if (!fusable(y) || !(nhwc || y.is_contiguous()) || affine.scale.numel() != channels) {
    y.mul_(affine.scale.view({1, -1, 1, 1})).add_(affine.shift.view({1, -1, 1, 1}));
    if (affine.relu) activate_in_place(y, affine.upper);
    return;
  }
  const torch::Tensor s = affine.scale.detach().to(torch::kFloat).contiguous();
  const torch::Tensor b = affine.shift.detach().to(torch::kFloat).contiguous();
  const float* scale = s.data_ptr<float>();
  const float* shift = b.data_ptr<float>();
  float* data = y.data_ptr<float>();
  const bool relu = affine.relu;
  const float upper = affine.upper;
  // Runs of all channels at one position (NHWC) or of one channel's values (NCHW).
  const int64_t run = nhwc ? channels : y.size(2) * y.size(3);
  at::parallel_for(0, y.numel() / run, 1, [&](int64_t first, int64_t last) {
    map_runs(data, run, channels, nhwc, scale, shift, relu, upper, first, last);
  });
}

torch::Tensor activate_in_place(torch::Tensor y, double upper) {
  return std::isfinite(upper) ? y.clamp_(0, upper) : y.relu_();
}

torch::Tensor add_activated(torch::Tensor y, const torch::Tensor& residual, double upper) {
  y.add_(residual);
  return activate_in_place(std::move(y), upper);
}

torch::Tensor folded_conv2d(const torch::Tensor& x, const torch::Tensor& weight,
                            const Affine& affine, torch::IntArrayRef stride,
                            torch::IntArrayRef padding) {
  const torch::Tensor w = weight * affine.scale.view({-1, 1, 1, 1}).to(weight.dtype());
  torch::Tensor y = torch::conv2d(x, w, affine.shift.to(weight.dtype()), stride, padding);
  return affine.relu ? activate_in_place(std::move(y), affine.upper) : y;
}

}  // namespace dnn_gating::kernels
