#pragma once
// The instruction-set level the hand-written kernels run at: the best the
// CPU supports, capped by the environment variable DNN_GATING_MAX_ISA
// (avx512, avx2 or baseline), as DNNL_MAX_CPU_ISA caps oneDNN. The cap lets
// the AVX2 code of a kernel be measured and tested on an AVX-512 machine.
#include <string>

namespace dnn_gating::kernels::isa {

enum class Level { kBaseline = 0, kAvx2 = 1, kAvx512 = 2 };

/// What the CPU supports: x86-64-v4 (AVX-512 F/BW/DQ/VL), x86-64-v3 (AVX2,
/// FMA) or less.
Level cpu_level();

/// The level the kernels take: cpu_level(), capped by DNN_GATING_MAX_ISA.
/// Read once; an unknown value of the variable throws, naming it and the
/// values it takes.
Level level();

/// Of a kernel's three forms, the one for level(): `avx512`, `avx2`, or
/// `baseline` below AVX2.
template <typename T>
T at_level(T avx512, T avx2, T baseline) {
  switch (level()) {
    case Level::kAvx512:
      return avx512;
    case Level::kAvx2:
      return avx2;
    default:
      return baseline;
  }
}

/// The cap as a value of DNN_GATING_MAX_ISA names it ("avx512", ...).
const char* name(Level level);

/// The level DNN_GATING_MAX_ISA names, or throws naming what it takes.
Level parse(const std::string& value);

}  // namespace dnn_gating::kernels::isa
