#pragma once
/// BatchNorm whose batch statistics may span the processes of a
/// data-parallel run, as torch.nn.SyncBatchNorm: every BatchNorm of the
/// library's models and gated layers normalises through `batch_norm`, so a
/// training step inside a SyncBatchNormGuard normalises each process's shard
/// by the mean and variance of the whole (global) batch and updates the
/// running statistics with them.

#include <torch/torch.h>

#include <functional>

namespace dnn_gating::layers {

/// Sums a tensor over the processes of a run, in place, on every process.
using ProcessSum = std::function<void(torch::Tensor&)>;

/// While alive, BatchNorm layers in training mode that normalise through
/// `batch_norm` on this thread take their statistics over every process,
/// summed with `sum`. `loss_share` is the weight of this process's loss in
/// the whole batch's loss (its share of the batch, when each process's loss
/// is the mean over its own images): the backward pass uses it to give each
/// process the gradient of its own loss, which the run then weighs by the
/// same share when it sums the gradients. The backward pass uses the `sum`
/// of the forward pass that it differentiates, guard or not.
class SyncBatchNormGuard {
 public:
  SyncBatchNormGuard(ProcessSum sum, double loss_share);
  ~SyncBatchNormGuard();
  SyncBatchNormGuard(const SyncBatchNormGuard&) = delete;
  SyncBatchNormGuard& operator=(const SyncBatchNormGuard&) = delete;

  /// The innermost guard alive on this thread, or nullptr.
  static const SyncBatchNormGuard* active();
  const ProcessSum& sum() const { return sum_; }
  double loss_share() const { return loss_share_; }

 private:
  ProcessSum sum_;
  double loss_share_;
  const SyncBatchNormGuard* previous_;
};

/// `bn`'s forward pass on `x`; in training mode inside a SyncBatchNormGuard,
/// with the statistics of the batch over every process.
torch::Tensor batch_norm(torch::nn::BatchNorm2dImpl& bn, const torch::Tensor& x);

/// Counts one training batch in `bn`'s running statistics as BatchNorm's own
/// training pass does (when it tracks them): `mean` and the biased `variance`
/// per channel, over `count` values each (the running variance takes the
/// unbiased one).
void track_batch_statistics(torch::nn::BatchNorm2dImpl& bn, const torch::Tensor& mean,
                            const torch::Tensor& variance, double count);

}  // namespace dnn_gating::layers
