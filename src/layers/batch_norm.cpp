#include "dnn_gating/layers/batch_norm.h"

#include <memory>
#include <vector>

namespace dnn_gating::layers {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

thread_local const SyncBatchNormGuard* active_guard = nullptr;

// The process sum of a forward pass, kept for its backward pass.
struct HeldSum : torch::CustomClassHolder {
  explicit HeldSum(ProcessSum s) : sum(std::move(s)) {}
  ProcessSum sum;
};

// y = the sum over processes of each process's `local`. The whole batch's
// loss is sum_r share_r * loss_r, and every process differentiates its own
// loss_r, so the gradient of its `local` is
// (1 / share_r) * sum_r' share_r' * (d loss_r' / d y).
struct ProcessSumFunction : torch::autograd::Function<ProcessSumFunction> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& local,
                               const c10::IValue& held, double loss_share) {
    ctx->saved_data["held"] = held;
    ctx->saved_data["share"] = loss_share;
    torch::Tensor total = local.detach().clone();
    static_cast<HeldSum*>(held.toCapsule().get())->sum(total);
    return total;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const double share = ctx->saved_data["share"].toDouble();
    torch::Tensor total = (grads[0] * share).contiguous();
    static_cast<HeldSum*>(ctx->saved_data["held"].toCapsule().get())->sum(total);
    return {total / share, torch::Tensor(), torch::Tensor()};
  }
};

// torch.nn.SyncBatchNorm's training pass: the mean and (biased) variance of
// x over every process's shard, each a sum over processes of local sums (two
// passes, as exact as one process's), the running statistics updated with
// them (the variance unbiased over the whole batch).
torch::Tensor synced_batch_norm(torch::nn::BatchNorm2dImpl& bn, const torch::Tensor& x,
                                const SyncBatchNormGuard& guard) {
  const int64_t channels = x.size(1);
  std::vector<int64_t> dims{0};
  for (int64_t d = 2; d < x.dim(); ++d) dims.push_back(d);
  std::vector<int64_t> shape(x.dim(), 1);
  shape[1] = channels;
  const c10::IValue held = c10::IValue::make_capsule(c10::make_intrusive<HeldSum>(guard.sum()));
  const double share = guard.loss_share();
  // The local count rides with the sums (no gradient reaches it).
  const torch::Tensor count =
      torch::full({1}, static_cast<double>(x.numel() / channels), x.options().requires_grad(false));
  const torch::Tensor sums =
      ProcessSumFunction::apply(torch::cat({x.sum(dims), count}), held, share);
  const double n = sums[channels].item<double>();
  TORCH_CHECK(n > 1, "BatchNorm over the processes needs more than one value per channel");
  const torch::Tensor mean = sums.narrow(0, 0, channels) / n;
  const torch::Tensor centred = x - mean.view(shape);
  const torch::Tensor var =
      ProcessSumFunction::apply((centred * centred).sum(dims), held, share) / n;
  torch::Tensor y = centred * torch::rsqrt(var + bn.options.eps()).view(shape);
  if (bn.options.affine()) y = y * bn.weight.view(shape) + bn.bias.view(shape);
  track_batch_statistics(bn, mean.detach(), var.detach(), n);
  return y;
}

}  // namespace

SyncBatchNormGuard::SyncBatchNormGuard(ProcessSum sum, double loss_share)
    : sum_(std::move(sum)), loss_share_(loss_share), previous_(active_guard) {
  TORCH_CHECK(sum_, "SyncBatchNormGuard needs a process sum");
  TORCH_CHECK(loss_share_ > 0, "a process's loss share must be positive, got ", loss_share_);
  active_guard = this;
}

SyncBatchNormGuard::~SyncBatchNormGuard() { active_guard = previous_; }

const SyncBatchNormGuard* SyncBatchNormGuard::active() { return active_guard; }

torch::Tensor batch_norm(torch::nn::BatchNorm2dImpl& bn, const torch::Tensor& x) {
  const SyncBatchNormGuard* guard = SyncBatchNormGuard::active();
  if (guard == nullptr || !bn.is_training()) return bn.forward(x);
  return synced_batch_norm(bn, x, *guard);
}

void track_batch_statistics(torch::nn::BatchNorm2dImpl& bn, const torch::Tensor& mean,
                            const torch::Tensor& variance, double count) {
  if (!bn.options.track_running_stats()) return;
  TORCH_CHECK(count > 1, "BatchNorm needs more than one value per channel in training, got ",
              count);
  torch::NoGradGuard no_grad;
  bn.num_batches_tracked.add_(1);
  // The factor of BatchNorm's own pass: momentum, or the cumulative average.
  const double factor = bn.options.momentum().has_value()
                            ? *bn.options.momentum()
                            : 1.0 / bn.num_batches_tracked.item<double>();
  bn.running_mean.mul_(1 - factor).add_(mean.view_as(bn.running_mean), factor);
  bn.running_var.mul_(1 - factor)
      .add_(variance.view_as(bn.running_var) * (count / (count - 1)), factor);
}

}  // namespace dnn_gating::layers
