#pragma once
/// One optimisation step and one evaluation pass of a classifier.

#include <torch/torch.h>

#include <functional>
#include <string>
#include <vector>

#include "dnn_gating/data/batches.h"
#include "dnn_gating/job/evaluation.h"
#include "dnn_gating/layers/gated_layer.h"
#include "dnn_gating/layers/gating_loss.h"

namespace dnn_gating::train {

/// The model as the loop sees it: its module tree and its forward function.
struct Classifier {
  std::shared_ptr<torch::nn::Module> module;
  std::function<torch::Tensor(const torch::Tensor&)> forward;
};

/// What one training step computed.
struct StepResult {
  torch::Tensor logits;  ///< training-mode logits (detached)
  double ce_loss = 0;    ///< the task loss: cross entropy, or the distillation loss
  double gating_loss = 0;
  int64_t correct = 0;
};

/// Called between the backward pass and the optimiser step (data-parallel
/// training averages the gradients over its processes there).
using GradientHook = std::function<void(torch::nn::Module&)>;

/// The classification loss of a step from its training-mode logits, images
/// and labels (default: cross entropy; distillation: train/distillation.h).
using TaskLoss = std::function<torch::Tensor(
    const torch::Tensor& logits, const torch::Tensor& images, const torch::Tensor& labels)>;

/// Forward in training mode, task loss (cross entropy unless `task_loss`) +
/// gating loss, backward, optimiser step.
StepResult train_step(const Classifier& model, torch::optim::Optimizer& optimizer,
                      const layers::GatingLoss& gating_loss, const torch::Tensor& images,
                      const torch::Tensor& labels, const GradientHook& before_step = nullptr,
                      const TaskLoss& task_loss = nullptr);

/// Called after each evaluated batch with the index of its first image in
/// the split, its labels and the predicted classes (both int64 [B], on the
/// model's device); the gated layers still hold that batch's decisions.
using BatchObserver = std::function<void(int64_t first_image, const torch::Tensor& labels,
                                         const torch::Tensor& predicted)>;

/// Evaluates in eval mode without gradients over every batch of `loader`;
/// gate counters are reset first, so the counts cover exactly this split.
/// With `parts` > 1 only the batches b with b % parts == part are evaluated
/// (one process's share of a data-parallel evaluation; whole batches, so
/// that per-batch quantization scales stay those of a single process).
/// `observe`, where set, sees every evaluated batch.
Evaluation evaluate(const Classifier& model, const data::Batches& loader,
                    const torch::Device& device, int64_t num_classes, int64_t part = 0,
                    int64_t parts = 1, const BatchObserver& observe = nullptr);

}  // namespace dnn_gating::train
