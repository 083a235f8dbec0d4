#pragma once
// LibTorch's int8 convolution (its quantized engines: oneDNN, FBGEMM) against
// the float convolution at the layer shapes of ResNet-20, batch 128: what an
// integer path for quantized and PG models could gain per layer.
#include <map>
#include <string>

namespace dnn_gating::bench {

/// Registers the float and int8 convolutions of each shape and engine.
void register_integer_conv();

/// Prints int8 time / float time per shape and engine, and the CPU's
/// vector features; nothing when they did not run.
void print_integer_conv(const std::map<std::string, double>& times);

}  // namespace dnn_gating::bench
