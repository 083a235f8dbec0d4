// Benchmarks of what a user waits for: one training step (forward, gating
// loss, backward, SGD step) and evaluation throughput of every model kind,
// the data pipeline, and the peak memory of a short training run. Every
// model's figures are also reported as a ratio to the float model's,
// measured in the same run.
#include <benchmark/benchmark.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <string>

#include "dnn_gating/data/loader.h"
#include "dnn_gating/models/resnet.h"
#include "dnn_gating/train/recipe.h"
#include "dnn_gating/train/runtime.h"
#include "dnn_gating/train/step.h"
#include "gated_inference.h"
#include "image_folder.h"
#include "integer_conv.h"
#include "kernels/isa.h"
#include "photo_inputs.h"

namespace dg = dnn_gating;
namespace isa = dnn_gating::kernels::isa;
using dg::models::ResNetOptions;

namespace {

constexpr int64_t kBatch = 128;
constexpr int kRepetitions = 5;

// A model timed by the benchmarks, with the guard's limits: the most its
// training step and its evaluation may cost as a multiple of the float
// model's in the same run, past which the run prints FAIL (0: no limit).
struct ModelSpec {
  const char* name;
  ResNetOptions options;
  dg::train::Recipe recipe;
  double step_limit = 0, eval_limit = 0;
};

const std::vector<ModelSpec>& specs() {
  using dg::models::BlockLayout;
  using dg::models::ConvKind;
  static const std::vector<ModelSpec> all{
      {"float", ResNetOptions(ConvKind::kFloat), dg::train::pg_recipe(0.001, 1.0)},
      // Limits: this machine's figures at both kernel levels with about 10 %
      // to spare (docs/PERFORMANCE.md, "Kernel levels and the guard"): a
      // regression guard, not the targets.
      {"quantized_w8a3_pact", ResNetOptions(ConvKind::kQuantized).wbits(8).abits(3).pact(true),
       dg::train::pg_recipe(0.001, 1.0), 1.25, 1.5},
      {"pg_w8a3pb2_spbp_pact",
       ResNetOptions(ConvKind::kPrecisionGated)
           .wbits(8)
           .abits(3)
           .pred_bits(2)
           .sparse_bp(true)
           .pact(true),
       dg::train::pg_recipe(0.001, 1.0), 1.7, 2.0},
      {"cg_p4_group_spbp",
       ResNetOptions(ConvKind::kChannelGated).partitions(4).use_group(true).sparse_bp(true),
       dg::train::cg_recipe(0.1, 1e-4, 1.0), 1.6, 1.75},
      {"cg_postact_p2_group",
       ResNetOptions(ConvKind::kChannelGated, BlockLayout::kPostActivated)
           .partitions(2)
           .use_group(true)
           .sparse_bp(true),
       dg::train::cg_recipe(0.1, 1e-4, 0.6), 2.1, 1.75},
  };
  return all;
}

struct Fixture {
  dg::models::ResNet model;
  std::unique_ptr<torch::optim::SGD> sgd;
  dg::train::Classifier classifier;
  torch::Tensor x, y;
};

Fixture make_fixture(const ModelSpec& spec) {
  torch::manual_seed(0);
  dg::models::ResNet model(spec.options);
  auto sgd = dg::train::make_sgd(*model, spec.recipe.sgd);
  dg::train::Classifier classifier{
      model.ptr(), [model](const torch::Tensor& in) mutable { return model->forward(in); }};
  torch::Tensor x = dg::bench::input_images(kBatch, 1);
  torch::manual_seed(0);
  return {model, std::move(sgd), classifier, x, torch::randint(0, 10, {kBatch})};
}

void train_step(benchmark::State& state, const ModelSpec& spec) {
  Fixture f = make_fixture(spec);
  for (int i = 0; i < 2; ++i)
    dg::train::train_step(f.classifier, *f.sgd, spec.recipe.gating_loss, f.x, f.y);
  for (auto _ : state) {
    auto r = dg::train::train_step(f.classifier, *f.sgd, spec.recipe.gating_loss, f.x, f.y);
    benchmark::DoNotOptimize(r.ce_loss);
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}

void evaluation(benchmark::State& state, const ModelSpec& spec) {
  Fixture f = make_fixture(spec);
  torch::NoGradGuard no_grad;
  f.model->eval();
  for (int i = 0; i < 2; ++i) f.model->forward(f.x);
  for (auto _ : state) benchmark::DoNotOptimize(f.model->forward(f.x).data_ptr());
  state.SetItemsProcessed(state.iterations() * kBatch);
}

void data_pipeline(benchmark::State& state) {
  dg::data::ImageSet set;
  set.images = torch::randint(0, 256, {50000, 3, 32, 32}, torch::kUInt8);
  set.labels = torch::randint(0, 10, {50000}, torch::kLong);
  set.mean = {0.485f, 0.456f, 0.406f};
  set.std = {0.229f, 0.224f, 0.225f};
  set.class_names.assign(10, "c");
  dg::data::BatchLoader loader(set, dg::data::LoaderOptions(kBatch).augment(true).shuffle(true));
  loader.start_epoch(0);
  int64_t b = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(loader.batch(b).images.data_ptr());
    b = (b + 1) % loader.num_batches();
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}

// The option that makes this program a child measuring one model's memory.
constexpr const char* kPeakRssOf = "--peak-rss-of";

// Five training steps of the model named `name` (the child's work).
int train_steps_of(const std::string& name) {
  for (const auto& spec : specs()) {
    if (spec.name != name) continue;
    Fixture f = make_fixture(spec);
    for (int i = 0; i < 5; ++i)
      dg::train::train_step(f.classifier, *f.sgd, spec.recipe.gating_loss, f.x, f.y);
    return 0;
  }
  return 2;
}

// Peak resident memory of 5 training steps, in a child process so every
// model starts from a clean heap: this program started again (a forked child
// of a parent whose OpenMP threads had started could hang in their pool).
double peak_rss_mib(const ModelSpec& spec) {
  std::string program = "dnn_gating_bench", option = kPeakRssOf, name = spec.name;
  char* child_argv[] = {program.data(), option.data(), name.data(), nullptr};
  pid_t pid = 0;
  // This very executable, however it was named on the command line.
  if (posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, child_argv, environ) != 0) return 0;
  int status = 0;
  rusage usage{};
  wait4(pid, &status, 0, &usage);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? usage.ru_maxrss / 1024.0 : 0;
}

// Prints the ratio table from the run's own measurements: the fastest of each
// benchmark's repetitions, since disturbances on a shared machine only ever
// add time.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const auto& run : runs) {
      if (run.run_type == Run::RT_Iteration) {
        repetitions_[run.run_name.function_name].push_back(run.GetAdjustedRealTime());
        const auto on = run.counters.find("on_percent");
        const auto effective = run.counters.find("effective_fraction");
        if (on != run.counters.end() && effective != run.counters.end()) {
          counts_[run.run_name.function_name] = {on->second.value, effective->second.value};
        }
      }
    }
    for (const auto& [name, values] : repetitions_) {
      times_[name] = *std::min_element(values.begin(), values.end());
    }
  }
  void Finalize() override {
    ConsoleReporter::Finalize();
    dg::bench::print_image_folder(times_);
    dg::bench::print_integer_conv(times_);
    if (times_.count("train_step/float") == 0 && times_.count("evaluation/float") == 0) {
      dg::bench::print_gated_inference(times_, counts_);
      return;
    }
    std::printf("\n%-24s %14s %8s %14s %8s %12s %8s\n", "model", "step ms", "x float", "eval img/s",
                "x float", "peak MiB", "x float");
    const double float_step = times_["train_step/float"];
    const double float_eval = times_["evaluation/float"];
    const double float_rss = rss_["float"];
    for (const auto& spec : specs()) {
      const double step = times_["train_step/" + std::string(spec.name)];
      const double eval = times_["evaluation/" + std::string(spec.name)];
      std::printf("%-24s %14.1f %8.2f %14.0f %8.2f %12.0f %8.2f\n", spec.name, step,
                  step / float_step, kBatch * 1000.0 / eval, eval / float_eval, rss_[spec.name],
                  rss_[spec.name] / float_rss);
    }
    const double data = times_["data_pipeline"];
    if (data > 0) {
      std::printf(
          "\ndata pipeline: %.2f ms per augmented batch of %lld (%.0f images/s), %.1f %% of the "
          "float step\n",
          data, static_cast<long long>(kBatch), kBatch * 1000.0 / data, 100.0 * data / float_step);
    }
    std::printf(
        "(eval column 'x float' is the time ratio; threads: %d; inputs: %s; kernel level %s"
        " of the CPU's %s)\n",
        torch::get_num_threads(), dg::bench::input_kind().c_str(), isa::name(isa::level()),
        isa::name(isa::cpu_level()));
    print_guard(float_step, float_eval);
    dg::bench::print_gated_inference(times_, counts_);
  }
  std::map<std::string, double> rss_;

 private:
  // The guard: one line per gated model and figure, FAIL past its limit.
  void print_guard(double float_step, double float_eval) {
    std::printf("\nguard (kernel level %s, inputs %s):\n", isa::name(isa::level()),
                dg::bench::input_kind().c_str());
    for (const auto& spec : specs()) {
      const std::pair<const char*, double> checks[] = {{"train_step", spec.step_limit},
                                                       {"evaluation", spec.eval_limit}};
      for (const auto& [what, limit] : checks) {
        const auto it = times_.find(std::string(what) + "/" + spec.name);
        const double base = std::string(what) == "train_step" ? float_step : float_eval;
        if (limit <= 0 || it == times_.end() || base <= 0) continue;
        const double ratio = it->second / base;
        std::printf("  %-4s %-24s %-10s %5.2fx float (limit %.2fx)\n",
                    ratio <= limit ? "ok" : "FAIL", spec.name, what, ratio, limit);
      }
    }
  }

  std::map<std::string, std::vector<double>> repetitions_;
  std::map<std::string, double> times_;
  std::map<std::string, dg::bench::Counts> counts_;
};

}  // namespace

