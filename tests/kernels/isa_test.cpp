// The kernels' instruction-set level and its cap, DNN_GATING_MAX_ISA. The
// kernel tests run once more with the cap at avx2 (tests/CMakeLists.txt), so
// that the AVX2 code is tested on AVX-512 machines too.
#include "kernels/isa.h"

#include <cstdlib>

#include "test_support.h"

namespace isa = dnn_gating::kernels::isa;

TEST(KernelLevel, NamesParseBackAndOtherValuesAreRefused) {
  for (isa::Level l : {isa::Level::kAvx512, isa::Level::kAvx2, isa::Level::kBaseline})
    EXPECT_EQ(isa::parse(isa::name(l)), l);
  try {
    isa::parse("avx1024");
    FAIL() << "an unknown level was taken";
  } catch (const c10::Error& e) {
    const std::string message = e.what_without_backtrace();
    EXPECT_NE(message.find("DNN_GATING_MAX_ISA"), std::string::npos) << message;
    EXPECT_NE(message.find("avx1024"), std::string::npos) << message;
  }
}

TEST(KernelLevel, TheCapLowersTheLevelAndNeverRaisesIt) {
  const char* cap = std::getenv("DNN_GATING_MAX_ISA");
  const isa::Level cpu = isa::cpu_level();
  if (cap == nullptr || *cap == '\0') {
    EXPECT_EQ(isa::level(), cpu);
  } else {
    EXPECT_EQ(isa::level(), std::min(cpu, isa::parse(cap)));
  }
  EXPECT_LE(isa::level(), cpu);
}
