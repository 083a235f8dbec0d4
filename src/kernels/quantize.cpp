#include "kernels/quantize.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>

#include "kernels/pact.h"
#include "kernels/simd.h"

namespace dnn_gating::kernels::quantize {
namespace {

// The largest key(bit pattern of x) over [begin, end) (keys are int32, 0
// at least), one running maximum per lane: integer maxima vectorise where
// float ones do not.
template <typename Key>
[[gnu::always_inline]] inline int32_t max_key(const float* __restrict x, int64_t begin, int64_t end,
                                              Key key) {
  using simd::kLanes;
  int32_t lanes[kLanes] = {};
  int64_t i = begin;
  for (; i + kLanes <= end; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) {
      int32_t bits;
      std::memcpy(&bits, x + i + j, sizeof bits);
      lanes[j] = std::max(lanes[j], key(bits));
    }
  }
  int32_t result = 0;
  for (const int32_t lane : lanes) result = std::max(result, lane);
  for (; i < end; ++i) {
    int32_t bits;
    std::memcpy(&bits, x + i, sizeof bits);
    result = std::max(result, key(bits));
  }
  return result;
}

constexpr int32_t kMagnitude = 0x7fffffff;
constexpr int32_t kInfinity = 0x7f800000;

// max |x| over [begin, end): with the sign cleared, the bit patterns of
// floats order as their values (NaN above every number).
DNN_GATING_SIMD_CLONES
float max_abs_kernel(const float* __restrict x, int64_t begin, int64_t end) {
  const int32_t result = max_key(x, begin, end, [](int32_t bits) { return bits & kMagnitude; });
  float max_abs;
  std::memcpy(&max_abs, &result, sizeof max_abs);
  return max_abs;
}

// The largest positive x over [begin, end) (+0 where none is), or a NaN
// where some x is one (of either sign, as max |x| would be): positive bit
// patterns order as their values, every negative one lies below them, and
// a NaN's pattern with the sign cleared lies above every number's.
DNN_GATING_SIMD_CLONES
float max_positive_kernel(const float* __restrict x, int64_t begin, int64_t end) {
  const int32_t result = max_key(x, begin, end, [](int32_t bits) {
    const int32_t magnitude = bits & kMagnitude;
    return magnitude > kInfinity ? magnitude : bits;
  });
  float max_positive;
  std::memcpy(&max_positive, &result, sizeof max_positive);
  return max_positive;
}

// max(a, b) where a NaN wins, as ATen's max: the blocks' maxima combine
// into a NaN scale where any block saw a NaN.
inline float larger(float a, float b) { return std::isnan(a) || a > b ? a : b; }

// Round half to even of a value in [0, 2^23): adding and subtracting 2^23
// leaves exactly the rounded integer under the default rounding mode, the
// same result as std::nearbyint (and torch::round) without a libm call per
// element, so the loops vectorise.
inline float round_non_negative(float v) {
  constexpr float kTwo23 = 8388608.0f;
  return (v + kTwo23) - kTwo23;
}

// floor of a non-negative value below 2^31.
inline float floor_non_negative(float v) { return static_cast<float>(static_cast<int32_t>(v)); }

// The normalised magnitude clamp(|v| / m, 0, 1), computed as ATen does.
inline float unit_magnitude(float v, float m) {
  const float c = std::fabs(v) / m;
  const float low = c < 0.0f ? 0.0f : c;
  return low > 1.0f ? 1.0f : low;
}

// Restores scale and sign: value_on_grid / levels * m * sign(v), branch-free.
inline float restore(float grid, float n, float m, float v) {
  const float sign = static_cast<float>((v > 0.0f) - (v < 0.0f));
  return grid / n * m * sign;
}

}  // namespace

float scale_of(const float* data, int64_t n) {
  const float max_abs = at::parallel_reduce(
      0, n, kGrain, 0.0f,
      [data](int64_t begin, int64_t end, float acc) {
        return larger(acc, max_abs_kernel(data, begin, end));
      },
      larger);
  return max_abs + kScaleEpsilon;
}

DNN_GATING_SIMD_CLONES
void quantize_kernel(const float* __restrict x, float* __restrict y, int64_t begin, int64_t end,
                     float m, Grid g) {
  for (int64_t i = begin; i < end; ++i) {
    y[i] = restore(round_non_negative(unit_magnitude(x[i], m) * g.levels), g.levels, m, x[i]);
  }
}

