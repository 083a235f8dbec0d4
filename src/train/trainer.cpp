#include "dnn_gating/train/trainer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>

#include "dnn_gating/data/image_set.h"
#include "dnn_gating/data/loader.h"
#include "dnn_gating/layers/batch_norm.h"
#include "dnn_gating/setting_error.h"
#include "dnn_gating/train/atomic_file.h"
#include "dnn_gating/train/checkpoint.h"
#include "dnn_gating/train/distributed.h"
#include "dnn_gating/train/interrupt.h"
#include "dnn_gating/train/job_meta.h"
#include "dnn_gating/train/log.h"
#include "dnn_gating/train/metrics.h"
#include "dnn_gating/train/model_meta.h"
#include "dnn_gating/train/plot.h"
#include "dnn_gating/train/pytorch_state_dict.h"
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
  const bool train = split == data::Split::kTrain;
  if (limit > set.size()) {
    throw SettingError(train ? "train_limit" : "test_limit",
                       std::string(train ? "train_limit" : "test_limit") + " " +
                           std::to_string(limit) + " exceeds the " + (train ? "training" : "test") +
                           " split of " + set.name + " (" + std::to_string(set.size()) +
                           " images)");
  }
  if (limit > 0 && limit < set.size()) {
    spdlog::info("Using the first {} of {} {} images", limit, set.size(),
                 train ? "training" : "test");
    set = set.first(limit);
  }
  return set;
}

nlohmann::json parse_meta(const std::string& path, const std::string& meta_text) {
  try {
    return nlohmann::json::parse(meta_text);
  } catch (const nlohmann::json::exception&) {
    throw std::runtime_error(path + ": the checkpoint's description is not valid JSON");
  }
}

// "flag (setting given, checkpoint saved)" for every explicit setting that
// differs between `given` and `saved` (JSON objects keyed by setting).
std::string conflicts_of(const std::vector<std::string>& differing, const nlohmann::json& given,
                         const nlohmann::json& saved,
                         const std::map<std::string, std::string>& explicit_settings) {
  std::string out;
  for (const auto& setting : differing) {
    const auto it = explicit_settings.find(setting);
    if (it == explicit_settings.end()) continue;
    out += (out.empty() ? "" : ", ") + it->second + " (" + setting + " " +
           given.at(setting).dump() + ", checkpoint " + saved.at(setting).dump() + ")";
  }
  return out;
}

// Applies a self-describing checkpoint's model and dataset to the job (and,
// when `resuming`, every training setting); explicit settings that
// contradict it are an error naming the flags.
JobConfig adopt_checkpoint(const JobConfig& config, const std::string& path,
                           const nlohmann::json& meta, bool resuming) {
  JobConfig out = config;
  if (resuming) {
    out = job_from_json(meta.at("job").dump(), config);
    out.resume_path = config.resume_path;
  }
  if (!meta.contains("model")) return out;
  // How gated layers compute is this run's choice, not the file's.
  out.model = model_from_json(meta.at("model").dump()).skipping(config.model.skipping());
  out.dataset = meta.value("dataset", out.dataset);
  std::string conflicts = conflicts_of(differing_fields(config.model, out.model),
                                       nlohmann::json::parse(model_to_json(config.model)),
                                       meta.at("model"), config.explicit_settings);
  const nlohmann::json given_job = nlohmann::json::parse(job_to_json(config));
  const nlohmann::json saved_job = nlohmann::json::parse(job_to_json(out));
  std::vector<std::string> differing_job =
      resuming ? differing_job_settings(config, out) : std::vector<std::string>{};
  if (!resuming && out.dataset != config.dataset) differing_job.push_back("dataset");
  const std::string job_conflicts =
      conflicts_of(differing_job, given_job, saved_job, config.explicit_settings);
  if (!job_conflicts.empty()) conflicts += (conflicts.empty() ? "" : ", ") + job_conflicts;
  if (!conflicts.empty()) {
    throw std::invalid_argument(path + ": flags contradict the checkpoint: " + conflicts);
  }
  return out;
}

// The same text as the shell would need it: quoted when it is not plain.
std::string shell_word(const std::string& word) {
  if (!word.empty() && word.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                              "0123456789_-./=:,+") == std::string::npos) {
    return word;
  }
  std::string out = "'";
  for (char c : word) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

const char* signal_name(int signal_number) {
  return signal_number == SIGINT ? "SIGINT" : signal_number == SIGTERM ? "SIGTERM" : "a signal";
}

