#include "gated_inference.h"

#include <benchmark/benchmark.h>

#include <cstdio>
#include <vector>

#include "dnn_gating/layers/cg_conv.h"
#include "dnn_gating/layers/gated_layer.h"
#include "dnn_gating/layers/pg_conv.h"
#include "dnn_gating/models/resnet.h"

namespace dnn_gating::bench {
namespace {

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

// The layers of CG ResNet-20's three stages (p = 4, grouped base path).
struct LayerShape {
  int64_t channels, size;
};
constexpr LayerShape kLayerShapes[] = {{16, 32}, {32, 16}, {64, 8}};
constexpr int kLayerPercents[] = {50, 25, 10};
constexpr int64_t kBatches[] = {128, 1};

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

std::string skipping_tag(Skipping s) { return s == Skipping::kNever ? "dense" : "skip"; }

// The model of `spec` (seed 0) with its gates held at `percent` % open,
// calibrated once per model and percentage.
models::ResNet held_model(const GatedModel& spec, int percent) {
  static std::map<std::string, std::vector<torch::Tensor>> calibrated;
  torch::manual_seed(0);
  models::ResNet model(spec.options);
  model->eval();
  const auto gated = layers::gated_layers(*model);
  const std::string key = std::string(spec.name) + "/" + std::to_string(percent);
  torch::NoGradGuard no_grad;
  if (calibrated.count(key) == 0) {
    const torch::Tensor calibration = torch::randn({16, 3, 32, 32});
    hold_on_fraction(
        *model, [&] { model->forward(calibration); }, percent / 100.0);
    for (const auto& [name, layer] : gated) calibrated[key].push_back(layer->threshold().clone());
  }
  for (size_t i = 0; i < gated.size(); ++i) gated[i].second->threshold().copy_(calibrated[key][i]);
  return model;
}

void evaluate_model(benchmark::State& state, const GatedModel& spec, int percent, int64_t batch,
                    Skipping skipping) {
  models::ResNet model = held_model(spec, percent);
  layers::set_skipping(*model, skipping);
  const torch::Tensor x = torch::randn({batch, 3, 32, 32});
  torch::NoGradGuard no_grad;
  for (int i = 0; i < 3; ++i) model->forward(x);
  layers::reset_counts(*model);
  for (auto _ : state) benchmark::DoNotOptimize(model->forward(x).data_ptr());
  state.counters["on_percent"] = 100.0 * layers::total_counts(*model).on_fraction();
  state.SetItemsProcessed(state.iterations() * batch);
}

// The float model as the original runs it (NCHW), or on a channels-last
// input, the layout the CG layers run in (a second reference: a float model
// gains from it too).
void evaluate_float(benchmark::State& state, int64_t batch, bool channels_last) {
  torch::manual_seed(0);
  models::ResNet model(ResNetOptions(ConvKind::kFloat));
  model->eval();
  torch::Tensor x = torch::randn({batch, 3, 32, 32});
  if (channels_last) x = x.contiguous(at::MemoryFormat::ChannelsLast);
  torch::NoGradGuard no_grad;
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
  for (auto _ : state) benchmark::DoNotOptimize(layer->forward(x).data_ptr());
  state.counters["on_percent"] = 100.0 * layer->last_counts().on_fraction();
}

void dense_conv(benchmark::State& state, LayerShape shape) {
  const torch::Tensor x = layer_input(shape);
  torch::manual_seed(0);
  const torch::Tensor w = torch::randn({shape.channels, shape.channels, 3, 3});
  torch::NoGradGuard no_grad;
  for (int i = 0; i < 3; ++i) torch::conv2d(x, w, {}, 1, 1);
  for (auto _ : state) benchmark::DoNotOptimize(torch::conv2d(x, w, {}, 1, 1).data_ptr());
}

std::string float_name(int64_t batch, bool channels_last) {
  return std::string(channels_last ? "gated_eval/float_channels_last/batch"
                                   : "gated_eval/float/batch") +
         std::to_string(batch);
}

std::string model_name(const GatedModel& m, int percent, int64_t batch, Skipping s) {
  return "gated_eval/" + std::string(m.name) + "/on" + std::to_string(percent) + "/batch" +
         std::to_string(batch) + "/" + skipping_tag(s);
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
    configure(benchmark::RegisterBenchmark(float_name(batch, false).c_str(), evaluate_float, batch,
                                           false));
    configure(
        benchmark::RegisterBenchmark(float_name(batch, true).c_str(), evaluate_float, batch, true));
    for (const auto& m : gated_models()) {
      for (const int percent : m.percents) {
        for (const Skipping s : kModes) {
          configure(benchmark::RegisterBenchmark(model_name(m, percent, batch, s).c_str(),
                                                 evaluate_model, m, percent, batch, s));
        }
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

void print_gated_inference(const std::map<std::string, double>& times) {
  bool header = false;
  for (const int64_t batch : kBatches) {
    const double base = lookup(times, float_name(batch, false));
    const double base_cl = lookup(times, float_name(batch, true));
    if (base <= 0 || base_cl <= 0) continue;
    for (const auto& m : gated_models()) {
      for (const int percent : m.percents) {
        const double skip = lookup(times, model_name(m, percent, batch, Skipping::kFastest));
        const double dense = lookup(times, model_name(m, percent, batch, Skipping::kNever));
        if (skip <= 0 || dense <= 0) continue;
        if (!header) {
          std::printf("\n%-22s %6s %6s %12s %12s %12s\n", "gated evaluation", "batch", "on %",
                      "x float", "x float all", "x float CL");
          header = true;
        }
        std::printf("%-22s %6lld %6d %12.2f %12.2f %12.2f\n", m.name, static_cast<long long>(batch),
                    percent, skip / base, dense / base, skip / base_cl);
      }
    }
  }
  header = false;
  for (const LayerShape shape : kLayerShapes) {
    const double base = lookup(times, dense_name(shape));
    if (base <= 0) continue;
    for (const int percent : kLayerPercents) {
      const double skip = lookup(times, layer_name(shape, percent, Skipping::kFastest));
      const double dense = lookup(times, layer_name(shape, percent, Skipping::kNever));
      if (skip <= 0 || dense <= 0) continue;
      if (!header) {
        std::printf("\n%-22s %6s %12s %12s  (batch 128, ratio to the dense convolution)\n",
                    "CG layer p=4", "on %", "x dense", "x dense all");
        header = true;
      }
      std::printf("%-22s %6d %12.2f %12.2f\n",
                  (std::to_string(shape.channels) + " ch " + std::to_string(shape.size) + "x" +
                   std::to_string(shape.size))
                      .c_str(),
                  percent, skip / base, dense / base);
    }
  }
}

}  // namespace dnn_gating::bench
