#pragma once
// Benchmarks of gated evaluation at fixed on-fractions: whole models and
// single gated layers, computing only the open outputs (as chosen by
// measurement) and every output, against the float model or the dense
// convolution of the same shape.
#include <map>
#include <string>

namespace dnn_gating::bench {

/// Registers the gated-evaluation benchmarks with Google Benchmark.
void register_gated_inference();

/// Prints their ratio tables from the fastest repetition of each benchmark
/// (by name); prints nothing when none of them ran.
void print_gated_inference(const std::map<std::string, double>& times);

}  // namespace dnn_gating::bench
