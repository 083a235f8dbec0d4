#include "dnn_gating/train/trainer.h"

#include "dnn_gating/data/image_set.h"
#include "dnn_gating/data/loader.h"
#include "dnn_gating/train/checkpoint.h"
#include "dnn_gating/train/model_meta.h"
#include "dnn_gating/train/report.h"
#include "dnn_gating/train/step.h"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <chrono>
#include <filesystem>

namespace dnn_gating::train {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

data::ImageSet load_split(const JobConfig& config, data::Split split, int64_t limit) {
  data::ImageSet set = data::read_dataset(config.dataset, config.data_dir, split);
  if (limit > 0 && limit < set.size()) {
    spdlog::info("Using the first {} of {} {} images (limit set)", limit, set.size(),
                 split == data::Split::kTrain ? "training" : "test");
    set = set.first(limit);
  }
  return set;
}

std::string checkpoint_meta(const JobConfig& config, int64_t epochs_done, double accuracy,
                            double sparsity) {
  nlohmann::json meta;
  meta["program"] = config.program;
  meta["model"] = nlohmann::json::parse(model_to_json(config.model));
  meta["dataset"] = config.dataset;
  meta["epochs"] = epochs_done;
  meta["test_accuracy"] = accuracy;
  meta["sparsity"] = sparsity;
  return meta.dump();
}

void log_lines(const std::vector<std::string>& lines) {
  for (const auto& line : lines) spdlog::info("{}", line);
}

}  // namespace

std::string checkpoint_file(const JobConfig& config) {
  return (std::filesystem::path(config.save_dir) /
          ("model_resnet-" + std::to_string(config.model.depth()) + ".pt"))
      .string();
}

JobResult run_job(const JobConfig& config) {
  torch::manual_seed(config.seed);
  const data::ImageSet test_set = load_split(config, data::Split::kTest, config.test_limit);

  models::ResNetOptions model_options = config.model;
  model_options.in_channels(test_set.channels());
  model_options.num_classes(static_cast<int64_t>(test_set.class_names.size()));
  models::ResNet model(model_options);
  if (!config.load_path.empty()) {
    load_state(*model, read_checkpoint(config.load_path), config.load_path);
    spdlog::info("Loaded checkpoint {}", config.load_path);
  }
  model->to(config.device);
  const Classifier classifier{model.ptr(), [model](const torch::Tensor& x) mutable {
                                return model->forward(x);
                              }};
  const data::BatchLoader test_loader(test_set, data::LoaderOptions(config.batch_size));
  const int64_t dense_macs = model->dense_macs_per_image(32, 32);

  auto evaluate_and_report = [&](bool full) {
    const Evaluation evaluation =
        evaluate(classifier, test_loader, config.device, model_options.num_classes());
    if (full) {
      log_lines(accuracy_lines(evaluation, test_set.class_names));
      log_lines(gate_report_lines(evaluation, cost_figures(evaluation, dense_macs)));
    }
    return evaluation;
  };

  JobResult result;
  if (!config.test_only) {
    const data::ImageSet train_set = load_split(config, data::Split::kTrain, config.train_limit);
    data::BatchLoader train_loader(
        train_set,
        data::LoaderOptions(config.batch_size).augment(true).shuffle(true).seed(config.seed));
    auto optimizer = make_sgd(*model, config.sgd);
    spdlog::info("Training {} ({}-layer {}) on {} for {} epochs, {} batches of {}",
                 config.program, model_options.depth(), models::to_string(model_options.kind()),
                 train_set.name, config.epochs, train_loader.num_batches(), config.batch_size);
    double last_accuracy = 0, last_sparsity = 0;
    for (int64_t epoch = 0; epoch < config.epochs; ++epoch) {
      const double lr = scheduled_lr(config.sgd.lr, config.milestones, epoch);
      set_lr(*optimizer, lr);
      spdlog::info("Epoch {}/{}: learning rate {:g}", epoch + 1, config.epochs, lr);
      train_loader.start_epoch(epoch);
      const auto epoch_start = Clock::now();
      auto window_start = Clock::now();
      double window_loss = 0;
      int64_t window_correct = 0, window_images = 0, window_batches = 0;
      for (int64_t b = 0; b < train_loader.num_batches(); ++b) {
        const data::Batch batch = train_loader.batch(b);
        const StepResult step = train_step(classifier, *optimizer, config.gating_loss,
                                           batch.images.to(config.device),
                                           batch.labels.to(config.device));
        window_loss += step.ce_loss + step.gating_loss;
        window_correct += step.correct;
        window_images += batch.labels.size(0);
        ++window_batches;
        if (window_batches == config.log_every || b + 1 == train_loader.num_batches()) {
          spdlog::info("[{}, {:5d}] loss: {:.3f} | train acc: {:.1f} % | {:.3f} s/batch", epoch + 1,
                       b + 1, window_loss / window_batches, 100.0 * window_correct / window_images,
                       seconds_since(window_start) / window_batches);
          window_loss = 0;
          window_correct = window_images = window_batches = 0;
          window_start = Clock::now();
        }
      }
      const double epoch_seconds = seconds_since(epoch_start);
      spdlog::info("Epoch {} took {:.1f} s ({:.0f} images/s)", epoch + 1, epoch_seconds,
                   train_set.size() / epoch_seconds);
      if ((epoch + 1) % config.eval_every == 0 && epoch + 1 < config.epochs) {
        const Evaluation evaluation = evaluate_and_report(false);
        last_accuracy = evaluation.accuracy();
        last_sparsity = evaluation.sparsity();
        spdlog::info("Epoch {}: test accuracy {:.1f} %, sparsity {:.1f} %", epoch + 1,
                     last_accuracy, last_sparsity);
      }
    }
    if (config.save) {
      result.checkpoint_path = checkpoint_file(config);
      // Saved before the final evaluation so a failure there loses nothing.
      save_checkpoint(result.checkpoint_path, *model,
                      checkpoint_meta(config, config.epochs, last_accuracy, last_sparsity));
    }
  }
  const Evaluation evaluation = evaluate_and_report(true);
  result.test_accuracy = evaluation.accuracy();
  result.sparsity = evaluation.sparsity();
  if (!result.checkpoint_path.empty()) {
    save_checkpoint(result.checkpoint_path, *model,
                    checkpoint_meta(config, config.epochs, result.test_accuracy, result.sparsity));
    spdlog::info("Saved checkpoint {}", result.checkpoint_path);
  }
  return result;
}

}  // namespace dnn_gating::train
