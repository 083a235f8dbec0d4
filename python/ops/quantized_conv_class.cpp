// torch.classes.dnn_gating.QuantizedConv2d: the library's QuantizedConv2d
// (bias-free, computing in integers in evaluation) with the weight a Python
// module holds.

#include <torch/custom_class.h>
#include <torch/library.h>
#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "conv_geometry.h"
#include "dnn_gating/layers/conv.h"
#include "dnn_gating/layers/quantized_conv.h"
#include "layer_binding.h"
#include "python_errors.h"

namespace dnn_gating::python {
namespace {

class QuantizedConv2dLayer : public torch::CustomClassHolder {
 public:
  QuantizedConv2dLayer(int64_t in_channels, int64_t out_channels, std::vector<int64_t> kernel_size,
                       std::vector<int64_t> stride, std::vector<int64_t> padding, int64_t wbits,
                       int64_t abits)
      : layer_(with_python_errors([&] {
          return layers::QuantizedConv2d(
              layers::QuantizedConv2dOptions(in_channels, out_channels,
                                             pair_of("kernel_size", kernel_size, 1))
                  .stride(pair_of("stride", stride, 1))
                  .padding(pair_of("padding", padding, 0))
                  .wbits(wbits)
                  .abits(abits));
        })),
        conv_(layers::ConvOptions(layers::ConvKind::kQuantized, in_channels, out_channels,
                                  pair_of("kernel_size", kernel_size, 1))
                  .wbits(wbits)
                  .abits(abits)) {}

  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& weight, bool training) {
    check_shape("QuantizedConv2d weight", weight, layer_->weight.sizes());
    layer_->weight = weight;
    layer_->train(training);
    return layer_->forward(laid_out(conv_, x));
  }

  bool computed_in_integers() const { return layer_->computed_in_integers(); }

 private:
  layers::QuantizedConv2d layer_;
  layers::ConvOptions conv_;
};

}  // namespace

TORCH_LIBRARY_FRAGMENT(dnn_gating, m) {
  m.class_<QuantizedConv2dLayer>("QuantizedConv2d")
      .def(torch::init<int64_t, int64_t, std::vector<int64_t>, std::vector<int64_t>,
                       std::vector<int64_t>, int64_t, int64_t>())
      .def("forward", &QuantizedConv2dLayer::forward)
      .def("computed_in_integers", &QuantizedConv2dLayer::computed_in_integers);
}

}  // namespace dnn_gating::python
