#include "dnn_gating/report/progress.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

namespace dnn_gating::train {
namespace {

double seconds(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

}  // namespace

Progress::Progress(ProgressStyle style, int64_t log_every, std::FILE* out)
    : style_(style), log_every_(log_every), out_(out) {
  if (style_ == ProgressStyle::kAuto) {
    style_ =
        out_ != nullptr && isatty(fileno(out_)) ? ProgressStyle::kLive : ProgressStyle::kPeriodic;
  }
}

void Progress::start_epoch(int64_t epoch, int64_t epochs, int64_t batches) {
  epoch_ = epoch;
  epochs_ = epochs;
  batches_ = batches;
  epoch_start_ = window_start_ = last_draw_ = Clock::now();
  epoch_loss_ = window_loss_ = 0;
  epoch_correct_ = epoch_images_ = epoch_batches_ = 0;
  window_correct_ = window_images_ = window_batches_ = 0;
}

void Progress::batch(int64_t index, double loss, int64_t correct, int64_t images) {
  epoch_loss_ += loss;
  epoch_correct_ += correct;
  epoch_images_ += images;
  ++epoch_batches_;
  window_loss_ += loss;
  window_correct_ += correct;
  window_images_ += images;
  ++window_batches_;
  const auto now = Clock::now();
  if (style_ == ProgressStyle::kPeriodic &&
      (window_batches_ == log_every_ || index + 1 == batches_)) {
    spdlog::info("[{}, {:5d}] loss: {:.3f} | train acc: {:.1f} % | {:.3f} s/batch", epoch_ + 1,
                 index + 1, window_loss_ / window_batches_,
                 100.0 * window_correct_ / window_images_,
                 seconds(now - window_start_) / window_batches_);
    window_loss_ = 0;
    window_correct_ = window_images_ = window_batches_ = 0;
    window_start_ = now;
  } else if (style_ == ProgressStyle::kLive &&
             (seconds(now - last_draw_) > 0.25 || index + 1 == batches_)) {
    const double elapsed = seconds(now - epoch_start_);
    const double rate = elapsed > 0 ? epoch_images_ / elapsed : 0;
    const double eta = epoch_batches_ > 0 ? elapsed / epoch_batches_ * (batches_ - index - 1) : 0;
    std::fprintf(
        out_,
        "\r\033[Kepoch %lld/%lld  batch %lld/%lld  loss %.3f  acc %.1f %%  %.0f img/s  ETA %d:%02d",
        static_cast<long long>(epoch_ + 1), static_cast<long long>(epochs_),
        static_cast<long long>(index + 1), static_cast<long long>(batches_),
        epoch_loss_ / epoch_batches_, 100.0 * epoch_correct_ / epoch_images_, rate,
        static_cast<int>(eta) / 60, static_cast<int>(eta) % 60);
    std::fflush(out_);
    last_draw_ = now;
  }
}

void Progress::end_epoch() {
  if (style_ == ProgressStyle::kLive) {
    std::fputc('\n', out_);
    std::fflush(out_);
  }
}

}  // namespace dnn_gating::train
