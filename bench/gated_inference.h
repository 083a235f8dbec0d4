#pragma once
// Benchmarks of gated evaluation at fixed on-fractions: whole models and
// single gated layers, by default and computing every output, against the
// float model (as the original runs it, and folded: BatchNorm in the
// convolutions, channels-last) or the dense convolution of the same shape.
#include <map>
#include <string>

namespace dnn_gating::bench {

/// Registers the gated-evaluation benchmarks with Google Benchmark.
void register_gated_inference();

/// What a gated benchmark counted over its timed passes.
struct Counts {
  double on_percent = 0;
  /// Effective MACs / dense MACs, as the report counts them.
  double effective_fraction = 0;
};

/// Prints their ratio tables from the fastest repetition of each benchmark
/// (by name) and the counts of its runs; prints nothing when none of them ran.
void print_gated_inference(const std::map<std::string, double>& times,
                           const std::map<std::string, Counts>& counts);

}  // namespace dnn_gating::bench
