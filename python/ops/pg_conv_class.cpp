// torch.classes.dnn_gating.PGConv2d: the library's PGConv2d computing with
// tensors a Python module holds (weight, threshold), so that PyTorch's
// optimisers, state dicts and autograd see Python's parameters.

#include <torch/custom_class.h>
#include <torch/library.h>
#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "conv_geometry.h"
#include "dnn_gating/layers/conv.h"
#include "dnn_gating/layers/pg_conv.h"
#include "layer_binding.h"
#include "python_errors.h"

namespace dnn_gating::python {
namespace {

class PGConv2dLayer : public torch::CustomClassHolder {
 public:
  PGConv2dLayer(int64_t in_channels, int64_t out_channels, std::vector<int64_t> kernel_size,
                std::vector<int64_t> stride, std::vector<int64_t> padding, int64_t wbits,
                int64_t abits, int64_t pred_bits, bool sparse_bp, double alpha)
      : layer_(with_python_errors([&] {
          return layers::PGConv2d(layers::PGConv2dOptions(in_channels, out_channels,
                                                          pair_of("kernel_size", kernel_size, 1))
                                      .stride(pair_of("stride", stride, 1))
                                      .padding(pair_of("padding", padding, 0))
                                      .wbits(wbits)
                                      .abits(abits)
                                      .pred_bits(pred_bits)
                                      .sparse_bp(sparse_bp)
                                      .alpha(alpha));
        })),
        conv_(layers::ConvOptions(layers::ConvKind::kPrecisionGated, in_channels, out_channels,
                                  pair_of("kernel_size", kernel_size, 1))
                  .wbits(wbits)
                  .abits(abits)) {}

  /// The layer on x with the Python module's tensors, mode and current alpha.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& weight,
                        const torch::Tensor& threshold, bool training, double alpha) {
    check_shape("PGConv2d weight", weight, layer_->weight.sizes());
    TORCH_CHECK_VALUE(alpha > 0, "PGConv2d alpha must be positive, got ", alpha);
    layer_->options.alpha(alpha);
    layer_->weight = weight;
    layer_->compute_with_threshold(threshold);
    layer_->train(training);
    return layer_->forward(laid_out(conv_, x));
  }

  /// {num_out, num_high} of the last forward pass.
  std::vector<int64_t> counts() const { return counts_of(*layer_); }

  void set_skipping(const std::string& skipping) { set_skipping_of(*layer_, skipping); }

  bool computed_in_integers() const { return layer_->computed_in_integers(); }

 private:
  layers::PGConv2d layer_;
  layers::ConvOptions conv_;
};

}  // namespace

TORCH_LIBRARY_FRAGMENT(dnn_gating, m) {
  m.class_<PGConv2dLayer>("PGConv2d")
      .def(torch::init<int64_t, int64_t, std::vector<int64_t>, std::vector<int64_t>,
                       std::vector<int64_t>, int64_t, int64_t, int64_t, bool, double>())
      .def("forward", &PGConv2dLayer::forward)
      .def("counts", &PGConv2dLayer::counts)
      .def("set_skipping", &PGConv2dLayer::set_skipping)
      .def("computed_in_integers", &PGConv2dLayer::computed_in_integers);
}

}  // namespace dnn_gating::python
