#pragma once
// How a gate decides without a backward pass: one comparison of its logit.
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

}  // namespace dnn_gating::kernels::gate_decision
