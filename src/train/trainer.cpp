#include "dnn_gating/train/trainer.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>

#include "dnn_gating/data/image_set.h"
#include "dnn_gating/data/loader.h"
#include "dnn_gating/train/checkpoint.h"
#include "dnn_gating/train/log.h"
#include "dnn_gating/train/metrics.h"
#include "dnn_gating/train/model_meta.h"
#include "dnn_gating/train/plot.h"
#include "dnn_gating/train/report.h"
#include "dnn_gating/train/step.h"

namespace dnn_gating::train {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

data::ImageSet load_split(const JobConfig& config, data::Split split, int64_t limit) {
  const std::string dir =
      config.data_dir.empty() ? default_data_dir(config.dataset) : config.data_dir;
  data::ImageSet set = data::read_dataset(config.dataset, dir, split);
  if (limit > 0 && limit < set.size()) {
    spdlog::info("Using the first {} of {} {} images", limit, set.size(),
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

// Applies a self-describing checkpoint's model and dataset to the job;
// explicit settings that contradict it are an error naming the flags.
JobConfig adopt_checkpoint(const JobConfig& config, const std::string& meta_text) {
  JobConfig out = config;
  nlohmann::json meta;
  try {
    meta = nlohmann::json::parse(meta_text);
  } catch (const nlohmann::json::exception&) {
    TORCH_CHECK(false, config.load_path, ": the checkpoint's description is not valid JSON");
  }
  if (!meta.contains("model")) return out;
  const models::ResNetOptions saved = model_from_json(meta.at("model").dump());
  const nlohmann::json saved_json = meta.at("model");
  const nlohmann::json given_json = nlohmann::json::parse(model_to_json(config.model));
  std::string conflicts;
  for (const auto& field : differing_fields(config.model, saved)) {
    auto it = config.explicit_settings.find(field);
    if (it == config.explicit_settings.end()) continue;
    conflicts += (conflicts.empty() ? "" : ", ") + it->second + " (" + field + " " +
                 given_json.at(field).dump() + ", checkpoint " + saved_json.at(field).dump() + ")";
  }
  const std::string saved_dataset = meta.value("dataset", config.dataset);
  if (config.explicit_settings.count("dataset") && saved_dataset != config.dataset) {
    conflicts += (conflicts.empty() ? "" : ", ") + config.explicit_settings.at("dataset") +
                 " (checkpoint " + saved_dataset + ")";
  }
  TORCH_CHECK(conflicts.empty(), config.load_path,
              ": flags contradict the checkpoint: ", conflicts);
  out.model = saved;
  out.dataset = saved_dataset;
  return out;
}

void log_lines(spdlog::logger& log, const std::vector<std::string>& lines) {
  for (const auto& line : lines) log.info("{}", line);
}

std::string model_name(const models::ResNetOptions& o) {
  return models::model_name(o.conv(), o.layout());
}

std::vector<std::pair<std::string, double>> on_fractions(const Evaluation& evaluation) {
  std::vector<std::pair<std::string, double>> out;
  for (const auto& layer : evaluation.layers)
    out.emplace_back(layer.name, layer.counts.on_fraction());
  return out;
}

// Fills the optional cost figures of an epoch or final record.
template <typename Record>
void set_cost_figures(Record& record, const CostFigures& costs) {
  if (costs.has_pg) record.pg_average_bits = costs.pg_average_bits;
  if (costs.has_cg) record.cg_flop_reduction = costs.cg_flop_reduction;
}

// Everything a job holds while it runs.
class Job {
 public:
  explicit Job(const JobConfig& requested) : requested_(requested) {}

  JobResult run() {
    Checkpoint checkpoint;
    if (!requested_.load_path.empty()) checkpoint = read_checkpoint(requested_.load_path);
    config_ = checkpoint.meta.empty() ? requested_ : adopt_checkpoint(requested_, checkpoint.meta);
    torch::manual_seed(config_.seed);
    test_set_ = load_split(config_, data::Split::kTest, config_.test_limit);

    config_.model.in_channels(test_set_.channels());
    config_.model.num_classes(static_cast<int64_t>(test_set_.class_names.size()));
    model_ = models::ResNet(config_.model);
    if (!config_.load_path.empty()) {
      load_state(*model_, checkpoint, config_.load_path);
      spdlog::info("Loaded checkpoint {} ({}-layer {} ResNet)", config_.load_path,
                   config_.model.depth(), model_name(config_.model));
    }
    model_->to(config_.device);
    classifier_ = Classifier{model_.ptr(), [model = model_](const torch::Tensor& x) mutable {
                               return model->forward(x);
                             }};
    test_loader_.emplace(test_set_, data::LoaderOptions(config_.batch_size));
    metrics_.emplace(config_.metrics_path, config_.metrics_csv_path);

    // Training ends with an evaluation of the final model; reuse it.
    const Evaluation evaluation = config_.test_only ? evaluate_split() : train();
    const CostFigures costs = cost_figures(evaluation);
    log_lines(report_log(), accuracy_lines(evaluation, test_set_.class_names));
    log_lines(report_log(), gate_report_lines(evaluation, costs));
    JobResult result;
    result.test_accuracy = evaluation.accuracy();
    result.sparsity = evaluation.sparsity();
    if (!config_.test_only && config_.save) {
      result.checkpoint_path = checkpoint_file(config_);
      save_checkpoint(
          result.checkpoint_path, *model_,
          checkpoint_meta(config_, config_.epochs, result.test_accuracy, result.sparsity));
      spdlog::info("Saved checkpoint {}", result.checkpoint_path);
    }
    write_final_record(evaluation, costs, result.checkpoint_path);
    if (!config_.plot_path.empty() && !history_.empty()) {
      write_training_plot(history_, config_.plot_path,
                          config_.program + ": " + model_name(config_.model) + " ResNet-" +
                              std::to_string(config_.model.depth()));
      spdlog::info("Wrote training curves to {}", config_.plot_path);
    }
    return result;
  }

 private:
  Evaluation evaluate_split() {
    return evaluate(classifier_, *test_loader_, config_.device, config_.model.num_classes());
  }

  // Trains every epoch; returns the evaluation after the last one.
  Evaluation train() {
    const data::ImageSet train_set = load_split(config_, data::Split::kTrain, config_.train_limit);
    data::BatchLoader loader(
        train_set,
        data::LoaderOptions(config_.batch_size).augment(true).shuffle(true).seed(config_.seed));
    auto optimizer = make_sgd(*model_, config_.sgd);
    Progress progress(config_.progress, config_.log_every);
    spdlog::info("Training {} ({}-layer {}) on {} ({} images) for {} epochs, {} batches of {}",
                 config_.program, config_.model.depth(), model_name(config_.model), train_set.name,
                 train_set.size(), config_.epochs, loader.num_batches(), config_.batch_size);
    std::optional<Evaluation> latest;
    for (int64_t epoch = 0; epoch < config_.epochs; ++epoch) {
      EpochRecord record;
      record.epoch = epoch + 1;
      record.lr = scheduled_lr(config_.sgd.lr, config_.milestones, epoch);
      set_lr(*optimizer, record.lr);
      spdlog::info("Epoch {}/{}: learning rate {:g}", epoch + 1, config_.epochs, record.lr);
      loader.start_epoch(epoch);
      progress.start_epoch(epoch, config_.epochs, loader.num_batches());
      const auto start = Clock::now();
      double loss_sum = 0;
      int64_t correct = 0;
      for (int64_t b = 0; b < loader.num_batches(); ++b) {
        const data::Batch batch = loader.batch(b);
        const StepResult step =
            train_step(classifier_, *optimizer, config_.gating_loss,
                       batch.images.to(config_.device), batch.labels.to(config_.device));
        const double loss = step.ce_loss + step.gating_loss;
        TORCH_CHECK(std::isfinite(loss), "training diverged: the loss is ", loss, " at epoch ",
                    epoch + 1, " batch ", b + 1, " (try a lower learning rate)");
        loss_sum += loss;
        correct += step.correct;
        progress.batch(b, loss, step.correct, batch.labels.size(0));
      }
      progress.end_epoch();
      record.seconds = seconds_since(start);
      record.images_per_second = train_set.size() / record.seconds;
      record.train_loss = loss_sum / loader.num_batches();
      record.train_accuracy = 100.0 * correct / train_set.size();
      spdlog::info(
          "Epoch {} took {:.1f} s ({:.0f} images/s), train loss {:.3f}, train acc {:.1f} %",
          epoch + 1, record.seconds, record.images_per_second, record.train_loss,
          record.train_accuracy);
      const bool last = epoch + 1 == config_.epochs;
      if ((epoch + 1) % config_.eval_every == 0 || last) {
        latest = evaluate_split();
        const CostFigures costs = cost_figures(*latest);
        record.test_accuracy = latest->accuracy();
        record.sparsity = latest->sparsity();
        record.layer_on_fraction = on_fractions(*latest);
        set_cost_figures(record, costs);
        if (!last) {
          spdlog::info("Epoch {}: test accuracy {:.1f} %, sparsity {:.1f} %", epoch + 1,
                       *record.test_accuracy, *record.sparsity);
          log_lines(*spdlog::default_logger(), gate_report_lines(*latest, costs));
        }
      }
      metrics_->write_epoch(record);
      history_.push_back(record);
    }
    return *latest;  // the last epoch always evaluates
  }

  void write_final_record(const Evaluation& evaluation, const CostFigures& costs,
                          const std::string& checkpoint) {
    FinalRecord final_record;
    final_record.program = config_.program;
    final_record.epochs = config_.test_only ? 0 : config_.epochs;
    final_record.test_images = evaluation.images;
    final_record.test_accuracy = evaluation.accuracy();
    final_record.sparsity = evaluation.sparsity();
    set_cost_figures(final_record, costs);
    final_record.layer_on_fraction = on_fractions(evaluation);
    final_record.confusion = evaluation.confusion;
    final_record.class_names = test_set_.class_names;
    final_record.checkpoint = checkpoint;
    metrics_->write_final(final_record);
  }

  const JobConfig& requested_;
  JobConfig config_;
  data::ImageSet test_set_;
  models::ResNet model_{nullptr};
  Classifier classifier_;
  std::optional<data::BatchLoader> test_loader_;
  std::optional<MetricsWriter> metrics_;
  std::vector<EpochRecord> history_;
};

}  // namespace

std::string default_data_dir(const std::string& dataset) {
  return dataset == "fashion-mnist" ? "/usr/share/datasets/fashion-mnist"
                                    : "data/cifar-10-batches-bin";
}

std::string checkpoint_file(const JobConfig& config) {
  return (std::filesystem::path(config.save_dir) /
          ("model_resnet-" + std::to_string(config.model.depth()) + ".pt"))
      .string();
}

JobResult run_job(const JobConfig& config) { return Job(config).run(); }

}  // namespace dnn_gating::train
