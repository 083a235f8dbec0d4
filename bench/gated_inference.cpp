#include "gated_inference.h"

#include <benchmark/benchmark.h>

#include <cstdio>
#include <functional>
#include <map>
#include <vector>

#include "dnn_gating/job/evaluation.h"
#include "dnn_gating/layers/cg_conv.h"
#include "dnn_gating/layers/dense_macs.h"
#include "dnn_gating/layers/gated_layer.h"
#include "dnn_gating/layers/integer.h"
#include "dnn_gating/layers/pg_conv.h"
#include "dnn_gating/models/resnet.h"
#include "dnn_gating/report/report.h"
#include "photo_inputs.h"

namespace dnn_gating::bench {
namespace {

using layers::Integer;
using layers::Skipping;
using models::BlockLayout;
using models::ConvKind;
using models::ResNetOptions;

struct GatedModel {
  const char* name;
  ResNetOptions options;
  std::vector<int> percents;  // on-fractions to hold the gates at
};

const std::vector<GatedModel>& gated_models() {
  static const std::vector<GatedModel> all{
      {"cg_p4_group",
       ResNetOptions(ConvKind::kChannelGated).partitions(4).use_group(true),
       {50, 25, 10}},
      {"cg_postact_p2_group",
       ResNetOptions(ConvKind::kChannelGated, BlockLayout::kPostActivated)
           .partitions(2)
           .use_group(true),
       {50, 25, 10}},
      {"pg_w8a3pb2_pact",
       ResNetOptions(ConvKind::kPrecisionGated).wbits(8).abits(3).pred_bits(2).pact(true),
       {50}},
  };
  return all;
}

// Quantized and PG models evaluated in integers and in float (percent 0: no
// gates to hold).
struct IntegerModel {
  const char* name;
  ResNetOptions options;
  int percent;
};

const std::vector<IntegerModel>& integer_models() {
  static const std::vector<IntegerModel> all{
      {"quant_w8a3_pact", ResNetOptions(ConvKind::kQuantized).wbits(8).abits(3).pact(true), 0},
      {"pg_w8a3pb2_pact",
       ResNetOptions(ConvKind::kPrecisionGated).wbits(8).abits(3).pred_bits(2).pact(true), 50},
      {"pg_w8a3pb2_pact",
       ResNetOptions(ConvKind::kPrecisionGated).wbits(8).abits(3).pred_bits(2).pact(true), 25},
  };
  return all;
}

// The layers of CG ResNet-20's three stages (p = 4, grouped base path).
struct LayerShape {
  int64_t channels, size;
};
constexpr LayerShape kLayerShapes[] = {{16, 32}, {32, 16}, {64, 8}};
constexpr int kLayerPercents[] = {50, 25, 10};
constexpr int64_t kBatches[] = {128, 1};

// Batch 1 is timed on one thread, as a deployed model serves one image: on
// two, waking the second thread for each of a few hundred small operations
// dominated, and the figures swung several-fold between repetitions. Batch
// 128 runs on every core.
class ThreadsFor {
 public:
  explicit ThreadsFor(int64_t batch) : before_(torch::get_num_threads()) {
    if (batch == 1) torch::set_num_threads(1);
  }
  ~ThreadsFor() { torch::set_num_threads(before_); }
  ThreadsFor(const ThreadsFor&) = delete;
  ThreadsFor& operator=(const ThreadsFor&) = delete;

