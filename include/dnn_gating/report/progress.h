#pragma once
/// Training progress as people watch it: one live line per epoch on a
/// terminal, plain lines every N batches when the output is a file (as the
/// original prints them), or nothing.

#include <chrono>
#include <cstdint>
#include <cstdio>

#include "dnn_gating/job/config.h"

namespace dnn_gating::train {

/// Progress of one epoch's batches.
class Progress {
 public:
  /// `out` is the terminal for kLive (and decides kAuto); periodic lines go to the log.
  Progress(ProgressStyle style, int64_t log_every, std::FILE* out = stdout);

  void start_epoch(int64_t epoch, int64_t epochs, int64_t batches);
  /// After batch `index` (0-based) with its mean loss, correct count and size.
  void batch(int64_t index, double loss, int64_t correct, int64_t images);
  /// Ends the live line.
  void end_epoch();
  ProgressStyle style() const { return style_; }

 private:
  using Clock = std::chrono::steady_clock;
  ProgressStyle style_;
  int64_t log_every_;
  std::FILE* out_;
  int64_t epoch_ = 0, epochs_ = 0, batches_ = 0;
  Clock::time_point epoch_start_, window_start_, last_draw_;
  double epoch_loss_ = 0, window_loss_ = 0;
  int64_t epoch_correct_ = 0, epoch_images_ = 0, epoch_batches_ = 0;
  int64_t window_correct_ = 0, window_images_ = 0, window_batches_ = 0;
};

}  // namespace dnn_gating::train
