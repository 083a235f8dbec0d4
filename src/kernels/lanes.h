#pragma once
// Vectors of L floats for hand-written kernels written once for every
// instruction-set level: each level's clone instantiates them at its own
// register width (L = 16 for AVX-512, 8 for AVX2). Every helper is inlined,
// so no vector crosses a function boundary (compile users with -Wno-psabi).
#include <cstdint>
#include <cstring>

#define DG_INLINE __attribute__((always_inline)) inline

namespace dnn_gating::kernels::lanes {

template <int L>
struct Lanes {
  typedef float Vec __attribute__((vector_size(4 * L)));
  typedef int32_t IVec __attribute__((vector_size(4 * L)));
};

template <typename V>
DG_INLINE V load(const float* p) {
  V v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

template <typename V>
DG_INLINE void store(float* p, V v) {
  std::memcpy(p, &v, sizeof(v));
}

}  // namespace dnn_gating::kernels::lanes
