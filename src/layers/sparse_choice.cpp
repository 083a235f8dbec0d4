#include "layers/sparse_choice.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <mutex>
#include <optional>
#include <utility>

namespace dnn_gating::layers::sparse_choice {
namespace {

// What has been timed for one shape, in seconds.
struct Timings {
  double dense = 0;
  double none_open = 0;                           // the sparse way's fixed cost
  double decide = 0;                              // finding the open outputs first
  std::vector<std::pair<double, double>> sparse;  // (on-fraction, time)
};

std::mutex& table_mutex() {
  static std::mutex m;
  return m;
}

std::map<std::vector<int64_t>, Timings>& table() {
  static std::map<std::vector<int64_t>, Timings> t;
  return t;
}

// The fastest of two runs (the first run of a shape also pays for the
// library's setup of its kernels and for fresh memory).
double best_of_two(const std::function<void()>& run) {
  double best = 0;
  for (int i = 0; i < 2; ++i) {
    const auto start = std::chrono::steady_clock::now();
    run();
    const double s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    best = i == 0 ? s : std::min(best, s);
  }
  return best;
}

// Timings this close in on-fraction (a factor) estimate each other's cost.
constexpr double kNear = 1.5;
// Below this on-fraction a pass's own gates are timed as all open instead.
constexpr double kMinTimedFraction = 0.02;

// The sparse way's estimated time at `fraction` from the timing nearest to
// it within kNear, if any.
std::optional<double> estimate(const Timings& t, double fraction) {
  std::optional<double> best;
  double best_distance = kNear;
  for (const auto& [at, time] : t.sparse) {
    const double distance = std::max(at, fraction) / std::max(std::min(at, fraction), 1e-9);
    if (distance > best_distance) continue;
    best_distance = distance;
    best = t.none_open + (time - t.none_open) * fraction / at;
  }
  if (!best && fraction < kMinTimedFraction && !t.sparse.empty()) {
    // Far below every timing: scale from the lowest one.
    const auto& [at, time] = *std::min_element(t.sparse.begin(), t.sparse.end());
    best = t.none_open + (time - t.none_open) * fraction / at;
  }
  return best;
}

}  // namespace

std::vector<int64_t> shape_key(const torch::Tensor& x, const torch::Tensor& weight,
                               torch::IntArrayRef stride, torch::IntArrayRef padding) {
  std::vector<int64_t> key = x.sizes().vec();
  key.insert(key.end(), weight.sizes().begin(), weight.sizes().end());
  key.insert(key.end(), stride.begin(), stride.end());
  key.insert(key.end(), padding.begin(), padding.end());
  key.push_back(at::get_num_threads());
  return key;
}

namespace {

// What a pass does before its gates are decided.
enum class Plan { kDense, kSparse, kAfterGates };

Plan plan(Skipping mode, const std::vector<int64_t>& shape, double previous) {
  if (mode == Skipping::kNever) return Plan::kDense;
  if (mode == Skipping::kAlways) return Plan::kSparse;
  if (previous < 0) return Plan::kAfterGates;
  std::lock_guard<std::mutex> lock(table_mutex());
  const auto it = table().find(shape);
  if (it == table().end()) return Plan::kAfterGates;
  const std::optional<double> sparse = estimate(it->second, previous);
  if (!sparse) return Plan::kAfterGates;
  return *sparse + it->second.decide < it->second.dense ? Plan::kSparse : Plan::kDense;
}

// kFastest with the gates decided: whether skipping is faster, timing what
// is missing (see run()).
bool skip_is_faster(const std::vector<int64_t>& shape,
                    const kernels::sparse_conv::OpenOutputs& open, const GatedPass& pass) {
  const torch::IntArrayRef out_shape = pass.base.sizes();
  torch::Tensor scratch;  // the timed sparse runs write here, not into base
  const auto sparse_run = [&](const kernels::sparse_conv::OpenOutputs& some) {
    if (!scratch.defined()) scratch = pass.base.clone();
    pass.add_open(some, scratch);
  };
  // Timings of one shape are taken one pass at a time.
  std::lock_guard<std::mutex> lock(table_mutex());
  auto it = table().find(shape);
  if (it == table().end()) {
    Timings t;
    t.dense = best_of_two([&] { pass.dense(); });
    const kernels::sparse_conv::OpenOutputs none =
        kernels::sparse_conv::OpenOutputs::none(out_shape);
    t.none_open = best_of_two([&] { sparse_run(none); });
    t.decide = best_of_two([&] { pass.decide(); });
    it = table().emplace(shape, std::move(t)).first;
  }
  Timings& t = it->second;
  const double fraction = open.on_fraction();
  std::optional<double> sparse = estimate(t, fraction);
  if (!sparse) {
    if (fraction >= kMinTimedFraction) {
      t.sparse.emplace_back(fraction, best_of_two([&] { sparse_run(open); }));
    } else {
      const kernels::sparse_conv::OpenOutputs all =
          kernels::sparse_conv::OpenOutputs::all(out_shape);
      t.sparse.emplace_back(1.0, best_of_two([&] { sparse_run(all); }));
    }
    sparse = estimate(t, fraction);
  }
  return *sparse + t.decide < t.dense;
}

}  // namespace

Chosen run(Skipping mode, const std::vector<int64_t>& shape, double previous,
           const GatedPass& pass) {
  const auto dense = [&] {
    auto [y, open] = pass.dense();
    return Chosen{y, open, /*skipped=*/false};
  };
  const Plan planned = plan(mode, shape, previous);
  if (planned == Plan::kDense) return dense();
  const kernels::sparse_conv::OpenOutputs open = pass.decide();
  if (planned == Plan::kAfterGates && !skip_is_faster(shape, open, pass)) return dense();
  pass.add_open(open, pass.base);
  return {pass.base, open.count, /*skipped=*/true};
}

}  // namespace dnn_gating::layers::sparse_choice
