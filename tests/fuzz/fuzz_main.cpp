// One libFuzzer target: the reader DG_FUZZ_TARGET names (targets.h).
#include <torch/torch.h>

#include <cstdlib>
#include <cstring>
#include <iostream>

#include "targets.h"

namespace {

dnn_gating::fuzz::Target target() {
  for (const auto& t : dnn_gating::fuzz::targets()) {
    if (std::strcmp(t.name, DG_FUZZ_TARGET) == 0) return t.run;
  }
  std::cerr << "no fuzz target " << DG_FUZZ_TARGET << "\n";
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  torch::set_num_threads(1);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const dnn_gating::fuzz::Target run = target();
  dnn_gating::fuzz::run_one(run, data, size);
  return 0;
}
