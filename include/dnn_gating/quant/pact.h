#pragma once
/// PACT: a ReLU clipped at a learned upper bound (Choi et al., 2018).

#include <torch/torch.h>

namespace dnn_gating::quant {

/// clamp(x, 0, upper_bound) whose gradient reaches `upper_bound` from the
/// inputs above it: grad_x = g where 0 <= x <= u, grad_u = sum(g where x > u).
torch::Tensor pact_relu(const torch::Tensor& x, const torch::Tensor& upper_bound);

/// What pact_quantize returns.
struct ClippedAndQuantized {
  /// pact_relu(x, upper_bound) where asked for, else undefined.
  torch::Tensor clipped;
  /// quantize(pact_relu(x, upper_bound), bits).
  torch::Tensor quantized;
};

/// PACT's clip and the activation quantizer after it, with the gradients of
/// that chain; the clipped values are kept only if `keep_clipped` (something
/// else reads them). In training (gradients on, x requiring them) on float
/// CPU tensors with 2 or more bits and a positive bound, one pass computes
/// both and one pass their gradients; otherwise the chain runs as it is.
ClippedAndQuantized pact_quantize(const torch::Tensor& x, const torch::Tensor& upper_bound,
                                  int64_t bits, bool keep_clipped);

/// Options for `PactReLU`.
struct PactReLUOptions {
  /// Initial value of the learned clipping bound.
  TORCH_ARG(double, upper_bound) = 6.0;
};

/// ReLU with a learned clipping bound, registered as `upper_bound`.
class PactReLUImpl : public torch::nn::Cloneable<PactReLUImpl> {
 public:
  explicit PactReLUImpl(PactReLUOptions options = {});
  void reset() override;
  void pretty_print(std::ostream& stream) const override;
  torch::Tensor forward(const torch::Tensor& x);

  PactReLUOptions options;
  /// Scalar clipping bound (a 0-dim tensor, as in the original's state dict).
  torch::Tensor upper_bound;
};
TORCH_MODULE(PactReLU);

}  // namespace dnn_gating::quant