// Q_bits(x) that also marks where x != 0, the support of its gradient: one
// byte per element to keep for the backward pass instead of x itself.
DNN_GATING_SIMD_CLONES
void quantize_marking_kernel(const float* __restrict x, float* __restrict y,
                             uint8_t* __restrict nonzero, int64_t begin, int64_t end, float m,
                             Grid g) {
  for (int64_t i = begin; i < end; ++i) {
    y[i] = restore(round_non_negative(unit_magnitude(x[i], m) * g.levels), g.levels, m, x[i]);
    nonzero[i] = x[i] != 0.0f;
  }
}

DNN_GATING_SIMD_CLONES
void truncate_kernel(const float* __restrict x, float* __restrict y, int64_t begin, int64_t end,
                     float m, Grid g) {
  for (int64_t i = begin; i < end; ++i) {
    const float code = round_non_negative(unit_magnitude(x[i], m) * g.levels);
    y[i] = restore(floor_non_negative(code / g.step) * g.step, g.levels, m, x[i]);
  }
}

DNN_GATING_SIMD_CLONES
void split_kernel(const float* __restrict x, float* __restrict hi, float* __restrict lo,
                  int64_t begin, int64_t end, float m, Grid g) {
  for (int64_t i = begin; i < end; ++i) {
    const float code = round_non_negative(unit_magnitude(x[i], m) * g.levels);
    const float msb = restore(floor_non_negative(code / g.step) * g.step, g.levels, m, x[i]);
    hi[i] = msb;
    lo[i] = restore(code, g.levels, m, x[i]) - msb;
  }
}

DNN_GATING_SIMD_CLONES
void binarize_kernel(const float* __restrict x, float* __restrict y, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; ++i) {
    const float c = std::min(std::max(x[i], -1.0f), 1.0f);
    y[i] = 2.0f * round_non_negative((c + 1.0f) / 2.0f) - 1.0f;
  }
}

