#include "layers/integer_conv.h"

#include <ATen/Parallel.h>

#include <array>
#include <chrono>
#include <cmath>
#include <limits>
#include <map>
#include <mutex>
#include <utility>

#include "kernels/fusable.h"
#include "kernels/quantize.h"

namespace dnn_gating::layers::integer_conv {
namespace {

namespace quantize = kernels::quantize;

quantize::Grid grid(int64_t bits, int64_t high_bits) {
  return {static_cast<float>((int64_t{1} << bits) - 1),
          static_cast<float>(int64_t{1} << (high_bits > 0 ? bits - high_bits : 0))};
}

// Memory of this thread that lives from one call to the next: codes and
// intermediate sums live only within one layer's forward pass, and fresh
// memory of their size would be faulted in page by page at every call.
torch::Tensor scratch(int slot, torch::IntArrayRef sizes, torch::ScalarType type,
                      at::MemoryFormat format = at::MemoryFormat::Contiguous) {
  constexpr int kSlots = 4;
  thread_local std::array<torch::Tensor, kSlots> held;
  TORCH_CHECK(slot >= 0 && slot < kSlots, "scratch slot ", slot);
  torch::Tensor& t = held[static_cast<size_t>(slot)];
  int64_t bytes = c10::elementSize(type);
  for (const int64_t size : sizes) bytes *= size;
  if (!t.defined() || t.numel() < bytes) t = torch::empty({bytes}, torch::kByte);
  // (from_blob lays a tensor out contiguously whatever its options say.)
  std::vector<int64_t> strides(sizes.size(), 1);
  for (size_t d = sizes.size() - 1; d > 0; --d) strides[d - 1] = strides[d] * sizes[d];
  if (format == at::MemoryFormat::ChannelsLast) strides = c10::get_channels_last_strides_2d(sizes);
  return torch::from_blob(t.data_ptr(), sizes, strides, torch::TensorOptions(type));
}

// The output's height and width (torch::conv2d's).
std::pair<int64_t, int64_t> output_plane(const kernels::int8_conv::Geometry& g, int64_t h,
                                         int64_t w) {
  return {(h + 2 * g.pad_h - g.kernel_h) / g.stride_h + 1,
          (w + 2 * g.pad_w - g.kernel_w) / g.stride_w + 1};
}

// x's values as a float channels-last tensor the caller may overwrite: x
// itself where `x` is the only handle on it and on its memory (see
// convolve), else a copy.
torch::Tensor writable_copy(const torch::Tensor& x) {
  if (x.use_count() == 1 && x.storage().use_count() == 1 && x.scalar_type() == torch::kFloat &&
      x.storage_offset() == 0 && x.is_contiguous(at::MemoryFormat::ChannelsLast) &&
      !x.requires_grad()) {
    return x;
  }
  torch::Tensor copy = torch::empty(
      x.sizes(), torch::TensorOptions(torch::kFloat).memory_format(at::MemoryFormat::ChannelsLast));
  copy.copy_(x);
  return copy;
}

// The second of two runs of `way` (the first pays for setup): its result
// and its time in seconds.
std::pair<std::pair<torch::Tensor, int64_t>, double> second_run(const Way& way) {
  way();
  const auto start = std::chrono::steady_clock::now();
  auto result = way();
  return {std::move(result),
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()};
}

}  // namespace

IntegerWeights::Prepared IntegerWeights::get(const torch::Tensor& weight, int64_t wbits,
                                             torch::IntArrayRef stride,
                                             torch::IntArrayRef padding) {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<int64_t> geometry = stride.vec();
  geometry.insert(geometry.end(), padding.begin(), padding.end());
  if (weight_.defined() && weight_.is_same(weight) && version_ == weight._version() &&
      wbits_ == wbits && geometry_ == geometry) {
    return prepared_;
  }
  weight_ = weight;
  version_ = weight._version();
  wbits_ = wbits;
  geometry_ = geometry;
  prepared_ = Prepared{};
  const torch::Tensor w = weight.detach().to(torch::kFloat).contiguous();
  const float m = quantize::scale_of(w.data_ptr<float>(), w.numel());
  if (!std::isfinite(m)) return prepared_;
  std::vector<int16_t> codes(static_cast<size_t>(w.numel()));
  quantize::signed_code_kernel(w.data_ptr<float>(), codes.data(), w.numel(), m, grid(wbits, 0));
  kernels::int8_conv::Geometry g;
  g.out_channels = w.size(0);
  g.in_channels = w.size(1);
  g.kernel_h = w.size(2);
  g.kernel_w = w.size(3);
  g.stride_h = stride[0];
  g.stride_w = stride[1];
  g.pad_h = padding[0];
  g.pad_w = padding[1];
  prepared_.conv = std::make_shared<const kernels::int8_conv::Convolution>(g, codes.data());
  prepared_.scale = m / grid(wbits, 0).levels;
  return prepared_;
}

bool takes(const torch::Tensor& x, const torch::Tensor& weight, torch::IntArrayRef padding) {
  return kernels::fusable(x) && kernels::fusable(weight) && x.dim() == 4 && weight.dim() == 4 &&
         x.size(1) == weight.size(1) && x.size(2) + 2 * padding[0] >= weight.size(2) &&
         x.size(3) + 2 * padding[1] >= weight.size(3);
}

float InputMaximum::expected() const {
  return repeated_.load(std::memory_order_relaxed) ? last_.load(std::memory_order_relaxed)
                                                   : std::numeric_limits<float>::quiet_NaN();
}

void InputMaximum::saw(float largest) {
  repeated_.store(last_.exchange(largest, std::memory_order_relaxed) == largest,
                  std::memory_order_relaxed);
}

Codes input_codes(const torch::Tensor& x_in, int64_t abits, int64_t high_bits, bool doubled,
                  InputMaximum* maximum) {
  const torch::Tensor x = x_in.contiguous(at::MemoryFormat::ChannelsLast);
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  const int64_t width = doubled ? 2 * c : c;
  Codes codes;
  codes.hi = scratch(0, {n, h, w, width}, torch::kByte);
  if (high_bits > 0) codes.lo = scratch(1, {n, h, w, width}, torch::kByte);
  const float* data = x.data_ptr<float>();
  const quantize::Grid g = grid(abits, high_bits);
  uint8_t* hi = codes.hi.data_ptr<uint8_t>();
  uint8_t* lo = high_bits > 0 ? codes.lo.data_ptr<uint8_t>() : nullptr;
  const int64_t grain = std::max<int64_t>(1, quantize::kGrain / std::max<int64_t>(c, 1));
  // The codes with scale m; {whether every x >= 0, the largest x}.
  const auto write = [&](float m) {
    return at::parallel_reduce(
        0, n * h * w, grain, std::make_pair(true, 0.0f),
        [&](int64_t begin, int64_t end, std::pair<bool, float> acc) {
          float largest = 0.0f;
          const bool non_negative =
              quantize::code_kernel(data, c, begin, end, m, g, doubled, hi, lo, largest);
          return std::make_pair(acc.first && non_negative, std::max(acc.second, largest));
        },
        [](std::pair<bool, float> a, std::pair<bool, float> b) {
          return std::make_pair(a.first && b.first, std::max(a.second, b.second));
        });
  };
  // m = max x + 1e-7 (scale_of's, which is max |x|: the same where the
  // codes apply, every x >= 0).
  const float expected =
      maximum != nullptr ? maximum->expected() : std::numeric_limits<float>::quiet_NaN();
  float m;
  std::pair<bool, float> written;
  if (std::isfinite(expected)) {
    m = expected + quantize::kScaleEpsilon;
    written = write(m);
    if (written.first && written.second != expected) {
      m = written.second + quantize::kScaleEpsilon;
      written = write(m);
    }
  } else {
    m = quantize::scale_of(data, x.numel());  // (NaN where some x is: no codes)
    written = write(m);
  }
  if (maximum != nullptr && written.first) maximum->saw(written.second);
  codes.non_negative = written.first && std::isfinite(m);
  codes.lo_scale = m / g.levels;
  codes.hi_scale = codes.lo_scale * g.step;
  return codes;
}

torch::Tensor convolve(const kernels::int8_conv::Convolution& conv, const torch::Tensor& codes,
                       float scale, int scratch_slot) {
  const kernels::int8_conv::Geometry& g = conv.geometry();
  const int64_t n = codes.size(0), h = codes.size(1), w = codes.size(2);
  const auto [oh, ow] = output_plane(g, h, w);
  const std::vector<int64_t> sizes{n, g.out_channels, oh, ow};
  torch::Tensor y =
      scratch_slot >= 0
          ? scratch(2 + scratch_slot, sizes, torch::kFloat, at::MemoryFormat::ChannelsLast)
          : torch::empty(
                sizes,
                torch::TensorOptions(torch::kFloat).memory_format(at::MemoryFormat::ChannelsLast));
  conv.run(codes.data_ptr<uint8_t>(), n, h, w, scale, y.data_ptr<float>());
  return y;
}

torch::Tensor convolve(const kernels::int8_conv::Convolution& conv, const torch::Tensor& codes,
                       float scale, const kernels::Affine& then, const torch::Tensor& residual) {
  const kernels::int8_conv::Geometry& g = conv.geometry();
  const int64_t n = codes.size(0), h = codes.size(1), w = codes.size(2);
  const auto [oh, ow] = output_plane(g, h, w);
  const torch::Tensor channel_scale = (then.scale.detach().to(torch::kFloat) * scale).contiguous();
  const torch::Tensor shift = then.shift.detach().to(torch::kFloat).contiguous();
  TORCH_CHECK(channel_scale.numel() == g.out_channels && shift.numel() == g.out_channels,
              "a BatchNorm of ", channel_scale.numel(), " channels after a convolution of ",
              g.out_channels);
  const std::vector<int64_t> sizes{n, g.out_channels, oh, ow};
  torch::Tensor y;
  if (residual.defined()) {
    TORCH_CHECK(residual.sizes() == torch::IntArrayRef(sizes), "a residual of ", residual.sizes(),
                " added to a convolution's output of ", sizes);
    y = writable_copy(residual);
  } else {
    y = torch::empty(
        sizes, torch::TensorOptions(torch::kFloat).memory_format(at::MemoryFormat::ChannelsLast));
  }
  conv.run(codes.data_ptr<uint8_t>(), n, h, w,
           kernels::int8_conv::ChannelMap{channel_scale.data_ptr<float>(), shift.data_ptr<float>(),
                                          then.relu, then.upper, residual.defined()},
           y.data_ptr<float>());
  return y;
}

Chosen run(Integer mode, const std::vector<int64_t>& shape, const Way& integer_way,
           const Way& float_way) {
  const auto in_float = [&] {
    auto [y, open] = float_way();
    return Chosen{y, open, false};
  };
  // The integer way, or the float way where it does not take this input.
  const auto in_integers = [&] {
    auto [y, open] = integer_way();
    return y.defined() ? Chosen{y, open, true} : in_float();
  };
  if (mode != Integer::kFastest) return in_integers();
  static std::mutex mutex;
  static std::map<std::vector<int64_t>, bool> faster_in_integers;
  {
    std::lock_guard<std::mutex> lock(mutex);
    const auto known = faster_in_integers.find(shape);
    if (known != faster_in_integers.end()) return known->second ? in_integers() : in_float();
  }
  const auto [integer_result, integer_time] = second_run(integer_way);
  if (!integer_result.first.defined()) return in_float();  // not for this input: not timed
  const double float_time = second_run(float_way).second;
  const bool integers = integer_time < float_time;
  {
    std::lock_guard<std::mutex> lock(mutex);
    faster_in_integers[shape] = integers;
  }
  // Once more the faster way, so that what the ways leave behind (a layer's
  // kept decisions) is that way's.
  return integers ? in_integers() : in_float();
}

}  // namespace dnn_gating::layers::integer_conv
