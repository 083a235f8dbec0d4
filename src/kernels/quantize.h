#pragma once
// The quantizers' element loops (Q_bits, T_{b,bh}, the MSB/LSB split, the
// binary quantizer and the straight-through gradients), compiled for
// AVX-512, AVX2 and the x86-64 baseline. Each reproduces, bit for bit, the
// ATen operations of quant::reference on [begin, end) of a float array.
#include <cstdint>

namespace dnn_gating::kernels::quantize {

/// Elements per task of the parallel loops over a quantized tensor.
constexpr int64_t kGrain = 16384;

/// The epsilon of a quantizer's scale m = max|x| + 1e-7 (the original's).
constexpr float kScaleEpsilon = 1e-7f;

/// The grid of a quantizer, passed by value so that the loops vectorise.
struct Grid {
  float levels;  ///< 2^bits - 1
  float step;    ///< 2^(bits - high_bits) for truncation
};

/// The grid of Q_bits (high_bits 0) or of T_{bits,high_bits}.
inline Grid grid_of(int64_t bits, int64_t high_bits) {
  return {static_cast<float>((int64_t{1} << bits) - 1),
          static_cast<float>(int64_t{1} << (bits - (high_bits > 0 ? high_bits : bits)))};
}

/// The scale m = max|x| + 1e-7 of n values, in parallel (a NaN where some
/// value is one).
float scale_of(const float* x, int64_t n);

/// y = Q_bits(x) on the grid `g` with scale m.
void quantize_kernel(const float* __restrict x, float* __restrict y, int64_t begin, int64_t end,
                     float m, Grid g);
/// The same, also marking where x != 0 (the support of its gradient).
void quantize_marking_kernel(const float* __restrict x, float* __restrict y,
                             uint8_t* __restrict nonzero, int64_t begin, int64_t end, float m,
                             Grid g);
/// y = T_{bits,high_bits}(x).
void truncate_kernel(const float* __restrict x, float* __restrict y, int64_t begin, int64_t end,
                     float m, Grid g);
/// hi = T(x), lo = Q(x) - T(x) in one pass.
void split_kernel(const float* __restrict x, float* __restrict hi, float* __restrict lo,
                  int64_t begin, int64_t end, float m, Grid g);
/// The one-bit quantizer: 2 round((clamp(x, -1, 1) + 1) / 2) - 1.
void binarize_kernel(const float* __restrict x, float* __restrict y, int64_t begin, int64_t end);
/// Integer codes for the integer convolution (kernels/int8_conv) of the
/// positions [begin, end) of x, a channels-last float tensor [N, H, W,
/// channels]. Each element's code is the grid index of Q: code =
/// round(clamp(x / m, 0, 1) * levels); hi = floor(code / step) (T's index;
/// the code itself for step 1) and lo = code - hi * step, each written
/// [N, H, W, channels] as uint8, or, `doubled`, [N, H, W, 2 channels] holding
/// 2 v for the channels and then v. `lo` may be null. Returns false where
/// some x < 0 (its code has a sign) or is NaN; the output is then
/// unspecified. Else `largest` is the largest of those x (what the scale m
/// is made from: codes written with a guessed m are right where it was).
bool code_kernel(const float* __restrict x, int64_t channels, int64_t begin, int64_t end, float m,
                 Grid g, bool doubled, uint8_t* __restrict hi, uint8_t* __restrict lo,
                 float& largest);
/// Signed grid indices of Q for 2 or more bits: sign(x) round(clamp(|x| /
/// m, 0, 1) * levels), over [0, n).
void signed_code_kernel(const float* __restrict x, int16_t* __restrict out, int64_t n, float m,
                        Grid g);
/// out = g where x != 0, else 0.
void ste_kernel(const float* __restrict g, const float* __restrict x, float* __restrict out,
                int64_t begin, int64_t end);
/// out = g where keep is set, else 0.
void keep_kernel(const float* __restrict g, const uint8_t* __restrict keep, float* __restrict out,
                 int64_t begin, int64_t end);

/// The scale of Q over PACT's output: max clamp(x, 0, bound) + 1e-7, the
/// same bits as scale_of on the clamped values, without them.
float clipped_scale_of(const float* x, int64_t n, float bound);
/// PACT's clip and Q_bits in one pass: c = clamp(x, 0, bound) (bound > 0),
/// q = Q(c) on the grid `g` with scale m, each element's pact::Region
/// (kAtZero where x == 0), and y = c where `y` is not null.
void clip_quantize_kernel(const float* __restrict x, float* __restrict y, float* __restrict q,
                          uint8_t* __restrict region, int64_t begin, int64_t end, float bound,
                          float m, Grid g);
/// Its backward pass over one block, from the gradients of q and (where
/// not null) of y: grad_x = gy + gq inside (0, bound], gy at 0; returns the
/// sum of gy + gq above the bound (the bound's gradient).
float clip_quantize_backward_kernel(const float* __restrict gy, const float* __restrict gq,
                                    const uint8_t* __restrict region, float* __restrict grad_x,
                                    int64_t begin, int64_t end);

}  // namespace dnn_gating::kernels::quantize
