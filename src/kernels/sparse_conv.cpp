#include "kernels/sparse_conv.h"

#include <ATen/Parallel.h>
#include <ATen/record_function.h>

#include <algorithm>
#include <cstring>

#include "kernels/conv_geometry.h"
#include "kernels/fusable.h"
#include "kernels/isa.h"
#include "kernels/simd.h"
#include "kernels/vec16.h"

namespace dnn_gating::kernels::sparse_conv {
namespace {

using namespace vec16;  // NOLINT: the kernels below are written in its terms

// A convolution over an NHWC input padded beforehand (in_h, in_w include the
// padding; pad_h = pad_w = 0), writing only the open outputs.
struct Geometry : ConvGeometry {
  int64_t words = 0;               // of open-output bits per output position
  bool out_channels_last = false;  // y laid out [N, H', W', O] rather than [N, O, H', W']
};

// One open output waiting for its sum: where its patch, its channel's weights
// and its value are.
struct Pending {
  const float* patch;
  const float* weight;
  float* out;
};

// Adds to each of M pending outputs the dot product of its weights and its
// patch. The M sums are independent chains, so their multiply-adds overlap
// instead of waiting on each other; the outputs may belong to different
// positions, so that sparse gates still fill every chain. Any kernel shape
// and channel count (the kernels below serve 3x3 over 16, 32 and 64 faster).
template <int M>
DG_INLINE void add_dots(const Geometry& g, const Pending* p) {
  const int64_t row_len = g.kernel_w * g.channels;
  const int64_t kernel_h = g.kernel_h;
  const int64_t row_stride = g.in_w * g.channels;
  Vec acc[M] = {};
  float tail[M] = {};
  for (int64_t i = 0; i < kernel_h; ++i) {
    const int64_t x_off = i * row_stride, w_off = i * row_len;
    int64_t j = 0;
    for (; j + kVec <= row_len; j += kVec) {
      for (int m = 0; m < M; ++m) {
        acc[m] += load(p[m].weight + w_off + j) * load(p[m].patch + x_off + j);
      }
    }
    for (; j < row_len; ++j) {
      for (int m = 0; m < M; ++m) tail[m] += p[m].weight[w_off + j] * p[m].patch[x_off + j];
    }
  }
  float sum[M];
  if constexpr (M == 4) {
    horizontal_sums4(acc, sum);
  } else {
    for (int m = 0; m < M; ++m) sum[m] = horizontal_sum(acc[m]);
  }
  for (int m = 0; m < M; ++m) *p[m].out += sum[m] + tail[m];
}

// The open outputs of output rows [first, last) (row = n * out_h + h).
DG_INLINE void add_rows_of(const Geometry& g, const float* xp, const float* weight,
                           const uint64_t* words, float* y, int64_t first, int64_t last) {
  constexpr int kChains = 4;
  const int64_t plane = g.out_h * g.out_w;
  const int64_t patch_len = g.kernel_h * g.kernel_w * g.channels;
  const int64_t step = g.out_channels_last ? 1 : plane;
  Pending pending[kChains];
  int m = 0;
  for (int64_t row = first; row < last; ++row) {
    const int64_t n = row / g.out_h, h = row % g.out_h;
    for (int64_t w = 0; w < g.out_w; ++w) {
      const uint64_t* bits_of = words + (row * g.out_w + w) * g.words;
      const float* patch =
          xp + ((n * g.in_h + h * g.stride_h) * g.in_w + w * g.stride_w) * g.channels;
      const int64_t position = row * g.out_w + w;
      float* out = g.out_channels_last ? y + position * g.out_channels
                                       : y + n * g.out_channels * plane + h * g.out_w + w;
      for (int64_t k = 0; k < g.words; ++k) {
        for (uint64_t bits = bits_of[k]; bits != 0; bits &= bits - 1) {
          const int64_t channel = k * 64 + __builtin_ctzll(bits);
          pending[m++] = {patch, weight + channel * patch_len, out + channel * step};
          if (m == kChains) {
            add_dots<kChains>(g, pending);
            m = 0;
          }
        }
      }
    }
  }
  switch (m) {
    case 3:
      add_dots<3>(g, pending);
      break;
    case 2:
      add_dots<2>(g, pending);
      break;
    case 1:
      add_dots<1>(g, pending);
      break;
    default:
      break;
  }
}

// Adds to *outs[m] the sum of the lanes of acc[m][0] + acc[m][1], four
// outputs sharing one transposing reduction.
template <int M>
DG_INLINE void add_sums(const Vec (&acc)[M][2], float* const* outs) {
  Vec total[M];
  for (int m = 0; m < M; ++m) total[m] = acc[m][0] + acc[m][1];
  float sums[M];
  if constexpr (M == 4) {
    horizontal_sums4(total, sums);
  } else {
    for (int m = 0; m < M; ++m) sums[m] = horizontal_sum(total[m]);
  }
  for (int m = 0; m < M; ++m) *outs[m] += sums[m];
}

// The 3x3 kernels over 16 or 32 input channels, position by position: a
// position's open outputs are taken four at a time, so each patch vector is
// loaded once for four multiply-adds (NV vectors per kernel row). Weight
// vectors that are zero for all four (a CG layer's own input group, outside
// its rest) are skipped.
template <int M, int NV>
DG_INLINE void add_patch_dots(const float* patch, int64_t row_stride, const float* weight,
                              const uint64_t* zero, const int32_t* channels, float* const* outs) {
  constexpr int64_t kPatchLen = 3 * NV * kVec;
  constexpr int kChains = 2;  // per output: with M = 4, eight independent sums
  const float* w[M];
  uint64_t skip = ~uint64_t{0};
  for (int m = 0; m < M; ++m) {
    w[m] = weight + channels[m] * kPatchLen;
    skip &= zero[channels[m]];
  }
  Vec acc[M][kChains] = {};
#pragma GCC unroll 64
  for (int k = 0; k < 3 * NV; ++k) {
    if ((skip >> k) & 1) continue;
    const Vec x = load(patch + (k / NV) * row_stride + (k % NV) * kVec);
    for (int m = 0; m < M; ++m) acc[m][k % kChains] += load(w[m] + k * kVec) * x;
  }
  add_sums<M>(acc, outs);
}

template <int NV>
DG_INLINE void add_rows_by_position(const Geometry& g, const float* xp, const float* weight,
                                    const uint64_t* zero, const uint64_t* words, float* y,
                                    int64_t first, int64_t last) {
  const int64_t plane = g.out_h * g.out_w;
  const int64_t row_stride = g.in_w * g.channels;
  const int64_t step = g.out_channels_last ? 1 : plane;
  thread_local std::vector<int32_t> channels;
  thread_local std::vector<float*> outs;
  channels.resize(g.out_channels);
  outs.resize(g.out_channels);
  for (int64_t row = first; row < last; ++row) {
    const int64_t n = row / g.out_h, h = row % g.out_h;
    for (int64_t w = 0; w < g.out_w; ++w) {
      const int64_t position = row * g.out_w + w;
      const uint64_t* bits_of = words + position * g.words;
      float* out = g.out_channels_last ? y + position * g.out_channels
                                       : y + n * g.out_channels * plane + h * g.out_w + w;
      int64_t count = 0;
      for (int64_t k = 0; k < g.words; ++k) {
        for (uint64_t bits = bits_of[k]; bits != 0; bits &= bits - 1) {
          const auto c = static_cast<int32_t>(k * 64 + __builtin_ctzll(bits));
          channels[count] = c;
          outs[count++] = out + c * step;
        }
      }
      const float* at = xp + ((n * g.in_h + h * g.stride_h) * g.in_w + w * g.stride_w) * g.channels;
      int64_t i = 0;
      for (; i + 4 <= count; i += 4) {
        add_patch_dots<4, NV>(at, row_stride, weight, zero, &channels[i], &outs[i]);
      }
      switch (count - i) {
        case 3:
          add_patch_dots<3, NV>(at, row_stride, weight, zero, &channels[i], &outs[i]);
          break;
        case 2:
          add_patch_dots<2, NV>(at, row_stride, weight, zero, &channels[i], &outs[i]);
          break;
        case 1:
          add_patch_dots<1, NV>(at, row_stride, weight, zero, &channels[i], &outs[i]);
          break;
        default:
          break;
      }
    }
  }
}

// Dot products of one output channel's weights with the patches of up to
// four positions: the weight vector is loaded once for all of them.
template <int M, int NV>
DG_INLINE void add_channel_dots(const float* w, uint64_t skip, const float* const* patches,
                                int64_t row_stride, float* const* outs) {
  constexpr int kChains = 2;
  Vec acc[M][kChains] = {};
#pragma GCC unroll 64
  for (int k = 0; k < 3 * NV; ++k) {
    if ((skip >> k) & 1) continue;
    const Vec wk = load(w + k * kVec);
    const int64_t offset = (k / NV) * row_stride + (k % NV) * kVec;
    for (int m = 0; m < M; ++m) acc[m][k % kChains] += wk * load(patches[m] + offset);
  }
  add_sums<M>(acc, outs);
}

// The same channel by channel over blocks of positions: where one output
// channel's weights outgrow the first-level cache (64 channels: 2.3 KB per
// channel, 147 KB in all), each channel's weights serve every open output
// of the block while they are at hand.
template <int NV>
DG_INLINE void add_rows_by_channel(const Geometry& g, const float* xp, const float* weight,
                                   const uint64_t* zero, const uint64_t* words, float* y,
                                   int64_t first, int64_t last) {
  constexpr int64_t kPatchLen = 3 * NV * kVec;
  constexpr int64_t kMaxBlock = 64;  // positions
  const int64_t plane = g.out_h * g.out_w;
  const int64_t row_stride = g.in_w * g.channels;
  const int64_t step = g.out_channels_last ? 1 : plane;
  const int64_t rows_per_block = std::max<int64_t>(1, kMaxBlock / g.out_w);
  thread_local std::vector<const float*> patches;
  thread_local std::vector<float*> outs;
  thread_local std::vector<int32_t> listed;  // per channel, its open positions in the block
  thread_local std::vector<int32_t> listed_count;
  const int64_t block_cap = rows_per_block * g.out_w;
  patches.resize(block_cap);
  outs.resize(block_cap);
  listed.resize(g.out_channels * block_cap);
  listed_count.resize(g.out_channels);
  for (int64_t row0 = first; row0 < last; row0 += rows_per_block) {
    const int64_t row1 = std::min(last, row0 + rows_per_block);
    std::fill(listed_count.begin(), listed_count.end(), 0);
    int32_t count = 0;
    for (int64_t row = row0; row < row1; ++row) {
      const int64_t n = row / g.out_h, h = row % g.out_h;
      for (int64_t w = 0; w < g.out_w; ++w, ++count) {
        const int64_t position = row * g.out_w + w;
        patches[count] =
            xp + ((n * g.in_h + h * g.stride_h) * g.in_w + w * g.stride_w) * g.channels;
        outs[count] = g.out_channels_last ? y + position * g.out_channels
                                          : y + n * g.out_channels * plane + h * g.out_w + w;
        const uint64_t* bits_of = words + position * g.words;
        for (int64_t k = 0; k < g.words; ++k) {
          for (uint64_t bits = bits_of[k]; bits != 0; bits &= bits - 1) {
            const int64_t c = k * 64 + __builtin_ctzll(bits);
            listed[c * block_cap + listed_count[c]++] = count;
          }
        }
      }
    }
    for (int64_t c = 0; c < g.out_channels; ++c) {
      const int32_t* at = &listed[c * block_cap];
      const int32_t open = listed_count[c];
      const float* w = weight + c * kPatchLen;
      const float* p[4];
      float* o[4];
      for (int32_t i = 0; i < open; i += 4) {
        const int32_t m = std::min(4, open - i);
        for (int32_t j = 0; j < m; ++j) {
          p[j] = patches[at[i + j]];
          o[j] = outs[at[i + j]] + c * step;
        }
        switch (m) {
          case 4:
            add_channel_dots<4, NV>(w, zero[c], p, row_stride, o);
            break;
          case 3:
            add_channel_dots<3, NV>(w, zero[c], p, row_stride, o);
            break;
          case 2:
            add_channel_dots<2, NV>(w, zero[c], p, row_stride, o);
            break;
          default:
            add_channel_dots<1, NV>(w, zero[c], p, row_stride, o);
            break;
        }
      }
    }
  }
}

// 3x3 kernels over 16, 32 or 64 input channels take the kernels above; any
// other shape the generic one.
DG_INLINE void add_rows_any(const Geometry& g, const float* xp, const float* weight,
                            const uint64_t* zero, const uint64_t* words, float* y, int64_t first,
                            int64_t last) {
  const bool three_by_three = g.kernel_h == 3 && g.kernel_w == 3;
  if (three_by_three && g.channels == 16) {
    add_rows_by_position<3>(g, xp, weight, zero, words, y, first, last);
  } else if (three_by_three && g.channels == 32) {
    add_rows_by_position<6>(g, xp, weight, zero, words, y, first, last);
  } else if (three_by_three && g.channels == 64) {
    add_rows_by_channel<12>(g, xp, weight, zero, words, y, first, last);
  } else {
    add_rows_of(g, xp, weight, words, y, first, last);
  }
}

// add_rows_any compiled at AVX-512 (x86-64-v4), AVX2 with FMA (x86-64-v3)
// and the baseline, chosen by isa::level(), which DNN_GATING_MAX_ISA caps.
#define DG_ADD_ROWS_AT(name, attributes)                                                     \
  attributes void name(const Geometry& g, const float* xp, const float* weight,              \
                       const uint64_t* zero, const uint64_t* words, float* y, int64_t first, \
                       int64_t last) {                                                       \
    add_rows_any(g, xp, weight, zero, words, y, first, last);                                \
  }
DG_ADD_ROWS_AT(add_rows_baseline, )
#if DNN_GATING_KERNEL_LEVELS
DG_ADD_ROWS_AT(add_rows_avx512, __attribute__((target("arch=x86-64-v4"))))
DG_ADD_ROWS_AT(add_rows_avx2, __attribute__((target("arch=x86-64-v3"))))
#endif
#undef DG_ADD_ROWS_AT

void add_rows(const Geometry& g, const float* xp, const float* weight, const uint64_t* zero,
              const uint64_t* words, float* y, int64_t first, int64_t last) {
#if DNN_GATING_KERNEL_LEVELS
  isa::at_level(add_rows_avx512, add_rows_avx2, add_rows_baseline)(g, xp, weight, zero, words, y,
                                                                   first, last);
#else
  add_rows_baseline(g, xp, weight, zero, words, y, first, last);
#endif
}

// Per output channel of an [O, kh, kw, C] weight, bit k set where its k-th
// run of 16 values is all zero (only the first 64 runs are looked at).
std::vector<uint64_t> zero_runs(const torch::Tensor& weight) {
  const int64_t out = weight.size(0), len = weight.numel() / std::max<int64_t>(out, 1);
  const float* w = weight.data_ptr<float>();
  std::vector<uint64_t> zero(out, 0);
  for (int64_t o = 0; o < out; ++o) {
    for (int64_t k = 0; k < std::min<int64_t>(len / kVec, 64); ++k) {
      const float* run = w + o * len + k * kVec;
      if (std::all_of(run, run + kVec, [](float v) { return v == 0.0f; }))
        zero[o] |= uint64_t{1} << k;
    }
  }
  return zero;
}

}  // namespace

int64_t OpenOutputs::num_outputs() const {
  return words.defined() ? words.size(0) * words.size(1) * words.size(2) * channels : 0;
}

torch::Tensor OpenOutputs::mask() const {
  TORCH_CHECK(words.defined(), "OpenOutputs::mask of no outputs");
  const int64_t n = words.size(0), h = words.size(1), w = words.size(2);
  const int64_t per = words_per_position();
  torch::Tensor out =
      torch::empty({n, channels, h, w}, torch::kByte).contiguous(at::MemoryFormat::ChannelsLast);
  const torch::Tensor packed = words.contiguous();
  const auto* wp = reinterpret_cast<const uint64_t*>(packed.data_ptr<int64_t>());
  uint8_t* op = out.data_ptr<uint8_t>();
  for (int64_t p = 0; p < n * h * w; ++p) {
    for (int64_t c = 0; c < channels; ++c)
      op[p * channels + c] = static_cast<uint8_t>((wp[p * per + c / 64] >> (c % 64)) & 1);
  }
  return out;
}

double OpenOutputs::on_fraction() const {
  const int64_t total = num_outputs();
  return total == 0 ? 0.0 : static_cast<double>(count) / static_cast<double>(total);
}

OpenOutputs OpenOutputs::none(torch::IntArrayRef shape) {
  TORCH_CHECK(shape.size() == 4, "open outputs need an [N, C, H, W] shape, got ", shape);
  OpenOutputs open;
  open.channels = shape[1];
  open.words =
      torch::zeros({shape[0], shape[2], shape[3], open.words_per_position()}, torch::kLong);
  return open;
}

OpenOutputs OpenOutputs::all(torch::IntArrayRef shape) {
  OpenOutputs open = none(shape);
  auto* w = reinterpret_cast<uint64_t*>(open.words.data_ptr<int64_t>());
  const int64_t per = open.words_per_position();
  for (int64_t i = 0; i < open.words.numel(); ++i) {
    const int64_t left = open.channels - (i % per) * 64;
    w[i] = left >= 64 ? ~uint64_t{0} : (uint64_t{1} << left) - 1;
  }
  open.count = open.num_outputs();
  return open;
}

PaddedInput pad_channels_last(const torch::Tensor& x_in, torch::IntArrayRef padding) {
  RECORD_FUNCTION("dnn_gating::pad_channels_last", std::vector<c10::IValue>());
  TORCH_CHECK(x_in.dim() == 4 && x_in.scalar_type() == torch::kFloat && x_in.device().is_cpu(),
              "pad_channels_last takes a float [N, C, H, W] tensor on the CPU, got ", x_in.sizes());
  const int64_t ph = padding[0], pw = padding[1];
  const bool cl = channels_last(x_in);
  const torch::Tensor x = cl ? x_in : x_in.contiguous();
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  const int64_t hp = h + 2 * ph, wp = w + 2 * pw;
  torch::Tensor out = torch::empty({n, hp, wp, c}, x.options());
  const float* src = x.data_ptr<float>();
  float* dst = out.data_ptr<float>();
  at::parallel_for(0, n * hp, std::max<int64_t>(1, 4096 / (wp * c)), [&](int64_t a, int64_t b) {
    for (int64_t row = a; row < b; ++row) {
      float* d = dst + row * wp * c;
      const int64_t img = row / hp, r = row % hp - ph;
      if (r < 0 || r >= h) {
        std::memset(d, 0, sizeof(float) * wp * c);
        continue;
      }
      std::memset(d, 0, sizeof(float) * pw * c);
      std::memset(d + (pw + w) * c, 0, sizeof(float) * pw * c);
      float* inner = d + pw * c;
      if (cl) {  // already [N, H, W, C]: one row at a time
        std::memcpy(inner, src + (img * h + r) * w * c, sizeof(float) * w * c);
        continue;
      }
      for (int64_t ch = 0; ch < c; ++ch) {
        const float* s = src + ((img * c + ch) * h + r) * w;
        for (int64_t col = 0; col < w; ++col) inner[col * c + ch] = s[col];
      }
    }
  });
  return {out};
}

void add_at_open(const torch::Tensor& x, const torch::Tensor& weight, torch::IntArrayRef stride,
                 torch::IntArrayRef padding, const OpenOutputs& open, const torch::Tensor& y) {
  if (open.count == 0) return;
  add_at_open(pad_channels_last(x, padding), weight, stride, open, y);
}

void add_at_open(const PaddedInput& x, const torch::Tensor& weight_in, torch::IntArrayRef stride,
                 const OpenOutputs& open, const torch::Tensor& y) {
  RECORD_FUNCTION("dnn_gating::add_at_open", std::vector<c10::IValue>());
  const torch::Tensor& xp = x.data;
  TORCH_CHECK(xp.dim() == 4 && weight_in.dim() == 4 && y.dim() == 4,
              "add_at_open needs 4-d input, weight and output");
  TORCH_CHECK(weight_in.scalar_type() == torch::kFloat && y.scalar_type() == torch::kFloat &&
                  y.device().is_cpu(),
              "add_at_open computes float tensors on the CPU");
  const bool out_cl = channels_last(y);
  TORCH_CHECK(y.is_contiguous() || out_cl,
              "add_at_open writes a contiguous or channels-last output");
  TORCH_CHECK(
      weight_in.size(1) == xp.size(3) && weight_in.size(0) == y.size(1) && xp.size(0) == y.size(0),
      "add_at_open: input ", xp.sizes(), " (padded, channels last), weight ", weight_in.sizes(),
      " and output ", y.sizes(), " do not match");
  Geometry g{};
  g.batch = xp.size(0);
  g.channels = xp.size(3);
  g.out_channels = y.size(1);
  g.kernel_h = weight_in.size(2);
  g.kernel_w = weight_in.size(3);
  g.stride_h = stride[0];
  g.stride_w = stride[1];
  g.in_h = xp.size(1);
  g.in_w = xp.size(2);
  g.out_h = y.size(2);
  g.out_w = y.size(3);
  g.words = open.words_per_position();
  g.out_channels_last = out_cl;
  TORCH_CHECK(g.out_h == (g.in_h - g.kernel_h) / g.stride_h + 1 &&
                  g.out_w == (g.in_w - g.kernel_w) / g.stride_w + 1,
              "add_at_open: output ", y.sizes(), " is not the convolution's");
  TORCH_CHECK(open.channels == g.out_channels &&
                  open.words.sizes() == torch::IntArrayRef({g.batch, g.out_h, g.out_w, g.words}),
              "add_at_open: open outputs do not describe an output of shape ", y.sizes());
  if (open.count == 0) return;
  // [O, kh, kw, C]: one output channel's weights in the patch's order.
  const torch::Tensor weight = weight_in.permute({0, 2, 3, 1}).contiguous();
  const float* xpp = xp.data_ptr<float>();
  const float* wp = weight.data_ptr<float>();
  const std::vector<uint64_t> zero = zero_runs(weight);
  const auto* bits = reinterpret_cast<const uint64_t*>(open.words.data_ptr<int64_t>());
  float* yp = y.data_ptr<float>();
  const int64_t rows = g.batch * g.out_h;
  at::parallel_for(0, rows, std::max<int64_t>(1, 64 / g.out_w), [&](int64_t a, int64_t b) {
    add_rows(g, xpp, wp, zero.data(), bits, yp, a, b);
  });
}

}  // namespace dnn_gating::kernels::sparse_conv
