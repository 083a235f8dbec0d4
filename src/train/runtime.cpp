#include "dnn_gating/train/runtime.h"

#include <malloc.h>
#include <torch/torch.h>

#include <algorithm>
#include <thread>

namespace dnn_gating::train {

void configure_runtime(int threads) {
  constexpr int kLargeBlock = 256 << 20;  // activation tensors stay below this
  mallopt(M_MMAP_THRESHOLD, kLargeBlock);
  mallopt(M_TRIM_THRESHOLD, kLargeBlock);
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  torch::set_num_threads(threads > 0 ? threads : cores);
}

}  // namespace dnn_gating::train
