#include "dnn_gating/train/timing.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "dnn_gating/layers/gated_layer.h"
#include "dnn_gating/layers/integer.h"

namespace dnn_gating::train {
namespace {

// A split at most this large is read into memory before the timed passes.
constexpr int64_t kPreloadBytes = int64_t{2} << 30;

// The batches of a loader, read once and served from memory.
class PreloadedBatches : public data::Batches {
 public:
  explicit PreloadedBatches(const data::Batches& loader)
      : options_(loader.options()), size_(loader.size()) {
    for (int64_t b = 0; b < loader.num_batches(); ++b) batches_.push_back(loader.batch(b));
  }
  int64_t num_batches() const override { return static_cast<int64_t>(batches_.size()); }
  int64_t size() const override { return size_; }
  const data::LoaderOptions& options() const override { return options_; }
  void start_epoch(int64_t) override {}
  data::Batch batch(int64_t index, int64_t part, int64_t parts) const override {
    TORCH_CHECK(parts == 1, "PreloadedBatches serves whole batches");
    return batches_.at(index);
  }

 private:
  data::LoaderOptions options_;
  int64_t size_;
  std::vector<data::Batch> batches_;
};

// Whether the whole split fits kPreloadBytes, judged by its first batch.
bool fits_in_memory(const data::Batches& loader) {
  if (loader.num_batches() == 0) return true;
  const data::Batch first = loader.batch(0);
  const int64_t images = std::max<int64_t>(first.images.size(0), 1);
  const int64_t per_image = (first.images.nbytes() + first.labels.nbytes()) / images;
  return per_image * loader.size() <= kPreloadBytes;
}

// Every gated layer's settings, put back when the guard goes.
class GatedSettingsGuard {
 public:
  explicit GatedSettingsGuard(torch::nn::Module& model) {
    for (const auto& [name, layer] : layers::gated_layers(model)) {
      saved_.push_back({layer, layer->skipping(), layer->keeps_decisions()});
      layer->keep_decisions(false);
    }
  }
  ~GatedSettingsGuard() {
    for (const Saved& s : saved_) {
      s.layer->set_skipping(s.skipping);
      s.layer->keep_decisions(s.keeps_decisions);
    }
  }
  GatedSettingsGuard(const GatedSettingsGuard&) = delete;
  GatedSettingsGuard& operator=(const GatedSettingsGuard&) = delete;
  bool empty() const { return saved_.empty(); }
  // Every layer at its own skipping again.
  void restore_skipping() const {
    for (const Saved& s : saved_) s.layer->set_skipping(s.skipping);
  }

 private:
  struct Saved {
    layers::GatedLayer* layer;
    layers::Skipping skipping;
    bool keeps_decisions;
  };
  std::vector<Saved> saved_;
};

std::string machine(const torch::Device& device) {
  if (!device.is_cpu()) return device.str();
  const int threads = at::get_num_threads();
  return fmt::format("{} thread{}, {} kernels, int8 on {}", threads, threads == 1 ? "" : "s",
                     layers::kernel_level(), layers::integer_engine());
}

}  // namespace

GatingTiming time_gating(const Classifier& model, const data::Batches& loader,
                         const torch::Device& device, int64_t num_classes, int repeats) {
  TORCH_CHECK(repeats >= 1, "time_gating: repeats must be positive, got ", repeats);
  GatingTiming out;
  out.images = loader.size();
  out.batch_size = loader.options().batch_size();
  out.repeats = repeats;
  out.machine = machine(device);
  out.includes_loading = !fits_in_memory(loader);
  std::optional<PreloadedBatches> preloaded;
  if (!out.includes_loading) preloaded.emplace(loader);
  const data::Batches& batches = preloaded ? *preloaded : loader;

  GatedSettingsGuard settings(*model.module);
  out.has_gates = !settings.empty();
  // One pass of one way: its seconds and its correct count.
  const auto pass = [&](bool dense) {
    if (dense) {
      layers::set_skipping(*model.module, layers::Skipping::kNever);
    } else {
      settings.restore_skipping();
    }
    const auto start = std::chrono::steady_clock::now();
    const Evaluation e = evaluate(model, batches, device, num_classes);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return std::make_pair(seconds, e.correct);
  };
  const bool both = out.has_gates;
  pass(false);  // warm-up: allocations, the layers' timings of their ways
  if (both) pass(true);
  out.gated_seconds = std::numeric_limits<double>::infinity();
  out.dense_seconds = both ? std::numeric_limits<double>::infinity() : 0.0;
  for (int r = 0; r < repeats; ++r) {  // the ways take turns: drift hits both
    const auto [gated_seconds, gated_correct] = pass(false);
    out.gated_seconds = std::min(out.gated_seconds, gated_seconds);
    out.gated_correct = gated_correct;
    if (!both) continue;
    const auto [dense_seconds, dense_correct] = pass(true);
    out.dense_seconds = std::min(out.dense_seconds, dense_seconds);
    out.dense_correct = dense_correct;
    if (dense_correct != gated_correct) {
      const auto percent = [&](int64_t correct) {
        return fmt::format("{:.2f} % ({} of {})",
                           100.0 * static_cast<double>(correct) / static_cast<double>(out.images),
                           correct, out.images);
      };
      throw std::runtime_error("--timing: the gated and the dense evaluation disagree: accuracy " +
                               percent(gated_correct) + " gated, " + percent(dense_correct) +
                               " dense (skipping must not change a prediction)");
    }
  }
  return out;
}

}  // namespace dnn_gating::train
