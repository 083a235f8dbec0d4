#include "dnn_gating/train/trainer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <memory>
#include <optional>

#include "dnn_gating/data/image_set.h"
#include "dnn_gating/data/loader.h"
#include "dnn_gating/io/atomic_file.h"
#include "dnn_gating/io/checkpoint.h"
#include "dnn_gating/io/float_weights.h"
#include "dnn_gating/io/job_checkpoint.h"
#include "dnn_gating/io/pytorch_state_dict.h"
#include "dnn_gating/layers/batch_norm.h"
#include "dnn_gating/models/torchvision.h"
#include "dnn_gating/report/log.h"
#include "dnn_gating/report/metrics.h"
#include "dnn_gating/report/plot.h"
#include "dnn_gating/report/progress.h"
#include "dnn_gating/report/report.h"
#include "dnn_gating/setting_error.h"
#include "dnn_gating/train/distillation.h"
#include "dnn_gating/train/distributed.h"
#include "dnn_gating/train/distributed_job.h"
#include "dnn_gating/train/gate_maps.h"
#include "dnn_gating/train/gate_recorder.h"
#include "dnn_gating/train/interrupt.h"
#include "dnn_gating/train/optimizer.h"
#include "dnn_gating/train/step.h"
#include "dnn_gating/train/timing.h"
#include "train/splits.h"

namespace dnn_gating::train {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
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

// Fills the --timing figures of the final record.
void set_timing_figures(FinalRecord& record, const GatingTiming& timing, const CostFigures& costs) {
  record.timing_gated_images_per_second = timing.gated_images_per_second();
  if (!timing.has_gates) return;
  record.timing_dense_images_per_second = timing.dense_images_per_second();
  record.timing_time_ratio = timing.time_ratio();
  record.timing_mac_fraction = costs.mac_fraction();
  record.timing_realisation = timing.realisation(costs.mac_fraction());
}

// torch's CPU generator state, and putting one back.
torch::Tensor cpu_generator_state() {
  at::Generator generator = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(generator.mutex());
  return generator.get_state();
}

void set_cpu_generator_state(const torch::Tensor& state) {
  at::Generator generator = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(generator.mutex());
  generator.set_state(state);
}

// What the epochs of one training share.
struct Training {
  std::unique_ptr<data::Batches> loader;
  std::unique_ptr<torch::optim::SGD> optimizer;
  Progress progress;
};

// Everything a job holds while it runs.
class Job {
 public:
  explicit Job(const JobConfig& requested) : requested_(requested) {}

  JobResult run() {
    prepare();
    std::optional<GateRecorder> recorder;
    BatchObserver observe;
    if (!config_.maps_dir.empty()) {
      recorder.emplace(*model_, *test_set_.images, map_indices_);
      observe = [&recorder](int64_t first, const torch::Tensor& labels,
                            const torch::Tensor& predicted) {
        recorder->observe(first, labels, predicted);
      };
    }
    // Training ends with an evaluation of the final model; reuse it.
    const Evaluation evaluation = config_.test_only ? evaluate_split(observe) : train();
    JobResult result = finish(evaluation);
    if (recorder) {
      log_lines(report_log(), write_gate_maps(config_.maps_dir, *recorder, evaluation,
                                              *test_set_.images, model_title()));
    }
    return result;
  }

 private:
  // ---- before the first step: every input read, every output path tried ----

  void prepare() {
    dist_ = Distributed::from_environment(kJoinTimeout);
    JobStart start = open_job_checkpoint(requested_);
    config_ = for_this_rank(dist_, start.config);
    torch::manual_seed(config_.seed);
    test_set_ = load_split(config_, data::Split::kTest, config_.test_limit);
    if (!config_.test_only) {
      train_set_ = load_split(config_, data::Split::kTrain, config_.train_limit);
      check_last_batch(dist_, train_set_.size, config_.batch_size);
      check_same_classes(train_set_, test_set_);
    }
    check_writable();
    build_model(start);
    if (!config_.maps_dir.empty()) prepare_maps();
    if (config_.timing && dist_.world_size() > 1) {
      throw SettingError("timing",
                         "{timing} times one process's evaluation: run -t without "
                         "scripts/launch.sh");
    }
    // A CUDA device copies batches asynchronously from page-locked memory.
    test_loader_ =
        make_batches(config_, test_set_,
                     data::LoaderOptions(config_.batch_size).pin_memory(config_.device.is_cuda()),
                     dist_.world_size());
    if (start.resume) resume_from(start);
    metrics_.emplace(config_.metrics_path, config_.metrics_csv_path, history_);
  }

