#pragma once
/// SGD set-up of the two trainers and the step-wise learning-rate schedule.

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "dnn_gating/job/config.h"

namespace dnn_gating::train {

/// SGD over the trainable parameters of `model` (buffers such as CG's `mask`
/// are never included), grouped as `settings` says.
std::unique_ptr<torch::optim::SGD> make_sgd(torch::nn::Module& model, const SgdSettings& settings);

/// The SGD momentum buffers of `model`'s parameters, by parameter name
/// (parameters without one yet, before their first step, are absent).
std::map<std::string, torch::Tensor> momentum_buffers(torch::optim::SGD& optimizer,
                                                      torch::nn::Module& model);

/// Puts momentum buffers saved by momentum_buffers back; throws naming a key
/// that is not a parameter of `model` or whose shape differs.
void restore_momentum_buffers(torch::optim::SGD& optimizer, torch::nn::Module& model,
                              const std::map<std::string, torch::Tensor>& buffers);

/// Learning rate of epoch `epoch` (0-based): base * gamma^(milestones passed).
double scheduled_lr(double base_lr, const std::vector<int64_t>& milestones, int64_t epoch,
                    double gamma = 0.1);

/// Sets every parameter group's learning rate.
void set_lr(torch::optim::SGD& optimizer, double lr);

}  // namespace dnn_gating::train
