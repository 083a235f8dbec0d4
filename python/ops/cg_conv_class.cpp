// torch.classes.dnn_gating.CGConv2d: the library's CGConv2d computing with
// tensors a Python module holds (weight, mask, threshold and its gate
// BatchNorm's running statistics, updated in place in training), so that
// PyTorch's optimisers, state dicts and autograd see Python's tensors.

#include <torch/custom_class.h>
#include <torch/library.h>
#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "conv_geometry.h"
#include "dnn_gating/layers/cg_conv.h"
#include "dnn_gating/layers/conv.h"
#include "layer_binding.h"
#include "python_errors.h"

namespace dnn_gating::python {
namespace {

class CGConv2dLayer : public torch::CustomClassHolder {
 public:
  CGConv2dLayer(int64_t in_channels, int64_t out_channels, std::vector<int64_t> kernel_size,
                std::vector<int64_t> stride, std::vector<int64_t> padding, int64_t partitions,
                double alpha, bool use_group, bool shuffle, bool sparse_bp)
      : layer_(with_python_errors([&] {
          return layers::CGConv2d(layers::CGConv2dOptions(in_channels, out_channels,
                                                          pair_of("kernel_size", kernel_size, 1))
                                      .stride(pair_of("stride", stride, 1))
                                      .padding(pair_of("padding", padding, 0))
                                      .partitions(partitions)
                                      .alpha(alpha)
                                      .use_group(use_group)
                                      .shuffle(shuffle)
                                      .sparse_bp(sparse_bp));
        })),
        conv_(layers::ConvOptions(layers::ConvKind::kChannelGated, in_channels, out_channels,
                                  pair_of("kernel_size", kernel_size, 1))) {}

  /// The layer on x with the Python module's tensors and its current
  /// settings: `training` the module's mode, `bn_training` its BatchNorm's
  /// (which may be frozen apart), `alpha`, and the BatchNorm's eps and
  /// momentum (None: a cumulative average, as torch.nn.BatchNorm2d).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& weight,
                        const torch::Tensor& mask, const torch::Tensor& threshold,
                        const torch::Tensor& running_mean, const torch::Tensor& running_var,
                        const torch::Tensor& num_batches_tracked, bool training, bool bn_training,
                        double alpha, double eps, c10::optional<double> momentum) {
    check_shape("CGConv2d weight", weight, layer_->weight.sizes());
    check_shape("CGConv2d mask", mask, layer_->weight.sizes());
    TORCH_CHECK_VALUE(running_mean.sizes() == layer_->bn->running_mean.sizes() &&
                          running_var.sizes() == layer_->bn->running_var.sizes(),
                      "CGConv2d bn running statistics must have ", layer_->bn->running_mean.size(0),
                      " values, got ", running_mean.sizes(), " and ", running_var.sizes());
    TORCH_CHECK_VALUE(alpha > 0, "CGConv2d alpha must be positive, got ", alpha);
    TORCH_CHECK_VALUE(eps > 0, "CGConv2d's bn eps must be positive, got ", eps);
    TORCH_CHECK_VALUE(!momentum || (*momentum >= 0 && *momentum <= 1),
                      "CGConv2d's bn momentum must be in [0, 1] or None, got ", *momentum);
    layer_->options.alpha(alpha);
    layer_->bn->options.eps(eps).momentum(momentum);
    layer_->weight = weight;
    layer_->mask = mask;
    layer_->compute_with_threshold(threshold);
    layer_->bn->running_mean = running_mean;
    layer_->bn->running_var = running_var;
    layer_->bn->num_batches_tracked = num_batches_tracked;
    layer_->train(training);
    layer_->bn->train(bn_training);
    return layer_->forward(laid_out(conv_, x));
  }

  /// {num_out, num_full} of the last forward pass.
  std::vector<int64_t> counts() const { return counts_of(*layer_); }

  void set_skipping(const std::string& skipping) { set_skipping_of(*layer_, skipping); }

  /// How the last forward pass computed (layers::InferenceWay): "every output",
  /// "open outputs", "one pass" or "open tiles".
  std::string last_way() const {
    switch (layer_->last_way()) {
      case layers::InferenceWay::kEveryOutput:
        return "every output";
      case layers::InferenceWay::kOpenOutputs:
        return "open outputs";
      case layers::InferenceWay::kOnePass:
        return "one pass";
      case layers::InferenceWay::kOpenTiles:
        return "open tiles";
    }
    return "every output";
  }

 private:
  layers::CGConv2d layer_;
  layers::ConvOptions conv_;
};

}  // namespace

TORCH_LIBRARY_FRAGMENT(dnn_gating, m) {
  m.class_<CGConv2dLayer>("CGConv2d")
      .def(torch::init<int64_t, int64_t, std::vector<int64_t>, std::vector<int64_t>,
                       std::vector<int64_t>, int64_t, double, bool, bool, bool>())
      .def("forward", &CGConv2dLayer::forward)
      .def("counts", &CGConv2dLayer::counts)
      .def("set_skipping", &CGConv2dLayer::set_skipping)
      .def("last_way", &CGConv2dLayer::last_way);
}

}  // namespace dnn_gating::python