namespace {

// The codes of positions [begin, end) of a channels-last x; returns 1 where
// some x < 0, and the largest x in `top` (valid where none is). `Lo`,
// `Doubled` and (where not 0) the channel count `C` are fixed per instance,
// so that the loops vectorise without a remainder.
//
// Each code is ATen's round(clamp(|v| / m, 0, 1) * levels), but the
// division, which would bound the pass, is a multiplication by 1 / m:
// |v| * (1 / m) lies within 3 roundings (3 * 2^-24, relative) of the
// quotient |v| / m, so t = that * levels lies within 5 * 2^-24 * levels of
// the exact way's t, and both round to the same code unless t lies that
// close to a half-integer. A block where some t lies within
// levels * 2^-20 of one (16 times the bound) is coded again with the
// division. The high part's division by the step, a power of two, is exact
// as a multiplication.
template <bool Lo, bool Doubled, int64_t C>
[[gnu::always_inline]] inline int channels_last_codes(const float* __restrict x, int64_t c_runtime,
                                                      int64_t begin, int64_t end, float m, Grid g,
                                                      uint8_t* __restrict hi,
                                                      uint8_t* __restrict lo, float& top) {
  const int64_t channels = C > 0 ? C : c_runtime;
  const int64_t width = Doubled ? 2 * channels : channels;
  const float reciprocal = 1.0f / m;
  const float per_step = 1.0f / g.step;
  const float near_half = 0.5f - g.levels * 0x1p-20f;
  // A block of positions at a time (a position in parts where it has more
  // channels than a block): the codes of its values as one flat loop (full
  // vectors whatever the channel count), then laid out.
  constexpr int64_t kBlock = 1024;
  uint8_t high_codes[kBlock], low_codes[kBlock];
  const int64_t positions = std::max<int64_t>(1, kBlock / channels);
  const int64_t part = std::min(channels, kBlock);
  int negative = 0;
  // The largest value as its bits (ordered as the values where every value is
  // >= 0; where one is not, unused): an integer maximum vectorises.
  int32_t largest = 0;
  // Codes values [0, n) of in into the blocks; whether some t lay near a half.
  const auto code_block = [&](auto exact, const float* __restrict in, int64_t n) {
    int near = 0, below = 0;
    int32_t top_bits = 0;  // (locals: the stores below could alias captured ones)
    for (int64_t i = 0; i < n; ++i) {
      const float v = in[i];
      below |= !(v >= 0.0f);  // (NaN too)
      int32_t bits;
      std::memcpy(&bits, &v, sizeof bits);
      top_bits = std::max(top_bits, bits);
      float unit;
      if constexpr (decltype(exact)::value) {
        unit = unit_magnitude(v, m);
      } else {
        const float q = std::fabs(v) * reciprocal;
        unit = q > 1.0f ? 1.0f : q;
      }
      const float t = unit * g.levels;
      const float code = round_non_negative(t);
      if constexpr (!decltype(exact)::value) near |= std::fabs(t - code) >= near_half;
      const float high = floor_non_negative(code * per_step);
      high_codes[i] = static_cast<uint8_t>(static_cast<int32_t>(high));
      if (Lo) low_codes[i] = static_cast<uint8_t>(static_cast<int32_t>(code - high * g.step));
    }
    negative |= below;
    largest = std::max(largest, top_bits);
    return near;
  };
  // Channels [from, from + n) of `count` positions' codes into out.
  const auto lay_out = [&](const uint8_t* __restrict codes, uint8_t* __restrict out, int64_t count,
                           int64_t n) {
    for (int64_t p = 0; p < count; ++p) {
      const uint8_t* from = codes + p * n;
      uint8_t* to = out + p * width;
      for (int64_t c = 0; c < n; ++c) {
        to[c] = static_cast<uint8_t>(Doubled ? 2 * from[c] : from[c]);
        if (Doubled) to[channels + c] = from[c];
      }
    }
  };
  for (int64_t first = begin; first < end; first += positions) {
    const int64_t count = std::min(positions, end - first);
    for (int64_t from = 0; from < channels; from += part) {
      const int64_t n = std::min(part, channels - from);
      const float* in = x + first * channels + from;
      const int64_t values = count == 1 ? n : count * channels;
      if (code_block(std::false_type{}, in, values)) code_block(std::true_type{}, in, values);
      const int64_t run = count == 1 ? n : channels;
      lay_out(high_codes, hi + first * width + from, count, run);
      if (Lo) lay_out(low_codes, lo + first * width + from, count, run);
    }
  }
  std::memcpy(&top, &largest, sizeof top);
  return negative;
}

// One clone family per variant, the channel count dispatched inside.
template <bool Lo, bool Doubled>
[[gnu::always_inline]] inline int codes_any(const float* __restrict x, int64_t channels,
                                            int64_t begin, int64_t end, float m, Grid g,
                                            uint8_t* __restrict hi, uint8_t* __restrict lo,
                                            float& top) {
  switch (channels) {
    case 16:
      return channels_last_codes<Lo, Doubled, 16>(x, 16, begin, end, m, g, hi, lo, top);
    case 32:
      return channels_last_codes<Lo, Doubled, 32>(x, 32, begin, end, m, g, hi, lo, top);
    case 64:
      return channels_last_codes<Lo, Doubled, 64>(x, 64, begin, end, m, g, hi, lo, top);
    default:
      return channels_last_codes<Lo, Doubled, 0>(x, channels, begin, end, m, g, hi, lo, top);
  }
}

DNN_GATING_BYTE_CLONES
int codes_hi(const float* __restrict x, int64_t channels, int64_t begin, int64_t end, float m,
             Grid g, uint8_t* __restrict hi, float& top) {
  return codes_any<false, false>(x, channels, begin, end, m, g, hi, nullptr, top);
}

DNN_GATING_BYTE_CLONES
int codes_hi_doubled(const float* __restrict x, int64_t channels, int64_t begin, int64_t end,
                     float m, Grid g, uint8_t* __restrict hi, float& top) {
  return codes_any<false, true>(x, channels, begin, end, m, g, hi, nullptr, top);
}

DNN_GATING_BYTE_CLONES
int codes_split(const float* __restrict x, int64_t channels, int64_t begin, int64_t end, float m,
                Grid g, uint8_t* __restrict hi, uint8_t* __restrict lo, float& top) {
  return codes_any<true, false>(x, channels, begin, end, m, g, hi, lo, top);
}

DNN_GATING_BYTE_CLONES
int codes_split_doubled(const float* __restrict x, int64_t channels, int64_t begin, int64_t end,
                        float m, Grid g, uint8_t* __restrict hi, uint8_t* __restrict lo,
                        float& top) {
  return codes_any<true, true>(x, channels, begin, end, m, g, hi, lo, top);
}

}  // namespace