int main(int argc, char** argv) {
  dg::train::configure_runtime(/*threads=*/0);  // as the trainers run
  if (argc == 3 && std::string(argv[1]) == kPeakRssOf) return train_steps_of(argv[2]);
  try {
    dg::bench::input_images(1, 0);  // the inputs exist, before any benchmark needs them
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dnn_gating_bench: %s\n", e.what());
    return 2;
  }
  RatioReporter reporter;
  for (const auto& spec : specs()) reporter.rss_[spec.name] = peak_rss_mib(spec);
  for (const auto& spec : specs()) {
    benchmark::RegisterBenchmark(("train_step/" + std::string(spec.name)).c_str(), train_step, spec)
        ->Unit(benchmark::kMillisecond)
        ->MinTime(1.0)
        ->Repetitions(kRepetitions)
        ->UseRealTime();
  }
  for (const auto& spec : specs()) {
    benchmark::RegisterBenchmark(("evaluation/" + std::string(spec.name)).c_str(), evaluation, spec)
        ->Unit(benchmark::kMillisecond)
        ->MinTime(0.5)
        ->Repetitions(kRepetitions)
        ->UseRealTime();
  }
  benchmark::RegisterBenchmark("data_pipeline", data_pipeline)
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
  dg::bench::register_gated_inference();
  dg::bench::register_image_folder();
  dg::bench::register_integer_conv();
  // Repetitions of different benchmarks are interleaved (in random order), so
  // that a slow spell of a shared machine spreads over every model instead of
  // skewing one model's ratio. Flags given on the command line come later and win.
  std::vector<char*> args(argv, argv + argc);
  std::string interleave = "--benchmark_enable_random_interleaving=true";
  args.insert(args.begin() + 1, interleave.data());
  int count = static_cast<int>(args.size());
  benchmark::Initialize(&count, args.data());
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
