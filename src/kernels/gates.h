#pragma once
// Fused element kernels of the PG and CG gates. In the forward pass each
// reproduces, bit for bit, the original's chain of ATen operations
//   s = sigmoid(alpha * (a - threshold)),   open where s > 0.5,
//   PG: y = msb + open * lsb,   CG: y = full * open + partial * (1 - open),
// in three passes instead of eight to ten; the backward passes are one each.
// Tensors are float CPU [N, C, ...], taken dense in the layout of the gate's
// s (channels-last stays channels-last; anything else is made contiguous);
// `threshold` holds C values.
#include <torch/torch.h>

#include <cstdint>
#include <utility>

#include "kernels/affine.h"
#include "kernels/sparse_conv.h"

namespace dnn_gating::kernels::gates {

/// Ends the forward pass of a gate's autograd function: keeps alpha and
/// sparse_bp for its backward pass and returns {y, number of open gates},
/// the count marked non-differentiable.
torch::autograd::variable_list gate_outputs(torch::autograd::AutogradContext* ctx, torch::Tensor y,
                                            int64_t open, double alpha, bool sparse_bp);

/// s = sigmoid(alpha * (a - threshold[c])): the logit in one pass, then
/// ATen's own sigmoid in place.
torch::Tensor gate_sigmoid(const torch::Tensor& a, const torch::Tensor& threshold, double alpha);

/// What the PG gate's backward pass needs of its forward pass, in 5 bytes an
/// output where s and lsb took 8: `factor` = lsb (1 - s) s alpha (the
/// sigmoid path's sigmoid_backward of dL/ds = dL/dy * lsb, less dL/dy; 0
/// where sparse_bp cuts the path, s < 0.5) and `open` = [s > 0.5] as uint8,
/// in msb's layout.
struct PgGateFactors {
  torch::Tensor factor, open;
};
/// PG: {msb + [s > 0.5] * lsb, number of open gates} and the gate's factors
/// for the backward pass, s = sigmoid(alpha * (msb - threshold[c])), in one
/// pass from the logit: the gates decided as `pg_select_inference` decides
/// them, exactly as ATen's sigmoid would, and s in the factor within 2 ulp of
/// ATen's (kernels/gate_decision.h).
struct PgSelected {
  torch::Tensor y;
  int64_t open = 0;
  PgGateFactors gate;
};
PgSelected pg_select_training(const torch::Tensor& msb, const torch::Tensor& lsb,
                              const torch::Tensor& threshold, double alpha, bool sparse_bp);

/// CG: {full * [s > 0.5] + partial * (1 - [s > 0.5]), number of open gates}.
std::pair<torch::Tensor, int64_t> cg_select(const torch::Tensor& s, const torch::Tensor& full,
                                            const torch::Tensor& partial);

/// Forward only, for passes without a backward one: the outputs and counts
/// of `pg_select_training` in one pass from the logit, without computing
/// the sigmoid (open where float sigmoid(z) > 0.5, decided exactly: see the
/// .cpp).
std::pair<torch::Tensor, int64_t> pg_select_inference(const torch::Tensor& msb,
                                                      const torch::Tensor& lsb,
                                                      const torch::Tensor& threshold, double alpha);

/// The same with `then` (the BatchNorm and ReLU or clip that follow the
/// layer) applied to the outputs as they are written.
std::pair<torch::Tensor, int64_t> pg_select_inference(const torch::Tensor& msb,
                                                      const torch::Tensor& lsb,
                                                      const torch::Tensor& threshold, double alpha,
                                                      const Affine& then);

/// The same for `cg_select`, the gate reading `gate_input` = bn(partial).
std::pair<torch::Tensor, int64_t> cg_select_inference(const torch::Tensor& full,
                                                      const torch::Tensor& partial,
                                                      const torch::Tensor& gate_input,
                                                      const torch::Tensor& threshold, double alpha);

/// Forward only: the open outputs of a gate reading `gate_input` (PG: the
/// MSB output, CG: bn(partial)), decided as `pg_select_inference` and
/// `cg_select_inference` decide them, position by position.
sparse_conv::OpenOutputs open_outputs(const torch::Tensor& gate_input,
                                      const torch::Tensor& threshold, double alpha);

/// Gradients of the PG gate given dL/dy `grad_y` and the gate's factors:
/// writes dL/dmsb (dL/dy plus the sigmoid path, dL/dy * factor) into
/// `grad_msb` and dL/dlsb (dL/dy where open) into `grad_lsb` (laid out as
/// the factors, preallocated), returns dL/dthreshold as C values.
torch::Tensor pg_select_backward(const torch::Tensor& grad_y, const PgGateFactors& gate,
                                 const torch::Tensor& grad_msb, const torch::Tensor& grad_lsb);

/// Gradients of the CG gate: returns {dL/dfull, dL/dpartial (mixing term
/// only), dL/da (the gate input), dL/dthreshold as C values}.
std::tuple<torch::Tensor, torch::Tensor, torch::Tensor, torch::Tensor> cg_select_backward(
    const torch::Tensor& grad_y, const torch::Tensor& s, const torch::Tensor& full,
    const torch::Tensor& partial, double alpha, bool sparse_bp);

/// The CG gate with its batch normalisation folded in, for training on
/// channels-last tensors: the per-channel mean and biased variance of
/// `partial` over N, H and W, summed in double in one pass. Returns
/// {mean, variance}, C floats each.
std::pair<torch::Tensor, torch::Tensor> channel_moments(const torch::Tensor& partial);

/// The CG gate on the normalised partial sums in one pass, neither they nor
/// the sigmoid stored: {full * open + partial * (1 - open), number of open
/// gates}, open where sigmoid(z) > 0.5 for
/// z = alpha * ((partial - mean[c]) * inv_std[c] - threshold[c]), decided
/// from z as ATen's float sigmoid decides it (gate_decision.h).
std::pair<torch::Tensor, int64_t> cg_normalised_select(
    const torch::Tensor& full, const torch::Tensor& partial, const torch::Tensor& mean,
    const torch::Tensor& inv_std, const torch::Tensor& threshold, double alpha);

/// Gradients of `cg_normalised_select`: returns {dL/dfull, dL/dpartial (the
/// mixing term plus the gate's path through the normalisation, whose mean
/// and variance are the batch's), dL/dthreshold as C values}. z and the
/// sigmoid are computed again from `partial`. `full` may be y (with
/// sparse_bp the full sums are read only where the gate is open, where they
/// equal y). Two passes: the first computes the gradients, summing per
/// channel the gate-input gradient and its product with the normalised
/// partial sums; the second adds the normalisation's backward.
std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> cg_normalised_select_backward(
    const torch::Tensor& grad_y, const torch::Tensor& full, const torch::Tensor& partial,
    const torch::Tensor& mean, const torch::Tensor& inv_std, const torch::Tensor& threshold,
    double alpha, bool sparse_bp);

}  // namespace dnn_gating::kernels::gates
