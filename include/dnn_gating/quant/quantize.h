#pragma once
/// Per-tensor quantizers of precision gating (no learned scale) with their
/// straight-through gradients.
///
/// `quantize(x, bits)` is Q_bits and `truncate(x, bits, high_bits)` is
/// T_{bits,high_bits}: both scale |x| by m = max|x| + 1e-7, round to a
/// (2^bits - 1)-level grid and restore sign and scale. Backward passes the
/// incoming gradient where x != 0 (everywhere for 1 bit).

#include <torch/torch.h>

#include <cstdint>
#include <string>

namespace dnn_gating::quant {

/// The valid range of every bit width (0 = full precision).
inline constexpr int64_t kMinBits = 0;
inline constexpr int64_t kMaxBits = 16;

/// Checks a bit width against [kMinBits, kMaxBits]; throws SettingError
/// naming the setting `name` (e.g. "wbits").
void check_bit_width(const std::string& name, int64_t bits);

/// Q_bits(x): identity for 0 bits, binarisation to {-1, +1} for 1 bit,
/// symmetric uniform quantization for 2 or more bits. Differentiable (STE).
torch::Tensor quantize(const torch::Tensor& x, int64_t bits);

/// T_{bits,high_bits}(x): the `high_bits` most significant of `bits` bits.
/// Requires bits > high_bits > 0. Differentiable (STE).
torch::Tensor truncate(const torch::Tensor& x, int64_t bits, int64_t high_bits);

/// The straight-through gradient of `quantize` and `truncate` (2 or more
/// bits): `grad` where x != 0 and 0 elsewhere, in one pass.
torch::Tensor ste_gradient(const torch::Tensor& grad, const torch::Tensor& x);

/// The two halves of a precision-gated activation, computed in one pass and
/// stacked as [2, *x.shape]: [0] = T_{bits,high_bits}(x) (the MSB part) and
/// [1] = Q_bits(x) - T_{bits,high_bits}(x) (the LSB part). Not
/// differentiable: PGConv2d supplies the gradient.
torch::Tensor split_msb_lsb(const torch::Tensor& x, int64_t bits, int64_t high_bits);

/// Forward values only (no autograd), written with ATen operations exactly as
/// the original implementation computes them. The fused kernels behind the
/// functions above are held bit-identical to these in the tests.
namespace reference {
torch::Tensor quantize(const torch::Tensor& x, int64_t bits);
torch::Tensor truncate(const torch::Tensor& x, int64_t bits, int64_t high_bits);
}  // namespace reference

}  // namespace dnn_gating::quant
