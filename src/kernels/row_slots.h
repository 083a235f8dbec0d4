#pragma once
// The three input rows under each output row of a 3x3 convolution, as a
// kernel reads them (zero-padded, copied or transposed): three slots, each
// input row filled once for the consecutive output rows that read it, and a
// fourth slot of zeros for the rows above and below the input. The slots
// stay in cache, unlike a padded copy of the whole input.
#include <cstdint>
#include <vector>

#include "kernels/conv_geometry.h"
#include "kernels/lanes.h"

namespace dnn_gating::kernels {

class RowSlots {
 public:
  /// Slots of `slot_size` floats, zero until filled.
  explicit RowSlots(int64_t slot_size) : slots_(4 * slot_size, 0.0f), size_(slot_size) {}

  /// rows[i] = the slot of input row h * stride_h - pad_h + i of image n
  /// (i = 0, 1, 2), calling fill(n * in_h + r, slot) for each row not held.
  template <typename Fill>
  DG_INLINE void band(const ConvGeometry& g, int64_t n, int64_t h, const float** rows,
                      Fill&& fill) {
    int64_t wanted[3];
    for (int i = 0; i < 3; ++i) {
      const int64_t r = h * g.stride_h - g.pad_h + i;
      wanted[i] = r < 0 || r >= g.in_h ? -2 : n * g.in_h + r;  // -2: zeros, never held
    }
    for (int i = 0; i < 3; ++i) {
      int slot = 3;  // the zero row
      if (wanted[i] >= 0) {
        slot = 0;
        while (slot < 3 && held_[slot] != wanted[i]) ++slot;
        if (slot == 3) {  // into a slot that no input row of this output row holds
          slot = 0;
          while (held_[slot] == wanted[0] || held_[slot] == wanted[1] || held_[slot] == wanted[2])
            ++slot;
          fill(wanted[i], slots_.data() + slot * size_);
          held_[slot] = wanted[i];
        }
      }
      rows[i] = slots_.data() + slot * size_;
    }
  }

 private:
  std::vector<float> slots_;
  int64_t size_;
  int64_t held_[3] = {-1, -1, -1};
};

}  // namespace dnn_gating::kernels
