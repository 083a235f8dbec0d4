#pragma once
// A sanitizer build compiles every kernel once, for the x86-64 baseline: the
// kernels' memory accesses are the same at every level, and three levels
// would triple the sanitizer pass's longest compilations.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && \
    !defined(__SANITIZE_ADDRESS__)
#define DNN_GATING_KERNEL_LEVELS 1
#else
#define DNN_GATING_KERNEL_LEVELS 0
#endif

// Element loops marked DNN_GATING_SIMD_CLONES are compiled for AVX-512, AVX2
// and the x86-64 baseline; the dynamic loader picks the best one the CPU
// supports. Files using it are compiled with -ffp-contract=off so that no
// clone fuses a multiply and an add into one rounding: every clone computes
// the same bits as the ATen operations it replaces.
#if DNN_GATING_KERNEL_LEVELS
#define DNN_GATING_SIMD_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define DNN_GATING_SIMD_CLONES
#endif

// Loops marked DNN_GATING_FMA_CLONES are compiled for x86-64-v4 (AVX-512),
// x86-64-v3 (AVX2 with fused multiply-add) and the baseline. They are
// sums of products whose rounding may differ from ATen's by float rounding
// (like any convolution's), so their files may contract multiply-adds.
#if DNN_GATING_KERNEL_LEVELS
#define DNN_GATING_FMA_CLONES \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define DNN_GATING_FMA_CLONES
#endif

// Element loops that narrow floats to bytes, marked DNN_GATING_BYTE_CLONES,
// are compiled for the same three levels: byte vectors need AVX-512 BW/VL
// (x86-64-v4) to run full-width. Their files keep -ffp-contract=off: they
// compute ATen's bits as the loops above do.
#if DNN_GATING_KERNEL_LEVELS
#define DNN_GATING_BYTE_CLONES \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define DNN_GATING_BYTE_CLONES
#endif

#include <cstdint>

namespace dnn_gating::kernels::simd {

/// Independent accumulators in hand-written reduction loops: one AVX-512
/// register's worth, so that the loops vectorise.
constexpr int kLanes = 16;

/// The sum of term(i) over [begin, end). Inlined into a
/// DNN_GATING_SIMD_CLONES loop, it vectorises with that clone's ISA: the
/// pragma (honoured under -fopenmp-simd) lets the compiler keep one partial
/// sum per vector lane.
template <typename Term>
inline float lane_sum(int64_t begin, int64_t end, Term term) {
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int64_t i = begin; i < end; ++i) sum += term(i);
  return sum;
}

}  // namespace dnn_gating::kernels::simd