 private:
  int before_;
};

// Sets every gated layer's thresholds, one value per layer in forward order,
// so that about `fraction` of its gates open on `x`: layer by layer, a
// bisection on the threshold with the layers before it already set.
void hold_on_fraction(torch::nn::Module& model, const std::function<void()>& forward,
                      double fraction) {
  torch::NoGradGuard no_grad;
  for (const auto& [name, layer] : layers::gated_layers(model)) {
    const auto on_at = [&](double t) {
      layer->threshold().fill_(t);
      forward();
      return layer->last_counts().on_fraction();
    };
    double lo = -1, hi = 1;
    while (on_at(lo) < fraction && lo > -1e6) lo *= 2;
    while (on_at(hi) > fraction && hi < 1e6) hi *= 2;
    for (int i = 0; i < 14; ++i) {
      const double mid = 0.5 * (lo + hi);
      (on_at(mid) > fraction ? lo : hi) = mid;
    }
    layer->threshold().fill_(0.5 * (lo + hi));
  }
}

// Which arithmetic a model's gated and quantized layers evaluate in: "int8"
// where its quantized or PG convolutions take the integer way (the
// default), else "float".
const char* arithmetic_of(const ResNetOptions& o) {
  const bool quantized = o.conv() == ConvKind::kQuantized || o.conv() == ConvKind::kPrecisionGated;
  return quantized && layers::integer_applies(o.integer(), o.wbits(), o.abits()) ? "int8" : "float";
}

std::string skipping_tag(Skipping s) { return s == Skipping::kNever ? "dense" : "skip"; }

// The model of `spec` (seed 0) with its gates held at `percent` % open on
// the batch `x` it is timed on (calibrated once per model, percentage and
// batch size: `x` is the same for every skipping mode).
models::ResNet held_model(const GatedModel& spec, int percent, const torch::Tensor& x) {
  static std::map<std::string, std::vector<torch::Tensor>> calibrated;
  torch::manual_seed(0);
  models::ResNet model(spec.options);
  model->eval();
  const auto gated = layers::gated_layers(*model);
  const std::string key =
      std::string(spec.name) + "/" + std::to_string(percent) + "/" + std::to_string(x.size(0));
  torch::NoGradGuard no_grad;
  if (calibrated.count(key) == 0) {
    hold_on_fraction(
        *model, [&] { model->forward(x); }, percent / 100.0);
    for (const auto& [name, layer] : gated) calibrated[key].push_back(layer->threshold().clone());
  }
  for (size_t i = 0; i < gated.size(); ++i) gated[i].second->threshold().copy_(calibrated[key][i]);
  return model;
}

// The on-fraction measured over the timed passes and the effective MACs as
// a fraction of the dense (the report's count: the least the model costs).
void count_gates(benchmark::State& state, torch::nn::Module& model) {
  train::Evaluation e;
  e.layers = train::layer_gate_stats(model);
  e.dense_macs = layers::total_dense_macs(model);
  const train::CostFigures costs = train::cost_figures(e);
  state.counters["on_percent"] = 100.0 * layers::total_counts(model).on_fraction();
  state.counters["effective_fraction"] =
      costs.effective_macs / static_cast<double>(costs.dense_macs);
}

// Times the model of `spec` held at `percent` % open on a batch of `batch`
// images, after `configure` has set how it computes.
void evaluate_held(benchmark::State& state, const GatedModel& spec, int percent, int64_t batch,
                   const std::function<void(models::ResNet&)>& configure) {
  const ThreadsFor threads(batch);
  const torch::Tensor x = input_images(batch, 1);
  torch::manual_seed(1);
  models::ResNet model = held_model(spec, percent, x);
  configure(model);
  torch::NoGradGuard no_grad;
  for (int i = 0; i < 3; ++i) model->forward(x);
  layers::reset_counts(*model);
  for (auto _ : state) benchmark::DoNotOptimize(model->forward(x).data_ptr());
  count_gates(state, *model);
  state.SetItemsProcessed(state.iterations() * batch);
}

void evaluate_model(benchmark::State& state, const GatedModel& spec, int percent, int64_t batch,
                    Skipping skipping) {
  evaluate_held(state, spec, percent, batch,
                [skipping](models::ResNet& model) { layers::set_skipping(*model, skipping); });
}

void evaluate_integer(benchmark::State& state, const IntegerModel& m, int64_t batch,
                      Integer integer) {
  const GatedModel spec{m.name, ResNetOptions(m.options).integer(integer), {m.percent}};
  evaluate_held(state, spec, m.percent, batch, [](models::ResNet&) {});
}

// The float model as the original runs it (reference_ops: NCHW, BatchNorm
// after each convolution), or on a channels-last input, or as the library
// evaluates it (folded: each BatchNorm folded into its convolution,
// channels-last: the fair baseline, which saves what the gated kernels'
// folding saves).
enum class FloatWay { kPlain, kChannelsLast, kFolded };

void evaluate_float(benchmark::State& state, int64_t batch, FloatWay way) {
  const ThreadsFor threads(batch);
  torch::manual_seed(0);
  models::ResNet model(ResNetOptions(ConvKind::kFloat).reference_ops(way != FloatWay::kFolded));
  torch::Tensor x = input_images(batch, 1);
  if (way == FloatWay::kChannelsLast) x = x.contiguous(at::MemoryFormat::ChannelsLast);
  torch::NoGradGuard no_grad;
  // BatchNorm statistics other than the initial ones, so that folding them
  // is timed.
  for (int i = 0; i < 3; ++i) model->forward(input_images(batch, 2 + i));
  model->eval();
  for (int i = 0; i < 3; ++i) model->forward(x);
  for (auto _ : state) benchmark::DoNotOptimize(model->forward(x).data_ptr());
  state.SetItemsProcessed(state.iterations() * batch);
}

// A batch of 128 activations laid out as inside a CG model (channels-last:
// gated layers return their outputs so, and the blocks keep them so), the
// same for the gated layer and the dense convolution.
torch::Tensor layer_input(LayerShape shape) {
  torch::manual_seed(1);
  return torch::randn({128, shape.channels, shape.size, shape.size})
      .relu()
      .contiguous(at::MemoryFormat::ChannelsLast);
}

void gated_layer(benchmark::State& state, LayerShape shape, int percent, Skipping skipping) {
  torch::manual_seed(0);
  layers::CGConv2d layer(layers::CGConv2dOptions(shape.channels, shape.channels, 3)
                             .padding(1)
                             .partitions(4)
                             .use_group(true)
                             .skipping(skipping));
  layer->eval();
  const torch::Tensor x = layer_input(shape);
  hold_on_fraction(
      *layer, [&] { layer->forward(x); }, percent / 100.0);
  torch::NoGradGuard no_grad;
  for (int i = 0; i < 3; ++i) layer->forward(x);
  layer->reset_counts();
  for (auto _ : state) benchmark::DoNotOptimize(layer->forward(x).data_ptr());
  count_gates(state, *layer);
}

void dense_conv(benchmark::State& state, LayerShape shape) {
  const torch::Tensor x = layer_input(shape);
  torch::manual_seed(0);
  const torch::Tensor w = torch::randn({shape.channels, shape.channels, 3, 3});
  torch::NoGradGuard no_grad;
  for (int i = 0; i < 3; ++i) torch::conv2d(x, w, {}, 1, 1);
  for (auto _ : state) benchmark::DoNotOptimize(torch::conv2d(x, w, {}, 1, 1).data_ptr());
}

std::string float_name(int64_t batch, FloatWay way) {
  const char* names[] = {"float", "float_channels_last", "float_folded"};
  return "gated_eval/" + std::string(names[static_cast<int>(way)]) + "/batch" +
         std::to_string(batch);
}

std::string model_name(const GatedModel& m, int percent, int64_t batch, Skipping s) {
  return "gated_eval/" + std::string(m.name) + "/on" + std::to_string(percent) + "/batch" +
         std::to_string(batch) + "/" + skipping_tag(s);
}

std::string integer_name(const IntegerModel& m, int64_t batch, Integer integer) {
  return "integer_eval/" + std::string(m.name) + "/on" + std::to_string(m.percent) + "/batch" +
         std::to_string(batch) + "/" + (integer == Integer::kNever ? "float" : "integer");
}

std::string layer_name(LayerShape shape, int percent, Skipping s) {
  return "gated_layer/cg_p4_" + std::to_string(shape.channels) + "ch/on" + std::to_string(percent) +
         "/" + skipping_tag(s);
}

std::string dense_name(LayerShape shape) {
  return "dense_conv/" + std::to_string(shape.channels) + "ch";
}

benchmark::internal::Benchmark* configure(benchmark::internal::Benchmark* b) {
  return b->Unit(benchmark::kMillisecond)->MinTime(0.3)->Repetitions(3)->UseRealTime();
}

double lookup(const std::map<std::string, double>& times, const std::string& name) {
  const auto it = times.find(name);
  return it == times.end() ? 0.0 : it->second;
}

}  // namespace

void register_gated_inference() {
  constexpr Skipping kModes[] = {Skipping::kFastest, Skipping::kNever};
  for (const int64_t batch : kBatches) {
    for (const FloatWay way : {FloatWay::kPlain, FloatWay::kChannelsLast, FloatWay::kFolded}) {
      configure(
          benchmark::RegisterBenchmark(float_name(batch, way).c_str(), evaluate_float, batch, way));
    }
    for (const auto& m : gated_models()) {
      for (const int percent : m.percents) {
        for (const Skipping s : kModes) {
          configure(benchmark::RegisterBenchmark(model_name(m, percent, batch, s).c_str(),
                                                 evaluate_model, m, percent, batch, s));
        }
      }
    }
  }
  for (const int64_t batch : kBatches) {
    for (const auto& m : integer_models()) {
      for (const Integer integer : {Integer::kAlways, Integer::kNever}) {
        configure(benchmark::RegisterBenchmark(integer_name(m, batch, integer).c_str(),
                                               evaluate_integer, m, batch, integer));
      }
    }
  }
  for (const LayerShape shape : kLayerShapes) {
    configure(benchmark::RegisterBenchmark(dense_name(shape).c_str(), dense_conv, shape));
    for (const int percent : kLayerPercents) {
      for (const Skipping s : kModes) {
        configure(benchmark::RegisterBenchmark(layer_name(shape, percent, s).c_str(), gated_layer,
                                               shape, percent, s));
      }
    }
  }
}

void print_gated_inference(const std::map<std::string, double>& times,
                           const std::map<std::string, Counts>& counts) {
  const auto counted = [&](const std::string& name) {
    const auto it = counts.find(name);
    return it == counts.end() ? Counts{} : it->second;
  };
  bool header = false;
  for (const int64_t batch : kBatches) {
    const double base = lookup(times, float_name(batch, FloatWay::kPlain));
    const double folded = lookup(times, float_name(batch, FloatWay::kFolded));
    if (base <= 0 || folded <= 0) continue;
    for (const auto& m : gated_models()) {
      for (const int percent : m.percents) {
        const std::string name = model_name(m, percent, batch, Skipping::kFastest);
        const double skip = lookup(times, name);
        const double dense = lookup(times, model_name(m, percent, batch, Skipping::kNever));
        if (skip <= 0 || dense <= 0) continue;
        if (!header) {
          std::printf(
              "\n%-20s %5s %6s %6s %8s %8s %8s %8s %10s %10s  (batch 1 on one thread; 'x f all':"
              " every output computed, same arithmetic)\n",
              "gated evaluation", "batch", "arith", "on %", "x float", "x f all", "x folded",
              "floor", "realised", "realised f");
          header = true;
        }
        // floor: effective / dense MACs; realised: the share of the counted
        // saving turned into time, (float / gated time) / (dense / effective).
        const Counts c = counted(name);
        std::printf("%-20s %5lld %6s %6.1f %8.2f %8.2f %8.2f %8.2f %10.2f %10.2f\n", m.name,
                    static_cast<long long>(batch), arithmetic_of(m.options), c.on_percent,
                    skip / base, dense / base, skip / folded, c.effective_fraction,
                    c.effective_fraction * base / skip, c.effective_fraction * folded / skip);
      }
    }
    const double channels_last = lookup(times, float_name(batch, FloatWay::kChannelsLast));
    if (channels_last > 0) {
      std::printf("%-20s %5lld %6s %8.2f  (the float model on a channels-last input)\n",
                  "float channels-last", static_cast<long long>(batch), "", channels_last / base);
    }
    std::printf("%-20s %5lld %6s %8.2f  (the folded float model)\n", "float folded",
                static_cast<long long>(batch), "", folded / base);
  }
  header = false;
  for (const int64_t batch : kBatches) {
    const double base = lookup(times, float_name(batch, FloatWay::kPlain));
    const double folded = lookup(times, float_name(batch, FloatWay::kFolded));
    if (base <= 0 || folded <= 0) continue;
    for (const auto& m : integer_models()) {
      const std::string name = integer_name(m, batch, Integer::kAlways);
      const double integers = lookup(times, name);
      const double in_float = lookup(times, integer_name(m, batch, Integer::kNever));
      if (integers <= 0 || in_float <= 0) continue;
      if (!header) {
        std::printf(
            "\n%-20s %5s %6s %10s %10s %9s %9s %8s %10s  (ratios to the float model, plain and "
            "folded; batch 1 on one thread)\n",
            "integer evaluation", "batch", "on %", "integers", "in float", "speed-up", "x folded",
            "floor", "realised");
        header = true;
      }
      // floor and realised as above: the counted cost of the gated model
      // against the float one, and the share of it turned into time.
      const Counts c = counted(name);
      std::printf("%-20s %5lld %6.1f %10.2f %10.2f %9.2f %9.2f %8.2f %10.2f\n", m.name,
                  static_cast<long long>(batch), m.percent > 0 ? c.on_percent : 100.0,
                  integers / base, in_float / base, in_float / integers, integers / folded,
                  c.effective_fraction, c.effective_fraction * base / integers);
    }
  }
  header = false;
  for (const LayerShape shape : kLayerShapes) {
    const double base = lookup(times, dense_name(shape));
    if (base <= 0) continue;
    for (const int percent : kLayerPercents) {
      const std::string name = layer_name(shape, percent, Skipping::kFastest);
      const double skip = lookup(times, name);
      const double dense = lookup(times, layer_name(shape, percent, Skipping::kNever));
      if (skip <= 0 || dense <= 0) continue;
      if (!header) {
        std::printf("\n%-20s %6s %8s %8s %8s %10s  (batch 128, ratio to the dense convolution)\n",
                    "CG layer p=4", "on %", "x dense", "x d all", "floor", "realised");
        header = true;
      }
      const Counts c = counted(name);
      std::printf("%-20s %6.1f %8.2f %8.2f %8.2f %10.2f\n",
                  (std::to_string(shape.channels) + " ch " + std::to_string(shape.size) + "x" +
                   std::to_string(shape.size))
                      .c_str(),
                  c.on_percent, skip / base, dense / base, c.effective_fraction,
                  c.effective_fraction * base / skip);
    }
  }
}

}  // namespace dnn_gating::bench