  // --maps: one process's evaluation of a gated model, into a directory
  // made now; the chosen images exist.
  void prepare_maps() {
    if (dist_.world_size() > 1) {
      throw SettingError("maps",
                         "{maps} draws from one process's evaluation: run -t without "
                         "scripts/launch.sh");
    }
    if (layers::gated_layers(*model_).empty()) {
      throw SettingError("maps", "{maps}: the model of " + config_.load_path +
                                     " has no gated layers, so there is nothing to draw");
    }
    if (!test_set_.images) {
      throw SettingError("maps", "{maps} draws the images of CIFAR-10 and Fashion-MNIST; " +
                                     test_set_.name + " is not drawn");
    }
    map_indices_ = map_image_indices(config_, test_set_.size);
    std::error_code error;
    std::filesystem::create_directories(config_.maps_dir, error);
    if (error || !std::filesystem::is_directory(config_.maps_dir)) {
      throw std::runtime_error(config_.maps_dir + ": cannot make the --maps directory (" +
                               (error ? error.message() : std::string("not a directory")) + ")");
    }
  }

  std::string model_title() const {
    return config_.program + ": " + model_name(config_.model) + " " +
           models::network_title(config_.model);
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

  // An image folder's val/ must name the classes of its train/, in order.
  static void check_same_classes(const SplitData& train, const SplitData& test) {
    const auto& a = train.class_names;
    const auto& b = test.class_names;
    if (a == b) return;
    size_t i = 0;
    while (i < a.size() && i < b.size() && a[i] == b[i]) ++i;
    const auto name = [i](const std::vector<std::string>& names) {
      return i < names.size() ? "'" + names[i] + "'" : std::string("none");
    };
    throw std::runtime_error(test.name + ": its classes are not those of " + train.name +
                             " (class " + std::to_string(i + 1) + ": " + name(b) + " vs " +
                             name(a) + ")");
  }

  // The model of the job's data, with the weights of its checkpoint if it
  // has one, the same on every rank.
  void build_model(const JobStart& start) {
    config_.model.in_channels(test_set_.channels);
    config_.model.num_classes(static_cast<int64_t>(test_set_.class_names.size()));
    models::Model model = models::make_model(config_.model);
    model_ = model.module;
    if (!start.path.empty() && start.checkpoint.meta.empty() && !start.resume &&
        !config_.test_only && config_.model.arch() != models::Arch::kResNet) {
      // A state dict of float weights in torchvision's names: what the
      // model shares with it, and the list of what it does not.
      log_lines(*spdlog::default_logger(),
                float_import_lines(
                    import_float_weights(*model_, start.checkpoint.state, start.path), start.path));
    } else if (!start.path.empty()) {
      load_state(*model_, start.checkpoint, start.path);
      spdlog::info("Loaded checkpoint {} ({} {})", start.path, model_name(config_.model),
                   models::network_title(config_.model));
    }
    model_->to(config_.device);
    dist_.broadcast_state(*model_);  // every rank starts from rank 0's weights
    classifier_ = Classifier{model.module, model.forward};
    const Distillation& kd = config_.distillation;
    for (const char* setting : {"teacher_arch", "kd_temperature", "kd_alpha"}) {
      check_setting(!kd.teacher.empty() || config_.explicit_settings.count(setting) == 0, setting,
                    std::string("{") + setting +
                        "} sets the distillation from a {teacher}: give "
                        "one, or leave it out");
    }
    if (!kd.teacher.empty()) {
      check_setting(kd.temperature > 0, "kd_temperature",
                    "{kd_temperature} must be positive, got " + std::to_string(kd.temperature));
      check_setting(kd.alpha >= 0 && kd.alpha <= 1, "kd_alpha",
                    "{kd_alpha} must be from 0 to 1, got " + std::to_string(kd.alpha));
      check_setting(!config_.test_only, "teacher",
                    "{teacher} distils while training: with -t there is nothing to train");
      teacher_ = load_teacher(kd, config_.model, config_.device);
      task_loss_ = distillation_task_loss(*teacher_, kd.temperature, kd.alpha);
    }
  }

  // The teacher's own figure, so that a user sees what the student learns from.
  void describe_teacher() {
    if (!teacher_) return;
    Evaluation e = evaluate(teacher_->model, *test_loader_, config_.device,
                            config_.model.num_classes(), dist_.rank(), dist_.world_size());
    sum_over_ranks(dist_, e);
    spdlog::info("Distilling from {} ({} {}, test accuracy {:.2f} %): temperature {}, alpha {}",
                 config_.distillation.teacher, model_name(teacher_->options),
                 models::network_title(teacher_->options),
                 e.images == 0
                     ? 0.0
                     : 100.0 * static_cast<double>(e.correct) / static_cast<double>(e.images),
                 config_.distillation.temperature, config_.distillation.alpha);
  }

  void resume_from(const JobStart& start) {
    start_ = *start.resume;
    history_ = parse_metrics(start.history, config_.resume_path).epochs;
    resumed_momentum_ = start.checkpoint.training->momentum;
    if (start.checkpoint.training->rng.defined()) {
      set_cpu_generator_state(start.checkpoint.training->rng);
    }
    spdlog::info("Resuming {} from {}: epoch {} of {}, batch {}", config_.program,
                 config_.resume_path, start_.epoch + 1, config_.epochs, start_.batch + 1);
  }

  // ---- training: for each epoch, train it, test, save ----

  // Trains every epoch; returns the evaluation after the last one.
  Evaluation train() {
    Training training = start_training();
    describe_teacher();
    std::optional<Evaluation> latest;
    for (int64_t epoch = start_.epoch; epoch < config_.epochs; ++epoch) {
      EpochRecord record = train_epoch(training, epoch);
      if (tests_after(epoch)) latest = test(record);
      save(training, record);
    }
    if (!latest) latest = evaluate_split();  // resumed after the last epoch's training
    check_ranks_agree(dist_, *model_);
    return *latest;
  }

  Training start_training() {
    Training training{make_batches(config_, train_set_,
                                   data::LoaderOptions(config_.batch_size)
                                       .augment(true)
                                       .shuffle(true)
                                       .seed(config_.seed)
                                       .pin_memory(config_.device.is_cuda()),
                                   dist_.world_size()),
                      make_sgd(*model_, config_.sgd),
                      Progress(config_.progress, config_.log_every)};
    restore_momentum_buffers(*training.optimizer, *model_, resumed_momentum_);
    spdlog::info("Training {} ({} {}) on {} ({} images) for {} epochs, {} batches of {}",
                 config_.program, model_name(config_.model), models::network_title(config_.model),
                 train_set_.name, train_set_.size, config_.epochs, training.loader->num_batches(),
                 config_.batch_size);
    return training;
  }

  // One pass over the training split; returns the epoch's record so far
  // (its test figures are added by test()).
  EpochRecord train_epoch(Training& t, int64_t epoch) {
    EpochRecord record;
    record.epoch = epoch + 1;
    record.lr = scheduled_lr(config_.sgd.lr, config_.milestones, epoch);
    set_lr(*t.optimizer, record.lr);
    spdlog::info("Epoch {}/{}: learning rate {:g}", epoch + 1, config_.epochs, record.lr);
    t.loader->start_epoch(epoch);
    t.progress.start_epoch(epoch, config_.epochs, t.loader->num_batches());
    const auto start = Clock::now();
    ResumePoint position = first_position(epoch);
    for (int64_t b = position.batch; b < t.loader->num_batches(); ++b) train_batch(t, position, b);
    // The epoch's model is rank 0's, buffers included (each rank's last step
    // left its own batch statistics): every rank evaluates, and rank 0
    // saves, the same model.
    dist_.broadcast_buffers(*model_);
    sum_over_ranks(dist_, position);
    t.progress.end_epoch();
    record.seconds = seconds_since(start);
    record.images_per_second = train_set_.size / record.seconds;
    record.train_loss = position.loss_sum / t.loader->num_batches();
    record.train_accuracy = 100.0 * position.correct / train_set_.size;
    spdlog::info("Epoch {} took {:.1f} s ({:.0f} images/s), train loss {:.3f}, train acc {:.1f} %",
                 epoch + 1, record.seconds, record.images_per_second, record.train_loss,
                 record.train_accuracy);
    return record;
  }

  // Where an epoch's training starts: at its first batch, or where the
  // resumed run stopped.
  ResumePoint first_position(int64_t epoch) const {
    if (epoch != start_.epoch) return ResumePoint{epoch, 0, 0, 0};
    ResumePoint position = start_;
    if (!dist_.is_main()) {  // the saved sums are the whole run's: counted once, on rank 0
      position.loss_sum = 0;
      position.correct = 0;
    }
    return position;
  }

  // One step on this rank's share of batch `b`; stops for a signal.
  void train_batch(Training& t, ResumePoint& position, int64_t b) {
    const data::Batch batch = t.loader->batch(b, dist_.rank(), dist_.world_size());
    // This rank's share of the whole batch weighs its gradient.
    const double whole =
        static_cast<double>(std::min(config_.batch_size, train_set_.size - b * config_.batch_size));
    const double share = static_cast<double>(batch.labels.size(0)) / whole;
    dist_.broadcast_buffers(*model_);
    std::optional<layers::SyncBatchNormGuard> sync_bn;
    if (config_.sync_bn && dist_.world_size() > 1) {
      sync_bn.emplace([this](torch::Tensor& t) { dist_.sum(t); }, share);
    }
    const StepResult step = train_step(
        classifier_, *t.optimizer, config_.gating_loss,
        batch.images.to(config_.device, /*non_blocking=*/true),
        batch.labels.to(config_.device, /*non_blocking=*/true),
        [&](torch::nn::Module& m) { dist_.average_gradients(m, share); }, task_loss_);
    const double loss = step.ce_loss + step.gating_loss;
    const int signal_number = after_step(position.epoch, b, loss);
    position.batch = b + 1;
    // The whole batch's loss is the sum of the ranks' contributions.
    position.loss_sum += step.ce_loss * share + step.gating_loss / dist_.world_size();
    position.correct += step.correct;
    t.progress.batch(b, loss, step.correct, batch.labels.size(0));
    if (signal_number != 0) {
      t.progress.end_epoch();
      stop(*t.optimizer, position, signal_number);
    }
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

  // Test accuracy is measured every eval_every epochs and after the last.
  bool tests_after(int64_t epoch) const {
    return (epoch + 1) % config_.eval_every == 0 || last_epoch(epoch);
  }
  bool last_epoch(int64_t epoch) const { return epoch + 1 == config_.epochs; }

  // Evaluates the test split into `record`; the final report shows the last
  // epoch's figures, the others are logged here.
  Evaluation test(EpochRecord& record) {
    Evaluation evaluation = evaluate_split();
    const CostFigures costs = cost_figures(evaluation);
    record.test_accuracy = evaluation.accuracy();
    record.sparsity = evaluation.sparsity();
    record.layer_on_fraction = on_fractions(evaluation);
    set_cost_figures(record, costs);
    if (!last_epoch(record.epoch - 1)) {
      spdlog::info("Epoch {}: test accuracy {:.1f} %, sparsity {:.1f} %", record.epoch,
                   *record.test_accuracy, *record.sparsity);
      log_lines(*spdlog::default_logger(), gate_report_lines(evaluation, costs));
    }
    return evaluation;
  }

  // The whole test split over every rank: each evaluates its share.
  Evaluation evaluate_split(const BatchObserver& observe = nullptr) {
    Evaluation e = evaluate(classifier_, *test_loader_, config_.device, config_.model.num_classes(),
                            dist_.rank(), dist_.world_size(), observe);
    sum_over_ranks(dist_, e);
    return e;
  }

  // Records the epoch, writes the resumable checkpoint when one is due, and
  // stops there if a signal asked to.
  void save(Training& t, const EpochRecord& record) {
    metrics_->write_epoch(record);
    history_.push_back(record);
    const int64_t done = record.epoch;  // epochs trained so far
    if (config_.save_every > 0 && done % config_.save_every == 0) {
      const std::string path = save_resumable(*t.optimizer, ResumePoint{done, 0, 0, 0});
      spdlog::info("Saved resumable checkpoint {} (epoch {})", path, done);
    }
    if (const int signal_number = static_cast<int>(dist_.max(stop_signal()));
        signal_number != 0 && done != config_.epochs) {
      stop(*t.optimizer, ResumePoint{done, 0, 0, 0}, signal_number);
    }
  }

  // Writes the resumable checkpoint of `position`; returns its path.
  std::string save_resumable(torch::optim::SGD& optimizer, const ResumePoint& position) {
    TrainingState training;
    training.momentum = momentum_buffers(optimizer, *model_);
    training.rng = cpu_generator_state();
    const std::string path = resume_file(config_);
    save_checkpoint(path, *model_, resume_description(config_, position, metrics_->jsonl()),
                    &training);
    return path;
  }

  // Stops for a signal: saves where training stands and says how to go on.
  [[noreturn]] void stop(torch::optim::SGD& optimizer, ResumePoint position, int signal_number) {
    sum_over_ranks(dist_, position);
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

  // ---- after the last evaluation: the report and the outputs ----

  JobResult finish(const Evaluation& evaluation) {
    const CostFigures costs = cost_figures(evaluation);
    log_lines(report_log(), accuracy_lines(evaluation, test_set_.class_names));
    log_lines(report_log(), gate_report_lines(evaluation, costs));
    std::optional<GatingTiming> timing;
    if (config_.timing) {
      timing = time_gating(classifier_, *test_loader_, config_.device, config_.model.num_classes());
      log_lines(report_log(), timing_lines(*timing, costs));
    }
    JobResult result;
    result.test_accuracy = evaluation.accuracy();
    result.sparsity = evaluation.sparsity();
    if (!config_.test_only && config_.save) {
      result.checkpoint_path = checkpoint_file(config_);
      save_checkpoint(result.checkpoint_path, *model_,
                      final_description(config_, result.test_accuracy, result.sparsity));
      spdlog::info("Saved checkpoint {}", result.checkpoint_path);
    }
    if (!config_.export_pytorch_path.empty()) {
      write_pytorch_state_dict(config_.export_pytorch_path, *model_);
      spdlog::info("Exported the model as a PyTorch state dict to {}", config_.export_pytorch_path);
    }
    write_final_record(evaluation, costs, result.checkpoint_path, timing);
    if (!config_.plot_path.empty() && !history_.empty()) {
      write_training_plot(history_, config_.plot_path, model_title());
      spdlog::info("Wrote training curves to {}", config_.plot_path);
    }
    return result;
  }

  void write_final_record(const Evaluation& evaluation, const CostFigures& costs,
                          const std::string& checkpoint,
                          const std::optional<GatingTiming>& timing) {
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
    if (timing) set_timing_figures(final_record, *timing, costs);
    metrics_->write_final(final_record);
  }

  const JobConfig& requested_;
  JobConfig config_;
  SplitData test_set_, train_set_;
  std::shared_ptr<torch::nn::Module> model_;
  Classifier classifier_;
  std::optional<Teacher> teacher_;  // --teacher
  TaskLoss task_loss_;              // cross entropy unless distilling
  std::unique_ptr<data::Batches> test_loader_;
  std::optional<MetricsWriter> metrics_;
  std::vector<EpochRecord> history_;
  ResumePoint start_;
  Distributed dist_;
  std::map<std::string, torch::Tensor> resumed_momentum_;
  std::vector<int64_t> map_indices_;
};

}  // namespace

JobResult run_job(const JobConfig& config) { return Job(config).run(); }

}  // namespace dnn_gating::train
