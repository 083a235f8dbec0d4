#pragma once
// What QuantizedConv2d and PGConv2d share to compute in integers: their
// weights' codes laid out once for the integer convolution, the codes of
// their input, the convolution as a tensor, and the choice between the
// integer and the float way.
#include <torch/torch.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "dnn_gating/layers/integer.h"
#include "kernels/affine.h"
#include "kernels/int8_conv.h"

namespace dnn_gating::layers::integer_conv {

/// A layer's Q_wbits(weight) (2 to 8 bits) as an integer convolution,
/// prepared again only when the weight changes (another tensor, or the same
/// one updated in place). Safe to share among threads.
class IntegerWeights {
 public:
  struct Prepared {
    std::shared_ptr<const kernels::int8_conv::Convolution> conv;
    /// The value of one weight code: m / (2^wbits - 1).
    float scale = 0;
  };
  /// conv is null where the weight has no codes (a NaN or infinity in it).
  Prepared get(const torch::Tensor& weight, int64_t wbits, torch::IntArrayRef stride,
               torch::IntArrayRef padding);

 private:
  std::mutex mutex_;
  torch::Tensor weight_;  // the tensor prepared (held: its memory is not reused)
  int64_t version_ = -1;
  int64_t wbits_ = 0;
  std::vector<int64_t> geometry_;  // stride and padding
  Prepared prepared_;
};

/// The largest value of the inputs a layer's codes were last written for,
/// so that the next input's codes take one pass over it where that value
/// repeats: the scale m = max x + 1e-7 is needed before the first code,
/// and an input clipped by PACT at a bound it reaches has the same maximum
/// every batch. Safe to share among threads (a stale value costs time, not
/// correctness).
class InputMaximum {
 public:
  /// The maximum to write codes with before knowing the input's own: the
  /// last input's where it equalled the one before, else NaN.
  float expected() const;
  /// Records an input's maximum.
  void saw(float largest);

 private:
  std::atomic<float> last_{std::numeric_limits<float>::quiet_NaN()};
  std::atomic<bool> repeated_{false};
};

/// Whether the integer convolution of `weight` takes x: float CPU tensors
/// [N, C, H, W] with the weight's input channels and room for the kernel
/// (anything else is the float way's to compute, or refuse).
bool takes(const torch::Tensor& x, const torch::Tensor& weight, torch::IntArrayRef padding);

/// The codes of an input for the integer convolution: Q_abits's grid
/// indices, or, with `high_bits`, T's indices (`hi`) and the rest (`lo`),
/// uint8 [N, H, W, C] (doubled: 2C, see kernels::int8_conv), in memory of
/// this thread that the next call overwrites.
struct Codes {
  torch::Tensor hi, lo;
  /// The value of one code of hi and of lo: m / (2^abits - 1) times
  /// 2^(abits - high_bits) for hi.
  float hi_scale = 0, lo_scale = 0;
  /// False where the input has a negative value (no unsigned code).
  bool non_negative = true;
};
/// x: float [N, C, H, W] on the CPU, contiguous or channels-last.
/// `high_bits` 0: hi alone, Q_abits's indices. With `maximum`, the codes
/// are written at once with the scale of its expected maximum and written
/// again only where x's own maximum differs (the codes are the same either
/// way), and x's maximum is recorded there.
Codes input_codes(const torch::Tensor& x, int64_t abits, int64_t high_bits, bool doubled,
                  InputMaximum* maximum = nullptr);

/// conv's output on `codes` (uint8 [N, H, W, C']) times `scale`: float
/// [N, O, H', W'], channels-last; a fresh tensor, or with `scratch_slot` 0
/// or 1, one in memory of this thread that the next call with that slot
/// overwrites.
torch::Tensor convolve(const kernels::int8_conv::Convolution& conv, const torch::Tensor& codes,
                       float scale, int scratch_slot = -1);

/// The same with `then` (an evaluation-mode BatchNorm, then `residual` added
/// where defined, then a ReLU or clip) applied as the sums are written: a
/// fresh tensor, or the residual's own memory where `residual` is the only
/// handle on it and its memory (a by-value parameter of the caller's, handed
/// over to it: the caller must not read it again). residual: float [N, O,
/// H', W'].
torch::Tensor convolve(const kernels::int8_conv::Convolution& conv, const torch::Tensor& codes,
                       float scale, const kernels::Affine& then,
                       const torch::Tensor& residual = {});

/// One evaluation pass, in integers or in float: {y, open gates}.
using Way = std::function<std::pair<torch::Tensor, int64_t>()>;

/// Runs `integer_way` or `float_way` as `mode` says (kNever is never asked
/// here); an integer way that returns an undefined tensor (it does not apply
/// to this input) hands over to the float way. kFastest times both ways on the first pass of
/// `shape` (a key naming the layer and its input; the second run of each, the first paying for
/// setup) and runs the faster from then on (on that first pass, once more after the timings).
struct Chosen {
  torch::Tensor y;
  int64_t open = 0;
  bool integers = false;  ///< whether y came from the integer way
};
Chosen run(Integer mode, const std::vector<int64_t>& shape, const Way& integer_way,
           const Way& float_way);

}  // namespace dnn_gating::layers::integer_conv
