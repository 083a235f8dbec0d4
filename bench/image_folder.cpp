#include "image_folder.h"

#include <benchmark/benchmark.h>
#include <torch/torch.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "dnn_gating/data/folder_loader.h"
#include "dnn_gating/models/torchvision.h"
#include "dnn_gating/train/optimizer.h"
#include "dnn_gating/train/recipe.h"
#include "dnn_gating/train/step.h"
#include "jpeg_writer.h"

namespace dnn_gating::bench {
namespace {

namespace fs = std::filesystem;
constexpr int64_t kBatch = 32;
constexpr int kImages = 96;

// A folder of ImageNet-like JPEGs (500 x 375, quality 90, textured so that
// they do not compress to nothing), removed with the process's scratch dir.
struct JpegFolder {
  JpegFolder()
      : root(fs::temp_directory_path() / ("dnn-gating-bench-" + std::to_string(getpid()))) {
    std::mt19937 rng(0);
    for (int i = 0; i < kImages; ++i) {
      std::vector<uint8_t> rgb(500 * 375 * 3);
      for (size_t k = 0; k < rgb.size(); ++k) {
        rgb[k] = static_cast<uint8_t>((k / 3 % 500 + k / 1500) / 4 + rng() % 64);
      }
      const fs::path dir = root / ("class" + std::to_string(i % 4));
      fs::create_directories(dir);
      std::ofstream(dir / (std::to_string(i) + ".jpg"), std::ios::binary)
          << testing::encode_jpeg(rgb, 500, 375, 3, 90);
    }
  }
  ~JpegFolder() {
    std::error_code ignored;
    fs::remove_all(root, ignored);
  }
  fs::path root;
};

void image_folder_pipeline(benchmark::State& state) {
  static const JpegFolder folder;
  data::FolderLoader loader(data::scan_image_folder(folder.root.string()),
                            data::LoaderOptions(kBatch).augment(true).shuffle(true));
  int64_t b = 0, epoch = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(loader.batch(b).images.data_ptr());
    if (++b == loader.num_batches()) {
      b = 0;
      loader.start_epoch(++epoch);
    }
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}

void resnet18_step(benchmark::State& state) {
  torch::manual_seed(0);
  models::Model model = models::make_model(
      models::ResNetOptions().arch(models::Arch::kResNet18).imagenet_stem(true).num_classes(1000));
  const train::Recipe recipe = train::cg_recipe(0.1, 1e-4, 1.0);
  auto sgd = train::make_sgd(*model.module, recipe.sgd);
  const train::Classifier classifier{model.module, model.forward};
  const torch::Tensor x = torch::randn({kBatch, 3, 224, 224});
  const torch::Tensor y = torch::randint(0, 1000, {kBatch});
  train::train_step(classifier, *sgd, recipe.gating_loss, x, y);
  for (auto _ : state) {
    benchmark::DoNotOptimize(train::train_step(classifier, *sgd, recipe.gating_loss, x, y).ce_loss);
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}

}  // namespace

void register_image_folder() {
  benchmark::RegisterBenchmark("image_folder_pipeline", image_folder_pipeline)
      ->Unit(benchmark::kMillisecond)
      ->MinTime(2.0)
      ->UseRealTime();
  benchmark::RegisterBenchmark("resnet18_step_224", resnet18_step)
      ->Unit(benchmark::kMillisecond)
      ->Iterations(3)
      ->UseRealTime();
}

void print_image_folder(const std::map<std::string, double>& times) {
  const auto pipeline = times.find("image_folder_pipeline");
  const auto step = times.find("resnet18_step_224");
  if (pipeline == times.end() || step == times.end()) return;
  const double supply = kBatch * 1000.0 / pipeline->second;
  const double demand = kBatch * 1000.0 / step->second;
  std::printf(
      "\nimage folder pipeline (JPEG 500x375 -> RandomResizedCrop 224, %u threads): %.0f images/s;"
      "\nfloat ResNet-18 training step at 224 (batch %lld): %.1f images/s; the pipeline alone "
      "keeps up with %.1fx the step\n",
      std::thread::hardware_concurrency(), supply, static_cast<long long>(kBatch), demand,
      supply / demand);
}

}  // namespace dnn_gating::bench
