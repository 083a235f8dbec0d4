#pragma once
// How a gate decides without its sigmoid stored: one comparison of its logit.
#include <algorithm>
#include <cmath>
#include <cstdint>

namespace dnn_gating::kernels::gate_decision {

// Without a backward pass the sigmoid itself is not needed, only whether
// ATen's float sigmoid 1 / (1 + exp(-z)) exceeds 0.5. It does for no z <= 0
// and for every z above kLastClosedLogit = 1.5 * 2^-24: below 1e-5 the float
// exp(-z) is the correctly rounded 1 - z + z^2/2, so 1 + exp(-z) rounds to
// 2 - 2^-23 or below (and its reciprocal above 0.5) exactly from there on,
// and every step is monotone in z. One comparison therefore decides as the
// sigmoid does; a test checks it against ATen's sigmoid for every float in
// [0, 1e-5].
constexpr float kLastClosedLogit = 0x1.8p-24f;

inline float logit(float a, float threshold, float alpha) { return alpha * (a - threshold); }
inline bool sigmoid_above_half(float z) { return z > kLastClosedLogit; }

// sparse_bp cuts the gate's gradient where ATen's float sigmoid is below
// 0.5: for every z at or below kFirstCutLogit, the float just above
// -1.5 * 2^-23, and no z above it. Below 1e-5 the float exp(-z) is the
// correctly rounded 1 - z + z^2/2; 1 + exp(-z) exceeds 2 (and its
// reciprocal falls below 0.5) once exp(-z) rounds to 1 + 2^-22, which
// z^2/2 decides at the float just above -1.5 * 2^-23. A test checks it
// against ATen's sigmoid for every float in [-1e-5, -1e-8] and values around.
constexpr float kFirstCutLogit = -0x1.7ffffep-23f;
inline bool sigmoid_below_half(float z) { return z <= kFirstCutLogit; }

// 1 / (1 + exp(-z)) for the gate's gradient factor s (1 - s), computed in
// the element loop (Cephes' single-precision exp: a reduction by ln 2 and a
// polynomial, within 2 ulp, and no call, so that the loop vectorises). The
// gate's decisions never read it: they take the two comparisons above.
inline float sigmoid(float z) {
  const float x = std::min(std::max(-z, -87.3f), 88.3f);
  const float n = std::floor(x * 1.44269504088896341f + 0.5f);
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float e = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) * (int32_t{1} << 23);
  return 1.0f / (1.0f + e * __builtin_bit_cast(float, bits));
}

}  // namespace dnn_gating::kernels::gate_decision
