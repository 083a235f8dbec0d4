#include "layers/sparse_choice.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <mutex>

namespace dnn_gating::layers::sparse_choice {
namespace {

std::mutex& table_mutex() {
  static std::mutex m;
  return m;
}

std::map<std::vector<int64_t>, double>& table() {
  static std::map<std::vector<int64_t>, double> t;
  return t;
}

// The fastest of two runs, in seconds (the first run of a shape also pays
// for the library's setup of its kernels).
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

// Below this on-fraction a pass's own gates give too few open outputs to
// measure the sparse path's cost per output; it is then timed all open.
constexpr double kMinMeasuredFraction = 0.02;

double measure(const sparse_conv::OpenOutputs& open, torch::IntArrayRef out_shape,
               const Paths& paths) {
  const double dense = best_of_two(paths.dense);
  const sparse_conv::OpenOutputs none = sparse_conv::OpenOutputs::none(out_shape);
  const double fixed = best_of_two([&] { paths.sparse(none); });
  double fraction = open.on_fraction();
  double at_fraction = 0;
  if (fraction >= kMinMeasuredFraction) {
    at_fraction = best_of_two([&] { paths.sparse(open); });
  } else {
    const sparse_conv::OpenOutputs all = sparse_conv::OpenOutputs::all(out_shape);
    fraction = 1.0;
    at_fraction = best_of_two([&] { paths.sparse(all); });
  }
  if (fixed >= dense) return 0.0;  // skipping never pays
  const double per_fraction = (at_fraction - fixed) / fraction;
  if (per_fraction <= 0) return 1.0;
  return std::min(1.0, (dense - fixed) / per_fraction);
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

Plan plan(Skipping mode, const std::vector<int64_t>& shape, double previous) {
  if (mode == Skipping::kNever) return Plan::kDense;
  if (mode == Skipping::kAlways) return Plan::kSparse;
  const double even = break_even(shape);
  if (even < 0 || previous < 0) return Plan::kAfterGates;
  return previous < even ? Plan::kSparse : Plan::kDense;
}

bool skip_closed(Skipping mode, const std::vector<int64_t>& shape,
                 const sparse_conv::OpenOutputs& open, torch::IntArrayRef out_shape,
                 const Paths& paths) {
  if (mode != Skipping::kFastest) return mode == Skipping::kAlways;
  // One measurement per shape; a pass meeting a shape being measured waits.
  std::lock_guard<std::mutex> lock(table_mutex());
  auto it = table().find(shape);
  if (it == table().end()) it = table().emplace(shape, measure(open, out_shape, paths)).first;
  return open.on_fraction() < it->second;
}

double break_even(const std::vector<int64_t>& shape) {
  std::lock_guard<std::mutex> lock(table_mutex());
  const auto it = table().find(shape);
  return it == table().end() ? -1.0 : it->second;
}

}  // namespace dnn_gating::layers::sparse_choice