// How long a rank waits for the others to join the process group.
constexpr std::chrono::milliseconds kJoinTimeout = std::chrono::minutes(5);

// Where an epoch's training stands, for a resumable checkpoint.
struct Position {
  int64_t epoch = 0;    ///< 0-based epoch to continue
  int64_t batch = 0;    ///< first batch of that epoch still to train
  double loss_sum = 0;  ///< of the epoch's batches so far
  int64_t correct = 0;  ///< right answers of the epoch so far
};

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
    dist_ = Distributed::from_environment(kJoinTimeout);
    Checkpoint checkpoint;
    nlohmann::json meta;
    const bool resuming = !requested_.resume_path.empty();
    const std::string source = resuming ? requested_.resume_path : requested_.load_path;
    if (!source.empty()) {
      checkpoint = read_checkpoint(source);
      if (!checkpoint.meta.empty()) meta = parse_meta(source, checkpoint.meta);
    }
    if (resuming && !(meta.contains("job") && meta.contains("resume") && checkpoint.training)) {
      throw std::runtime_error(source +
                               ": not a resumable checkpoint (those are written by --save-every "
                               "and when a run is interrupted); -p starts a new run from weights");
    }
    config_ = meta.is_null() ? requested_ : adopt_checkpoint(requested_, source, meta, resuming);
    if (dist_.world_size() > 1 && !config_.device.is_cpu()) {
      throw std::invalid_argument(
          "data-parallel runs train on CPUs over Gloo; a CUDA device with WORLD_SIZE > 1 is not "
          "supported");
    }
    share_among_ranks();
    torch::manual_seed(config_.seed);
    // Every input is read and every output path tried before any training.
    test_set_ = load_split(config_, data::Split::kTest, config_.test_limit);
    if (!config_.test_only) {
      train_set_ = load_split(config_, data::Split::kTrain, config_.train_limit);
    }
    check_writable();

    config_.model.in_channels(test_set_.channels());
    config_.model.num_classes(static_cast<int64_t>(test_set_.class_names.size()));
    model_ = models::ResNet(config_.model);
    if (!source.empty()) {
      load_state(*model_, checkpoint, source);
      spdlog::info("Loaded checkpoint {} ({}-layer {} ResNet)", source, config_.model.depth(),
                   model_name(config_.model));
    }
    model_->to(config_.device);
    dist_.broadcast_state(*model_);  // every rank starts from rank 0's weights
    classifier_ = Classifier{model_.ptr(), [model = model_](const torch::Tensor& x) mutable {
                               return model->forward(x);
                             }};
    // A CUDA device copies batches asynchronously from page-locked memory.
    test_loader_.emplace(
        test_set_, data::LoaderOptions(config_.batch_size).pin_memory(config_.device.is_cuda()));
    if (resuming) resume_from(checkpoint, meta);
    metrics_.emplace(config_.metrics_path, config_.metrics_csv_path, history_);

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
      save_checkpoint(result.checkpoint_path, *model_,
                      final_meta(result.test_accuracy, result.sparsity).dump());
      spdlog::info("Saved checkpoint {}", result.checkpoint_path);
    }
    if (!config_.export_pytorch_path.empty()) {
      write_pytorch_state_dict(config_.export_pytorch_path, *model_);
      spdlog::info("Exported the model as a PyTorch state dict to {}", config_.export_pytorch_path);
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
  // In a data-parallel run each rank evaluates every world_size-th batch and
  // the counts behind every figure are summed, so the report equals a single
  // process's evaluation of the same weights.
  Evaluation evaluate_split() {
    Evaluation e = evaluate(classifier_, *test_loader_, config_.device, config_.model.num_classes(),
                            dist_.rank(), dist_.world_size());
    if (dist_.world_size() == 1) return e;
    std::vector<int64_t> counts{e.images};
    for (const auto& row : e.confusion) counts.insert(counts.end(), row.begin(), row.end());
    for (const auto& layer : e.layers) {
      counts.push_back(layer.counts.num_out);
      counts.push_back(layer.counts.num_on);
    }
    torch::Tensor total = torch::tensor(counts, torch::kLong);
    dist_.sum(total);
    const auto* c = total.data_ptr<int64_t>();
    size_t i = 0;
    e.images = c[i++];
    e.correct = 0;
    for (size_t t = 0; t < e.confusion.size(); ++t) {
      e.class_total[t] = 0;
      for (auto& cell : e.confusion[t]) {
        cell = c[i++];
        e.class_total[t] += cell;
      }
      e.class_correct[t] = e.confusion[t][t];
      e.correct += e.class_correct[t];
    }
    for (auto& layer : e.layers) {
      layer.counts.num_out = c[i++];
      layer.counts.num_on = c[i++];
      layer.dense_macs_per_image = dist_.max(layer.dense_macs_per_image);
    }
    e.dense_macs = dist_.max(e.dense_macs);
    return e;
  }

  // Rank 0 writes and prints; the others train and evaluate their shares.
  void share_among_ranks() {
    if (dist_.world_size() == 1) return;
    if (config_.batch_size % dist_.world_size() != 0) {
      throw SettingError("batch_size",
                         "batch_size " + std::to_string(config_.batch_size) +
                             " is the global batch and must divide evenly among the " +
                             std::to_string(dist_.world_size()) + " processes");
    }
    if (dist_.is_main()) {
      spdlog::info("Data parallel over {} processes: each takes {} images of every batch of {}",
                   dist_.world_size(), config_.batch_size / dist_.world_size(), config_.batch_size);
      return;
    }
    config_.save = false;
    config_.save_every = 0;
    config_.metrics_path.clear();
    config_.metrics_csv_path.clear();
    config_.plot_path.clear();
    config_.export_pytorch_path.clear();
    config_.progress = ProgressStyle::kQuiet;
    spdlog::default_logger()->set_level(spdlog::level::warn);
    report_log().set_level(spdlog::level::warn);
  }

  // The ranks' parameters and buffers (BatchNorm statistics, masks, step
  // counts) must agree bit for bit after training: the model every rank
  // evaluated is the one rank 0 saves.
  void check_ranks_agree() const {
    if (dist_.world_size() == 1) return;
    int64_t checksum = 0;
    auto add = [&](const torch::Tensor& t) {
      const torch::Tensor bytes =
          t.detach().contiguous().reshape(-1).view(torch::kByte).to(torch::kLong);
      checksum += (bytes * torch::arange(1, bytes.numel() + 1, torch::kLong)).sum().item<int64_t>();
    };
    for (const auto& p : model_->parameters()) add(p);
    for (const auto& b : model_->buffers()) add(b);
    if (dist_.max(checksum) != -dist_.max(-checksum)) {
      throw std::runtime_error("the ranks' parameters or buffers differ after training (rank " +
                               std::to_string(dist_.rank()) + ")");
    }
    spdlog::info("Parameters and buffers identical on all {} ranks (checksum {})",
                 dist_.world_size(), checksum);
  }

  // A save that would fail must fail now, not after hours of training.
  void check_writable() const {
    if (config_.test_only || !dist_.is_main()) return;
    if (config_.save || config_.save_every > 0 || !config_.resume_path.empty()) {
      const std::string probe = (std::filesystem::path(config_.save_dir) / ".write-test").string();
      write_file_atomically(probe, "", "checkpoint directory's test file");
      std::filesystem::remove(probe);
    }
    if (!config_.plot_path.empty()) {
      const std::string plot_probe = config_.plot_path + ".write-test-" + std::to_string(getpid());
      write_file_atomically(plot_probe, "", "plot's test file");
      std::filesystem::remove(plot_probe);
    }
  }

  nlohmann::json describe() const {
    nlohmann::json meta;
    meta["program"] = config_.program;
    meta["model"] = nlohmann::json::parse(model_to_json(config_.model));
    meta["dataset"] = config_.dataset;
    meta["job"] = nlohmann::json::parse(job_to_json(config_));
    return meta;
  }

  nlohmann::json final_meta(double accuracy, double sparsity) const {
    nlohmann::json meta = describe();
    meta["epochs"] = config_.epochs;
    meta["test_accuracy"] = accuracy;
    meta["sparsity"] = sparsity;
    return meta;
  }

  // Writes the resumable checkpoint of `position`; returns its path.
  std::string save_resumable(torch::optim::SGD& optimizer, const Position& position) {
    nlohmann::json meta = describe();
    meta["epochs"] = position.epoch;
    meta["resume"] = {{"epoch", position.epoch},
                      {"batch", position.batch},
                      {"loss_sum", position.loss_sum},
                      {"correct", position.correct}};
    meta["history"] = metrics_->jsonl();
    TrainingState training;
    training.momentum = momentum_buffers(optimizer, *model_);
    {
      at::Generator generator = at::detail::getDefaultCPUGenerator();
      std::lock_guard<std::mutex> lock(generator.mutex());
      training.rng = generator.get_state();
    }
    const std::string path = resume_file(config_);
    save_checkpoint(path, *model_, meta.dump(), &training);
    return path;
  }

  void resume_from(const Checkpoint& checkpoint, const nlohmann::json& meta) {
    const nlohmann::json& at = meta.at("resume");
    start_.epoch = at.at("epoch").get<int64_t>();
    start_.batch = at.at("batch").get<int64_t>();
    start_.loss_sum = at.at("loss_sum").get<double>();
    start_.correct = at.at("correct").get<int64_t>();
    history_ = parse_metrics(meta.value("history", std::string()), config_.resume_path).epochs;
    resumed_momentum_ = checkpoint.training->momentum;
    if (checkpoint.training->rng.defined()) {
      at::Generator generator = at::detail::getDefaultCPUGenerator();
      std::lock_guard<std::mutex> lock(generator.mutex());
      generator.set_state(checkpoint.training->rng);
    }
    spdlog::info("Resuming {} from {}: epoch {} of {}, batch {}", config_.program,
                 config_.resume_path, start_.epoch + 1, config_.epochs, start_.batch + 1);
  }

  // The epoch's sums so far, over every rank.
  void sum_over_ranks(Position& position) const {
    torch::Tensor sums =
        torch::tensor({position.loss_sum, static_cast<double>(position.correct)}, torch::kDouble);
    dist_.sum(sums);
    position.loss_sum = sums[0].item<double>();
    position.correct = static_cast<int64_t>(sums[1].item<double>());
  }

  // Stops for a signal: saves where training stands and says how to go on.
  [[noreturn]] void stop(torch::optim::SGD& optimizer, Position position, int signal_number) {
    sum_over_ranks(position);
    if (!dist_.is_main()) throw Interrupted(signal_number);
    const std::string path = save_resumable(optimizer, position);
    spdlog::warn("{}: stopped by {} at epoch {}, batch {}; saved a resumable checkpoint to {}",
                 config_.program, signal_name(signal_number), position.epoch + 1, position.batch,
                 path);
    const std::string launcher =
        dist_.world_size() > 1 ? "scripts/launch.sh -n " + std::to_string(dist_.world_size()) + " "
                               : std::string();
    spdlog::warn("Resume with: {}{} --resume {}", launcher, config_.program, shell_word(path));
    throw Interrupted(signal_number);
  }

  // What went wrong with the loss or the parameters after a step ("" if nothing).
  // One synchronising read per step; the parameter is named only on failure.
  std::string nonfinite(double loss) const {
    if (!std::isfinite(loss)) return "the loss is " + std::to_string(loss);
    torch::NoGradGuard no_grad;
    const auto params = model_->named_parameters();
    std::vector<torch::Tensor> finite;
    finite.reserve(params.size());
    for (const auto& p : params) finite.push_back(torch::isfinite(p.value()).all());
    if (finite.empty() || torch::stack(finite).all().item<bool>()) return "";
    for (size_t i = 0; i < finite.size(); ++i) {
      if (!finite[i].item<bool>()) return "parameter " + params[i].key() + " is no longer finite";
    }
    return "";
  }

  // After every step, all ranks agree whether to go on: a non-finite loss or
  // parameter on any rank ends the run (the checkpoints saved so far stay as
  // they are), a signal to any rank stops it cleanly. Returns the signal.
  int after_step(int64_t epoch, int64_t batch, double loss) const {
    const std::string problem = nonfinite(loss);
    const int64_t verdict = dist_.max((problem.empty() ? 0 : 1000) + stop_signal());
    if (verdict >= 1000) {
      throw std::runtime_error("training diverged at epoch " + std::to_string(epoch + 1) +
                               " batch " + std::to_string(batch + 1) + ": " +
                               (problem.empty() ? "on another rank" : problem) +
                               " (try a lower learning rate); the last checkpoints are kept");
    }
    return static_cast<int>(verdict);
  }

  // Trains every epoch; returns the evaluation after the last one.
  Evaluation train() {
    data::BatchLoader loader(train_set_, data::LoaderOptions(config_.batch_size)
                                             .augment(true)
                                             .shuffle(true)
                                             .seed(config_.seed)
                                             .pin_memory(config_.device.is_cuda()));
    auto optimizer = make_sgd(*model_, config_.sgd);
    restore_momentum_buffers(*optimizer, *model_, resumed_momentum_);
    Progress progress(config_.progress, config_.log_every);
    spdlog::info("Training {} ({}-layer {}) on {} ({} images) for {} epochs, {} batches of {}",
                 config_.program, config_.model.depth(), model_name(config_.model), train_set_.name,
                 train_set_.size(), config_.epochs, loader.num_batches(), config_.batch_size);
    std::optional<Evaluation> latest;
    for (int64_t epoch = start_.epoch; epoch < config_.epochs; ++epoch) {
      EpochRecord record;
      record.epoch = epoch + 1;
      record.lr = scheduled_lr(config_.sgd.lr, config_.milestones, epoch);
      set_lr(*optimizer, record.lr);
      spdlog::info("Epoch {}/{}: learning rate {:g}", epoch + 1, config_.epochs, record.lr);
      loader.start_epoch(epoch);
      progress.start_epoch(epoch, config_.epochs, loader.num_batches());
      const auto start = Clock::now();
      Position position{epoch, 0, 0, 0};
      if (epoch == start_.epoch) {
        position = start_;
        if (!dist_.is_main()) {  // the saved sums are the whole run's: counted once, on rank 0
          position.loss_sum = 0;
          position.correct = 0;
        }
      }
      for (int64_t b = position.batch; b < loader.num_batches(); ++b) {
        const data::Batch batch = loader.batch(b, dist_.rank(), dist_.world_size());
        // This rank's share of the whole batch weighs its gradient.
        const double whole = static_cast<double>(
            std::min(config_.batch_size, train_set_.size() - b * config_.batch_size));
        const double share = static_cast<double>(batch.labels.size(0)) / whole;
        dist_.broadcast_buffers(*model_);
        std::optional<layers::SyncBatchNormGuard> sync_bn;
        if (config_.sync_bn && dist_.world_size() > 1) {
          sync_bn.emplace([this](torch::Tensor& t) { dist_.sum(t); }, share);
        }
        const StepResult step =
            train_step(classifier_, *optimizer, config_.gating_loss,
                       batch.images.to(config_.device, /*non_blocking=*/true),
                       batch.labels.to(config_.device, /*non_blocking=*/true),
                       [&](torch::nn::Module& m) { dist_.average_gradients(m, share); });
        const double loss = step.ce_loss + step.gating_loss;
        const int signal_number = after_step(epoch, b, loss);
        position.batch = b + 1;
        // The whole batch's loss is the sum of the ranks' contributions.
        position.loss_sum += step.ce_loss * share + step.gating_loss / dist_.world_size();
        position.correct += step.correct;
        progress.batch(b, loss, step.correct, batch.labels.size(0));
        if (signal_number != 0) {
          progress.end_epoch();
          stop(*optimizer, position, signal_number);
        }
      }
      // The epoch's model is rank 0's, buffers included (each rank's last
      // step left its own batch statistics): every rank evaluates, and rank
      // 0 saves, the same model.
      dist_.broadcast_buffers(*model_);
      sum_over_ranks(position);
      progress.end_epoch();
      record.seconds = seconds_since(start);
      record.images_per_second = train_set_.size() / record.seconds;
      record.train_loss = position.loss_sum / loader.num_batches();
      record.train_accuracy = 100.0 * position.correct / train_set_.size();
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
      if (config_.save_every > 0 && (epoch + 1) % config_.save_every == 0) {
        const std::string path = save_resumable(*optimizer, Position{epoch + 1, 0, 0, 0});
        spdlog::info("Saved resumable checkpoint {} (epoch {})", path, epoch + 1);
      }
      if (const int signal_number = static_cast<int>(dist_.max(stop_signal()));
          signal_number != 0 && !last) {
        stop(*optimizer, Position{epoch + 1, 0, 0, 0}, signal_number);
      }
    }
    if (!latest) latest = evaluate_split();  // resumed after the last epoch's training
    check_ranks_agree();
    return *latest;
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
  data::ImageSet test_set_, train_set_;
  models::ResNet model_{nullptr};
  Classifier classifier_;
  std::optional<data::BatchLoader> test_loader_;
  std::optional<MetricsWriter> metrics_;
  std::vector<EpochRecord> history_;
  Position start_;
  Distributed dist_;
  std::map<std::string, torch::Tensor> resumed_momentum_;
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

std::string resume_file(const JobConfig& config) {
  return (std::filesystem::path(config.save_dir) /
          ("resume_resnet-" + std::to_string(config.model.depth()) + ".pt"))
      .string();
}

JobResult run_job(const JobConfig& config) { return Job(config).run(); }

}  // namespace dnn_gating::train
