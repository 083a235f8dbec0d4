#pragma once
/// A job's settings: everything the trainers' flags decide, as the runner,
/// the checkpoint files and the reports all read them.

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "dnn_gating/layers/gating_loss.h"
#include "dnn_gating/models/resnet.h"

namespace dnn_gating::train {

/// SGD settings.
struct SgdSettings {
  double lr = 0.1;
  double momentum = 0.9;
  double weight_decay = 1e-4;
  /// CG trainer: no weight decay for the gated layers' thresholds and 1-D
  /// parameters (the PG trainer decays every parameter).
  bool exempt_thresholds_and_1d = false;
};

/// Knowledge distillation from a teacher's soft targets (Hinton et al.):
/// the classification loss becomes alpha * T^2 * KL(teacher || student at
/// temperature T) + (1 - alpha) * cross-entropy.
struct Distillation {
  /// The teacher: a checkpoint of ours or a PyTorch state dict ("" for none).
  std::string teacher;
  /// The network of a teacher given as a plain state dict, float ("resnet20",
  /// "resnet18", "vgg16"; "" for the student's).
  std::string teacher_arch;
  /// T.
  double temperature = 4.0;
  /// alpha.
  double alpha = 0.9;
};

/// How progress is shown.
enum class ProgressStyle {
  kAuto,      ///< kLive on a terminal, else kPeriodic
  kLive,      ///< one line rewritten in place: batch k/n, loss, accuracy, images/s, ETA
  kPeriodic,  ///< `[epoch, batch] loss: ... | train acc: ... | ... s/batch` every N batches
  kQuiet,     ///< nothing
};

/// Everything a job needs, independent of how it was asked for.
struct JobConfig {
  /// Program name for messages and checkpoints ("pg-cifar10", "cg-cifar10").
  std::string program;
  models::ResNetOptions model;
  SgdSettings sgd;
  Distillation distillation;
  layers::GatingLoss gating_loss;
  int64_t epochs = 200;
  /// Epochs (0-based) at whose start the learning rate drops 10x.
  std::vector<int64_t> milestones;
  int64_t batch_size = 128;
  /// In a data-parallel run, BatchNorm statistics over the whole (global)
  /// batch, as torch.nn.SyncBatchNorm (`--sync-bn`); otherwise each process
  /// normalises by its own shard's, and rank 0's running statistics are the
  /// model's, as DistributedDataParallel does.
  bool sync_bn = false;
  uint64_t seed = 0;
  /// "cifar10", "fashion-mnist" or "imagefolder", read from `data_dir`.
  std::string dataset = "cifar10";
  /// "" for the dataset's default directory (see default_data_dir; an image
  /// folder has none).
  std::string data_dir;
  /// Use only N images of a split (0: all): the first N, or of an image
  /// folder N spread over its classes.
  int64_t train_limit = 0;
  int64_t test_limit = 0;
  /// Image folders: side of the square images (0: 224).
  int64_t image_size = 0;
  /// Image folders: "refuse" (a file that fails to decode stops the run) or
  /// "skip" (it is named and replaced by the next image).
  std::string bad_images = "refuse";
  /// Image folders: threads decoding images (0: one per core).
  int64_t loader_threads = 0;
  /// Evaluate only (`-t`).
  bool test_only = false;
  /// Checkpoint to start from or to evaluate (`-p`), "" for none.
  std::string load_path;
  /// Save a checkpoint at the end of training (`-s`) into `save_dir`.
  bool save = false;
  std::string save_dir = "save_CIFAR10_model";
  /// Write a resumable checkpoint (resume_file) every this many epochs; 0: only
  /// when interrupted.
  int64_t save_every = 0;
  /// Continue the run a resumable checkpoint describes ("" for a new run).
  std::string resume_path;
  /// Also write the final model as a state dict file that Python's
  /// torch.load reads (`--export-pytorch`), "" for none.
  std::string export_pytorch_path;
  torch::Device device = torch::kCPU;
  /// Test accuracy is reported every this many epochs.
  int64_t eval_every = 10;
  /// A progress line every this many batches (periodic style).
  int64_t log_every = 50;
  /// Live line, periodic lines, or quiet (then only the final report).
  ProgressStyle progress = ProgressStyle::kAuto;
  /// JSON-lines metrics file (`--metrics`), "" for none.
  std::string metrics_path;
  /// CSV of the per-epoch scalars (`--metrics-csv`), "" for none.
  std::string metrics_csv_path;
  /// SVG training curves written at the end (`--plot`), "" for none.
  std::string plot_path;
  /// Where a `-t` evaluation writes its gate maps and per-image costs
  /// (`--maps`), "" for none.
  std::string maps_dir;
  /// The test images whose maps are drawn (`--map-images 3,17,256`); empty:
  /// the first map_image_count (`--map-images N`).
  std::vector<int64_t> map_images;
  int64_t map_image_count = 8;
  /// With `test_only`: time the evaluation as the model is and with every
  /// gated layer computing every output, and report the saving (`--timing`).
  bool timing = false;
  /// Settings given explicitly on the command line: setting name (a
  /// ResNetOptions field as in model_to_json, or a job setting as in
  /// job_to_json) -> the flag that set it. A checkpoint that describes its
  /// model (and, when resuming, its job) overrides every other setting; an
  /// explicit one that contradicts it is refused.
  std::map<std::string, std::string> explicit_settings;
};

/// Where a dataset is read from when --data-dir is not given.
std::string default_data_dir(const std::string& dataset);

}  // namespace dnn_gating::train
