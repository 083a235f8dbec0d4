#include "kernels/isa.h"

#include <c10/util/Exception.h>

#include <algorithm>
#include <cstdlib>

namespace dnn_gating::kernels::isa {

Level cpu_level() {
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
  if (__builtin_cpu_supports("x86-64-v4")) return Level::kAvx512;
  if (__builtin_cpu_supports("x86-64-v3")) return Level::kAvx2;
#endif
  return Level::kBaseline;
}

const char* name(Level level) {
  switch (level) {
    case Level::kAvx512:
      return "avx512";
    case Level::kAvx2:
      return "avx2";
    default:
      return "baseline";
  }
}

Level parse(const std::string& value) {
  for (Level l : {Level::kAvx512, Level::kAvx2, Level::kBaseline}) {
    if (value == name(l)) return l;
  }
  TORCH_CHECK(false, "DNN_GATING_MAX_ISA is '", value,
              "'; expected avx512, avx2 or baseline (or unset for the best the CPU supports)");
}

Level level() {
  static const Level chosen = [] {
    const char* cap = std::getenv("DNN_GATING_MAX_ISA");
    const Level cpu = cpu_level();
    if (cap == nullptr || *cap == '\0') return cpu;
    return std::min(cpu, parse(cap));
  }();
  return chosen;
}

}  // namespace dnn_gating::kernels::isa
