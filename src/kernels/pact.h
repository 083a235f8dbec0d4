#pragma once
// PACT's element loops: the clipped activation and its two gradients in one
// pass each, compiled for AVX-512, AVX2 and the x86-64 baseline.
#include <cstdint>

namespace dnn_gating::kernels::pact {

/// Where each input lies relative to [0, u]: the backward pass keeps these
/// bytes instead of the input.
/// kAtZero (x == 0, inside) is kept only where a quantizer follows the
/// clip: its straight-through gradient stops where the clipped value is 0.
enum Region : uint8_t { kBelow = 0, kInside = 1, kAbove = 2, kAtZero = 3 };

/// clamp(v, 0, bound) as PACT computes it (a NaN stays NaN).
inline float clip(float v, float bound) { return v < 0.0f ? 0.0f : (v > bound ? bound : v); }

/// v's region; with `MarkZero` (a quantizer follows the clip), kAtZero
/// where v == 0.
template <bool MarkZero>
inline uint8_t region_of(float v, float bound) {
  if (v < 0.0f) return kBelow;
  if (v > bound) return kAbove;
  return MarkZero && v == 0.0f ? kAtZero : kInside;
}

/// y = clamp(x, 0, bound) and each element's region, over [begin, end).
void pact_forward_kernel(const float* __restrict x, float* __restrict y, uint8_t* __restrict region,
                         int64_t begin, int64_t end, float bound);

/// Over one block: grad_x = g inside [0, u]; returns the sum of g above u.
float pact_backward_kernel(const float* __restrict g, const uint8_t* __restrict region,
                           float* __restrict grad_x, int64_t begin, int64_t end);

}  // namespace dnn_gating::kernels::pact
