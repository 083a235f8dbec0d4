#pragma once
/// Checkpoints: the model's state dict under the original's keys plus a JSON
/// description of the model and the training state.
///
/// The file is a pickled dict {"state_dict": {key: tensor}, "meta": json}
/// (resumable ones add "momentum": {key: tensor} and "rng": tensor) that
/// Python reads with `torch.load`. A plain {key: tensor} dict (as older
/// checkpoints are) loads too, with empty metadata.

#include <torch/torch.h>

#include <map>
#include <optional>
#include <string>

namespace dnn_gating::train {

/// What a resumable checkpoint holds besides the model: the optimiser's
/// momentum buffers and the random generator's state.
struct TrainingState {
  /// Parameter name -> SGD momentum buffer.
  std::map<std::string, torch::Tensor> momentum;
  /// torch's CPU generator state (a byte tensor).
  torch::Tensor rng;
};

/// A checkpoint read back from disk.
struct Checkpoint {
  std::map<std::string, torch::Tensor> state;
  /// JSON text of the model configuration and training state ("" if absent).
  std::string meta;
  /// Present in resumable checkpoints.
  std::optional<TrainingState> training;
};

/// Writes `model`'s parameters and buffers, `meta` and (for a resumable
/// checkpoint) `training` to `path` with write_file_atomically, so an
/// existing good checkpoint is never left half-written.
void save_checkpoint(const std::string& path, torch::nn::Module& model, const std::string& meta,
                     const TrainingState* training = nullptr);

/// Reads a checkpoint; the error names the file and what is wrong with it.
Checkpoint read_checkpoint(const std::string& path);

/// Copies a checkpoint's tensors into `model`. Every key of the model must be
/// present with the same shape and no other key may appear; the error names
/// the file and the first few offending keys.
void load_state(torch::nn::Module& model, const Checkpoint& checkpoint, const std::string& path);

}  // namespace dnn_gating::train
