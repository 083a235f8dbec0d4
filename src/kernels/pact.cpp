#include "kernels/pact.h"

#include "kernels/simd.h"

namespace dnn_gating::kernels::pact {

// y = clamp(x, 0, u) and each element's region, in one pass.
DNN_GATING_SIMD_CLONES
void pact_forward_kernel(const float* __restrict x, float* __restrict y, uint8_t* __restrict region,
                         int64_t begin, int64_t end, float bound) {
  for (int64_t i = begin; i < end; ++i) {
    y[i] = clip(x[i], bound);
    region[i] = region_of<false>(x[i], bound);
  }
}

// Over one block: grad_x = g inside [0, u]; returns the sum of g above u.
DNN_GATING_SIMD_CLONES
float pact_backward_kernel(const float* __restrict g, const uint8_t* __restrict region,
                           float* __restrict grad_x, int64_t begin, int64_t end) {
  // g is loaded unconditionally so that the selects need no masked loads.
  return simd::lane_sum(begin, end, [=](int64_t i) {
    const float gi = g[i];
    grad_x[i] = region[i] == kInside ? gi : 0.0f;
    return region[i] == kAbove ? gi : 0.0f;
  });
}

}  // namespace dnn_gating::kernels::pact
