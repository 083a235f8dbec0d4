#pragma once
// 16-float vectors for hand-written convolution kernels: in each clone of a
// DNN_GATING_FMA_CLONES function one AVX-512 register, two AVX2 ones or four
// SSE ones. Every helper is inlined, so no vector crosses a function
// boundary (compile users with -Wno-psabi).
#include <cstdint>
#include <cstring>

namespace dnn_gating::kernels::vec16 {

typedef float Vec __attribute__((vector_size(64)));
typedef int IVec __attribute__((vector_size(64)));
constexpr int64_t kVec = 16;

#define DG_INLINE __attribute__((always_inline)) inline

DG_INLINE Vec load(const float* p) {
  Vec v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

DG_INLINE void store(float* p, Vec v) { std::memcpy(p, &v, sizeof(v)); }

DG_INLINE float horizontal_sum(Vec a) {
#if defined(__clang__) || !defined(__GNUC__)
  float sum = 0.0f;
  for (int i = 0; i < kVec; ++i) sum += a[i];
  return sum;
#else
  a += __builtin_shuffle(a, IVec{8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7});
  a += __builtin_shuffle(a, IVec{4, 5, 6, 7, 0, 1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 15});
  a += __builtin_shuffle(a, IVec{2, 3, 0, 1, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15});
  a += __builtin_shuffle(a, IVec{1, 0, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15});
  return a[0];
#endif
}

// The horizontal sums of four vectors at once, by a transposing reduction.
DG_INLINE void horizontal_sums4(const Vec* a, float* out) {
#if defined(__clang__) || !defined(__GNUC__)
  for (int m = 0; m < 4; ++m) out[m] = horizontal_sum(a[m]);
#else
  const IVec lo8{0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23};
  const IVec hi8{8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31};
  const Vec ab = __builtin_shuffle(a[0], a[1], lo8) + __builtin_shuffle(a[0], a[1], hi8);
  const Vec cd = __builtin_shuffle(a[2], a[3], lo8) + __builtin_shuffle(a[2], a[3], hi8);
  const IVec lo4{0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27};
  const IVec hi4{4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31};
  Vec v = __builtin_shuffle(ab, cd, lo4) + __builtin_shuffle(ab, cd, hi4);
  v += __builtin_shuffle(v, IVec{2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13});
  v += __builtin_shuffle(v, IVec{1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14});
  out[0] = v[0];
  out[1] = v[4];
  out[2] = v[8];
  out[3] = v[12];
#endif
}

}  // namespace dnn_gating::kernels::vec16
