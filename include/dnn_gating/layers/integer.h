#pragma once
/// Whether quantized and precision-gated convolutions compute in integers
/// when evaluating without gradients: activation codes in uint8 times weight
/// codes in int8, summed exactly in int32 and scaled once (oneDNN's int8
/// convolution), instead of on the float values of the same codes.

#include <cstdint>
#include <ostream>
#include <string>

namespace dnn_gating::layers {

/// How a QuantizedConv2d or PGConv2d computes without gradients. The
/// integer way takes weights of 2 to 8 bits and non-negative inputs of 2 or
/// more bits whose sums it holds exactly on every CPU (a w8 a3 layer: yes;
/// 8-bit activations: no); anything else computes in float. Training, double
/// precision, other devices and `reference_ops` always compute in float.
enum class Integer {
  /// Whichever way is faster at the layer's shape, timed on the layer's
  /// own passes in this process. The two ways round differently (float32
  /// sums against exact ones), so where timings differ between runs a gate
  /// or code on its boundary may too.
  kFastest,
  /// In float, as the original does.
  kNever,
  /// In integers wherever they apply (the default: reproducible, and the
  /// faster way at every shape measured). A PG layer told to skip
  /// (Skipping::kAlways) computes in float: the integer way computes every
  /// output.
  kAlways,
};

/// "fastest", "never", "always".
std::string to_string(Integer integer);
/// The inverse of to_string; throws SettingError (of `integer`) naming the
/// accepted names.
Integer integer_from_string(const std::string& name);
/// Writes to_string(integer).
std::ostream& operator<<(std::ostream& out, Integer integer);

/// Whether this build computes in integers at all (oneDNN's headers were
/// found when it was configured); where not, every mode computes in float.
bool integer_available();

/// The instruction set oneDNN runs the integer convolution on here
/// ("avx512_core_amx", "avx512_core_vnni", "avx2", ...; DNNL_MAX_CPU_ISA
/// lowers it), or "none" where integer evaluation is unavailable.
std::string integer_engine();

/// Whether a layer of these bits may compute in integers in evaluation
/// (`integer` not kNever, 2 <= wbits <= 8, 2 <= abits <= 8, the build has
/// it). Whether it does depends on its input and weights too.
bool integer_applies(Integer integer, int64_t wbits, int64_t abits);

}  // namespace dnn_gating::layers
