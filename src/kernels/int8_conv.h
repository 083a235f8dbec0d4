#pragma once
// Convolutions on integer codes through oneDNN (the library LibTorch's own
// convolutions run on): uint8 activation codes laid out [N, H, W, C] times
// int8 weight codes, summed exactly in int32 and written as float [N, H', W',
// O] times one scale. What quantized and precision-gated layers compute in
// evaluation when they compute in integers.
#include <cstdint>
#include <limits>
#include <memory>
#include <string>

namespace dnn_gating::kernels::int8_conv {

/// Whether this build has the integer convolution (oneDNN's headers, Debian's
/// libdnnl-dev, were found when it was configured).
bool available();

/// The instruction set oneDNN may use here ("avx512_core_vnni", "avx2", ...;
/// the environment variable DNNL_MAX_CPU_ISA lowers it), or "none" where
/// unavailable.
const char* isa();

/// A convolution's geometry (dilation 1, one group).
struct Geometry {
  int64_t out_channels = 0, in_channels = 0;
  int64_t kernel_h = 0, kernel_w = 0;
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;
};

/// What a convolution applies to its sums as it writes them, instead of one
/// scale: per output channel o, sum * scale[o] + shift[o] (an
/// evaluation-mode BatchNorm folded with the codes' scales), plus the value
/// dst held before where `add_to_dst` (a residual block's shortcut), then a
/// ReLU if `relu`, which clips at `upper` too where that is finite (PACT).
struct ChannelMap {
  const float* scale = nullptr;
  const float* shift = nullptr;
  bool relu = false;
  float upper = std::numeric_limits<float>::infinity();
  bool add_to_dst = false;
};

/// A convolution whose weight codes were laid out once for oneDNN. Weight
/// codes are integers in [-255, 255] (an 8-bit symmetric quantizer's); where
/// one lies outside int8, each code q is split into 2 h + l (h = floor(q/2),
/// l = q - 2 h in {0, 1}), and the input must then hold, at each position,
/// 2 a for its C channels followed by a (the codes a): 2C channels, whose
/// convolution with [h, l] is the convolution of a with q.
class Convolution {
 public:
  /// `codes`: int16 [out, in, kh, kw], row-major (copied).
  Convolution(const Geometry& geometry, const int16_t* codes);
  ~Convolution();
  Convolution(const Convolution&) = delete;
  Convolution& operator=(const Convolution&) = delete;

  const Geometry& geometry() const;
  /// Whether the input must be doubled (see above).
  bool doubles_input() const;
  /// The largest input code (before doubling) whose sums are exact on every
  /// ISA: oneDNN's int8 kernels without VNNI add pairs of products in 16 bits
  /// with saturation, so 2 * largest input byte * largest |weight byte| must
  /// not exceed 32767.
  int64_t max_exact_input_code() const;
  /// dst[n, h', w', o] = scale * (sum over c, i, j of weight[o, c, i, j] *
  /// src[n, h' sh + i - ph, w' sw + j - pw, c]), zero outside src. src: uint8
  /// [batch, height, width, in (x2 where doubled)]; dst: float [batch, H', W',
  /// out]. Output sizes as torch::conv2d's.
  void run(const uint8_t* src, int64_t batch, int64_t height, int64_t width, float scale,
           float* dst) const;
  /// The same with `map` applied to the sums instead of one scale.
  void run(const uint8_t* src, int64_t batch, int64_t height, int64_t width, const ChannelMap& map,
           float* dst) const;
  /// oneDNN's name of the implementation it chose for the last input shape
  /// run ("brgconv:avx512_core_vnni", ...), empty before the first run.
  std::string implementation() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dnn_gating::kernels::int8_conv