bool code_kernel(const float* __restrict x, int64_t channels, int64_t begin, int64_t end, float m,
                 Grid g, bool doubled, uint8_t* __restrict hi, uint8_t* __restrict lo,
                 float& largest) {
  int negative;
  if (lo == nullptr) {
    negative = doubled ? codes_hi_doubled(x, channels, begin, end, m, g, hi, largest)
                       : codes_hi(x, channels, begin, end, m, g, hi, largest);
  } else {
    negative = doubled ? codes_split_doubled(x, channels, begin, end, m, g, hi, lo, largest)
                       : codes_split(x, channels, begin, end, m, g, hi, lo, largest);
  }
  return negative == 0;
}

DNN_GATING_SIMD_CLONES
void signed_code_kernel(const float* __restrict x, int16_t* __restrict out, int64_t n, float m,
                        Grid g) {
  for (int64_t i = 0; i < n; ++i) {
    const float sign = static_cast<float>((x[i] > 0.0f) - (x[i] < 0.0f));
    out[i] = static_cast<int16_t>(round_non_negative(unit_magnitude(x[i], m) * g.levels) * sign);
  }
}

// g where x != 0, else 0: masked_fill(g, x == 0, 0) in one pass.
DNN_GATING_SIMD_CLONES
void ste_kernel(const float* __restrict g, const float* __restrict x, float* __restrict out,
                int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; ++i) {
    const float gi = g[i];  // loaded unconditionally: a select, not a masked load
    out[i] = x[i] != 0.0f ? gi : 0.0f;
  }
}

// g where keep is set, else 0.
DNN_GATING_SIMD_CLONES
void keep_kernel(const float* __restrict g, const uint8_t* __restrict keep, float* __restrict out,
                 int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; ++i) {
    const float gi = g[i];
    out[i] = keep[i] != 0 ? gi : 0.0f;
  }
}

namespace {

template <bool KeepY>
[[gnu::always_inline]] inline void clip_quantize(const float* __restrict x, float* __restrict y,
                                                 float* __restrict q, uint8_t* __restrict region,
                                                 int64_t begin, int64_t end, float bound, float m,
                                                 Grid g) {
  for (int64_t i = begin; i < end; ++i) {
    const float v = x[i];
    const float c = pact::clip(v, bound);
    if (KeepY) y[i] = c;
    q[i] = restore(round_non_negative(unit_magnitude(c, m) * g.levels), g.levels, m, c);
    region[i] = pact::region_of<true>(v, bound);
  }
}

template <bool WithY>
[[gnu::always_inline]] inline float clip_quantize_backward(const float* __restrict gy,
                                                           const float* __restrict gq,
                                                           const uint8_t* __restrict region,
                                                           float* __restrict grad_x, int64_t begin,
                                                           int64_t end) {
  // Both gradients are loaded unconditionally so that the selects need no
  // masked loads.
  return simd::lane_sum(begin, end, [=](int64_t i) {
    const float y_part = WithY ? gy[i] : 0.0f;
    const float sum = WithY ? y_part + gq[i] : gq[i];
    const uint8_t r = region[i];
    grad_x[i] = r == pact::kInside ? sum : (r == pact::kAtZero ? y_part : 0.0f);
    return r == pact::kAbove ? sum : 0.0f;
  });
}

}  // namespace

float clipped_scale_of(const float* x, int64_t n, float bound) {
  const float max_x = at::parallel_reduce(
      0, n, kGrain, 0.0f,
      [=](int64_t begin, int64_t end, float acc) {
        return larger(acc, max_positive_kernel(x, begin, end));
      },
      larger);
  return pact::clip(max_x, bound) + kScaleEpsilon;
}

DNN_GATING_SIMD_CLONES
void clip_quantize_kernel(const float* __restrict x, float* __restrict y, float* __restrict q,
                          uint8_t* __restrict region, int64_t begin, int64_t end, float bound,
                          float m, Grid g) {
  if (y != nullptr) {
    clip_quantize<true>(x, y, q, region, begin, end, bound, m, g);
  } else {
    clip_quantize<false>(x, y, q, region, begin, end, bound, m, g);
  }
}

DNN_GATING_SIMD_CLONES
float clip_quantize_backward_kernel(const float* __restrict gy, const float* __restrict gq,
                                    const uint8_t* __restrict region, float* __restrict grad_x,
                                    int64_t begin, int64_t end) {
  return gy != nullptr ? clip_quantize_backward<true>(gy, gq, region, grad_x, begin, end)
                       : clip_quantize_backward<false>(gy, gq, region, grad_x, begin, end);
}

}  // namespace dnn_gating::kernels::quantize
