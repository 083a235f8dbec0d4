#include "kernels/partial_conv.h"

#include <ATen/Parallel.h>
#include <ATen/record_function.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <utility>
#include <vector>

#include "kernels/conv_geometry.h"
#include "kernels/gate_decision.h"
#include "kernels/isa.h"
#include "kernels/lanes.h"
#include "kernels/row_slots.h"
#include "kernels/simd.h"
#include "kernels/vec16.h"

namespace dnn_gating::kernels::partial_conv {
namespace {

// Two kernels, each for its level's register file: at x86-64-v4 16-float
// vectors (one zmm, 32 registers; namespace avx512 below), at x86-64-v3 the
// generic kernel for vectors of L = 8 floats (one ymm, 16 registers;
// lanes.h). Written with 16-float vectors, the AVX2 clone had spilled every
// vector element by element and ran 30-60x slower than oneDNN.
using lanes::Lanes;
using lanes::load;
using lanes::store;

// A 3x3 convolution over an unpadded NHWC input, its input channels in
// `groups` equal groups.
struct Geometry : ConvGeometry {
  int64_t groups = 0;
};

// The gate applied in the kernel's last step, per output channel: the
// partial sum's batch normalisation (running statistics) and threshold; then,
// where scale is set, the selected output's y * scale + shift and a ReLU if
// relu.
struct Gate {
  const float* mean;
  const float* inv_std;
  const float* threshold;
  float alpha;
  const float* scale;
  const float* shift;
  bool relu;
  // Where set, the decision of output i (1 open, 0 closed) is stored at
  // decisions[i], i counted from y_first like the outputs in y.
  uint8_t* decisions;
  const float* y_first;
};

// Where a block of output positions reads its input: per kernel row, the
// zero-padded input row at the block's first position's column.
struct Band {
  const float* row[3];
};

// The AVX-512 kernel: 16-float vectors (vec16.h), one zmm register, in the
// blocking measured for AVX-512's 32 registers. Kept apart from the generic
// kernel below, whose instantiation at L = 16 measured 2.5x slower (16
// channels at 32x32, batch 64: 5.4-5.7 ms against 2.2 ms), as did this
// kernel with its group merge and gate shared with the generic one as
// templates over the vector type (5.6 ms): GCC lowers the operations of a
// 64-byte vector type that reaches the AVX-512 clone as a template argument
// piecewise.
namespace avx512 {

// The kernel below is written in vec16's terms.
using vec16::IVec;
using vec16::kVec;
using vec16::load;
using vec16::store;
using vec16::Vec;

// acc[(q * Chains + chain) * V + v] += w[v] * x[q * Step] (the scalar
// broadcast) for every position q and vector v, written out.
template <int64_t Step, int Chains, int... Q>
DG_INLINE void multiply_add(Vec* acc, int chain, Vec w, const float* x,
                            std::integer_sequence<int, Q...>) {
  ((acc[Q * Chains + chain] += w * x[Q * Step]), ...);
}

template <int64_t Step, int Chains, int... Q>
DG_INLINE void multiply_add(Vec* acc, int chain, Vec w0, Vec w1, const float* x,
                            std::integer_sequence<int, Q...>) {
  ((acc[(Q * Chains + chain) * 2] += w0 * x[Q * Step],
    acc[(Q * Chains + chain) * 2 + 1] += w1 * x[Q * Step]),
   ...);
}

// P consecutive output positions of one row, V vectors of 16 output channels
// from vector ov on: for each input group, the products of its channels
// summed apart in P x V independent accumulators, then added to the full sum
// and, in the lanes whose outputs take that group, kept as the partial sum;
// both are stored at full[q * O + ...] and partial[q * O + ...]. weight is
// [C, 3, 3, O]; lanes holds per group and output 0 or ~0; band points into
// the three zero-padded input rows under the output row ([W + 2 pw, C] each)
// at the first position's column. With a gate, y[q * O + ...] is then the
// full sum where the gate opens and the partial sum elsewhere (mapped by
// gate->scale and shift where set); returns the open gates.
template <int P, int V, int C, int S>
DG_INLINE int64_t positions(const Geometry& g, const Band& band, const float* weight,
                            const int32_t* lanes, int64_t ov, float* full, float* partial,
                            const Gate* gate, float* y) {
  static_assert(V == 1 || V == 2, "one or two vectors of outputs");
  const int64_t ic = C / g.groups;
  const int64_t o = ov * kVec;
  constexpr int64_t step = S * C;  // between output positions: constant offsets
  // Independent sums per position, so that few positions still keep the
  // multiply-adds in flight (one per kernel column below four positions).
  constexpr int kChains = P >= 4 ? 1 : 3;
  constexpr int kSums = P * V;  // [q * V + v]
  Vec full_sum[kSums] = {}, partial_sum[kSums] = {};
  for (int64_t grp = 0; grp < g.groups; ++grp) {
    Vec acc[kSums * kChains] = {};
    for (int64_t c = grp * ic; c < (grp + 1) * ic; ++c) {
#pragma GCC unroll 9
      for (int t = 0; t < 9; ++t) {
        const float* w = weight + (c * 9 + t) * g.out_channels + o;
        const float* x = band.row[t / 3] + (t % 3) * C + c;
        if constexpr (V == 1) {
          multiply_add<step, kChains>(acc, t % kChains, load(w), x,
                                      std::make_integer_sequence<int, P>());
        } else {
          multiply_add<step, kChains>(acc, t % kChains, load(w), load(w + kVec), x,
                                      std::make_integer_sequence<int, P>());
        }
      }
    }
    IVec take[V];
    for (int v = 0; v < V; ++v)
      std::memcpy(&take[v], lanes + grp * g.out_channels + o + v * kVec, sizeof(IVec));
    for (int q = 0; q < P; ++q) {
      for (int v = 0; v < V; ++v) {
        const int i = q * V + v;
        Vec sum = acc[q * kChains * V + v];
        for (int k = 1; k < kChains; ++k) sum += acc[(q * kChains + k) * V + v];
        full_sum[i] = grp == 0 ? sum : full_sum[i] + sum;
        partial_sum[i] = take[v] ? sum : partial_sum[i];  // each output takes one group at most
      }
    }
  }
  if (gate == nullptr) {
    for (int q = 0; q < P; ++q) {
      for (int v = 0; v < V; ++v) {
        store(full + q * g.out_channels + o + v * kVec, full_sum[q * V + v]);
        store(partial + q * g.out_channels + o + v * kVec, partial_sum[q * V + v]);
      }
    }
    return 0;
  }
  IVec open_lanes = {};
  for (int v = 0; v < V; ++v) {
    const int64_t ov_first = o + v * kVec;
    // The decision of gate_decision, on (partial - mean) * inv_std.
    const Vec mean = load(gate->mean + ov_first), inv_std = load(gate->inv_std + ov_first);
    const Vec threshold = load(gate->threshold + ov_first);
    for (int q = 0; q < P; ++q) {
      Vec& f = full_sum[q * V + v];
      const Vec pa = partial_sum[q * V + v];
      const Vec z = gate->alpha * ((pa - mean) * inv_std - threshold);
      const IVec open = z > gate_decision::kLastClosedLogit;  // -1 where open
      f = open ? f : pa;
      open_lanes -= open;
      if (gate->decisions != nullptr) {
        uint8_t* d = gate->decisions + (y + q * g.out_channels + ov_first - gate->y_first);
        float logit[kVec];  // (the decision again, lane by lane: the same comparison)
        std::memcpy(logit, &z, sizeof(logit));
        for (int i = 0; i < kVec; ++i)
          d[i] = static_cast<uint8_t>(logit[i] > gate_decision::kLastClosedLogit);
      }
    }
    if (gate->scale != nullptr) {
      const Vec scale = load(gate->scale + ov_first), shift = load(gate->shift + ov_first);
      for (int q = 0; q < P; ++q) full_sum[q * V + v] = full_sum[q * V + v] * scale + shift;
      if (gate->relu) {
        for (int q = 0; q < P; ++q) {
          Vec& f = full_sum[q * V + v];
          f = f < 0.0f ? Vec{} : f;  // NaN stays
        }
      }
    }
    for (int q = 0; q < P; ++q) store(y + q * g.out_channels + ov_first, full_sum[q * V + v]);
  }
  int64_t count = 0;
  for (int i = 0; i < kVec; ++i) count += open_lanes[i];
  return count;
}

// Positions [w, w + P) of an output row, whose outputs start at `at`.
template <int P, int V, int C, int S>
DG_INLINE int64_t block(const Geometry& g, const Band& band, int64_t at, int64_t w, int64_t ov,
                        const float* weight, const int32_t* lanes, float* full, float* partial,
                        const Gate* gate, float* y) {
  const int64_t column = w * S * C;
  const Band from{{band.row[0] + column, band.row[1] + column, band.row[2] + column}};
  if (gate != nullptr) {
    return positions<P, V, C, S>(g, from, weight, lanes, ov, nullptr, nullptr, gate, y + at);
  }
  return positions<P, V, C, S>(g, from, weight, lanes, ov, full + at, partial + at, nullptr,
                               nullptr);
}

// A whole output row for V vectors of outputs from ov on (row's outputs
// start at out_row). Sixteen positions of one vector keep 48 sums: their
// spills pay off only where each input group is long enough (measured: 4
// channels per group run faster eight positions at a time); two vectors go
// eight positions at a time.
template <int V, int C, int S>
DG_INLINE int64_t output_row(const Geometry& g, const Band& band, int64_t out_row, int64_t ov,
                             bool wide, const float* weight, const int32_t* lanes, float* full,
                             float* partial, const Gate* gate, float* y) {
  int64_t count = 0, w = 0;
  // The kernel calls stay out of lambdas, which would be compiled outside
  // this function's clones; `at` only computes the block's output offset.
  const auto at = [&] { return out_row + w * g.out_channels; };
  for (; V == 1 && wide && w + 16 <= g.out_w; w += 16)
    count += block<16, 1, C, S>(g, band, at(), w, ov, weight, lanes, full, partial, gate, y);
  for (; w + 8 <= g.out_w; w += 8)
    count += block<8, V, C, S>(g, band, at(), w, ov, weight, lanes, full, partial, gate, y);
  for (; w + 4 <= g.out_w; w += 4)
    count += block<4, V, C, S>(g, band, at(), w, ov, weight, lanes, full, partial, gate, y);
  for (; w < g.out_w; ++w)
    count += block<1, V, C, S>(g, band, at(), w, ov, weight, lanes, full, partial, gate, y);
  return count;
}

// Output rows [first, last) (row = n * out_h + h) for C input channels and
// stride S along rows; returns the open gates. The input rows under an
// output row are read from zero-padded copies of single rows (they stay in
// cache, unlike a padded copy of the whole input), each copied once for the
// consecutive output rows that read it. Without a gate the sums go to full
// and partial; with one, only y is written.
template <int C, int S>
DG_INLINE int64_t rows_of(const Geometry& g, const float* x, const float* weight,
                          const int32_t* lanes, float* full, float* partial, const Gate* gate,
                          float* y, int64_t first, int64_t last) {
  const int64_t padded_row = (g.in_w + 2 * g.pad_w) * C;
  // The padding columns of the slots are never written.
  RowSlots slots(padded_row);
  const bool wide = C / g.groups >= 8;
  // Two output vectors at a time share each input broadcast; measured faster
  // only where groups are long and rows too short for sixteen positions of
  // one vector (64 channels at 8x8: 1.43 -> 1.31 ms; with 4 channels per
  // group slower, as the sums of both vectors spill).
  const bool pairs = wide && g.out_w < 16;
  int64_t count = 0;
  for (int64_t row = first; row < last; ++row) {
    const int64_t n = row / g.out_h, h = row % g.out_h;
    Band band{};
    slots.band(g, n, h, band.row, [&](int64_t r, float* slot) {
      const float* src = x + r * g.in_w * C;
      std::copy(src, src + g.in_w * C, slot + g.pad_w * C);
    });
    // The input rows the next output row copies, fetched while this one computes.
    if (row + 1 < last && h + 1 < g.out_h) {
      for (int64_t i = std::max<int64_t>(0, 3 - g.stride_h); i < 3; ++i) {
        const int64_t r = (h + 1) * g.stride_h - g.pad_h + i;
        if (r < 0 || r >= g.in_h) continue;
        const char* line = reinterpret_cast<const char*>(x + (n * g.in_h + r) * g.in_w * C);
        for (int64_t b = 0; b < g.in_w * C * 4; b += 64) __builtin_prefetch(line + b);
      }
    }
    const int64_t out_row = row * g.out_w * g.out_channels;
    const int64_t vectors = g.out_channels / kVec;
    int64_t ov = 0;
    for (; pairs && ov + 2 <= vectors; ov += 2)
      count +=
          output_row<2, C, S>(g, band, out_row, ov, wide, weight, lanes, full, partial, gate, y);
    for (; ov < vectors; ++ov)
      count +=
          output_row<1, C, S>(g, band, out_row, ov, wide, weight, lanes, full, partial, gate, y);
  }
  return count;
}

DG_INLINE int64_t rows_any(const Geometry& g, const float* xp, const float* weight,
                           const int32_t* lanes, float* full, float* partial, const Gate* gate,
                           float* y, int64_t first, int64_t last) {
  if (g.stride_w == 1) {
    if (g.channels == 16)
      return rows_of<16, 1>(g, xp, weight, lanes, full, partial, gate, y, first, last);
    if (g.channels == 32)
      return rows_of<32, 1>(g, xp, weight, lanes, full, partial, gate, y, first, last);
    return rows_of<64, 1>(g, xp, weight, lanes, full, partial, gate, y, first, last);
  }
  if (g.channels == 16)
    return rows_of<16, 2>(g, xp, weight, lanes, full, partial, gate, y, first, last);
  if (g.channels == 32)
    return rows_of<32, 2>(g, xp, weight, lanes, full, partial, gate, y, first, last);
  return rows_of<64, 2>(g, xp, weight, lanes, full, partial, gate, y, first, last);
}

}  // namespace avx512

// acc[(Q * Chains + chain) * V + v] += w[v] * x[Q * Step] (the scalar
// broadcast) for every vector v. No lambdas here or below: they would be
// compiled outside the level of the function that calls them.
template <int64_t Step, int Chains, int V, int Q, typename Vec>
DG_INLINE void multiply_add_at(Vec* acc, int chain, const Vec* w, const float* x) {
  const float xq = x[Q * Step];
#pragma GCC unroll 4
  for (int v = 0; v < V; ++v) acc[(Q * Chains + chain) * V + v] += w[v] * xq;
}

// The same for every position Q, written out.
template <int64_t Step, int Chains, int V, typename Vec, int... Q>
DG_INLINE void multiply_add(Vec* acc, int chain, const Vec* w, const float* x,
                            std::integer_sequence<int, Q...>) {
  (multiply_add_at<Step, Chains, V, Q>(acc, chain, w, x), ...);
}

// P consecutive output positions of one row, V vectors of L output channels
// from output o on: for each input group, the products of its channels
// summed apart in P x V independent accumulators (times Chains), then added
// to the full sum and, in the lanes whose outputs take that group, kept as
// the partial sum; both are stored at full[q * O + ...] and
// partial[q * O + ...]. weight is [C, 3, 3, O]; lanes holds per group and
// output 0 or ~0; band points into the three zero-padded input rows under
// the output row ([W + 2 pw, C] each) at the first position's column. With a
// gate, y[q * O + ...] is then the full sum where the gate opens and the
// partial sum elsewhere (mapped by gate->scale and shift where set); returns
// the open gates.
template <int L, int P, int V, int C, int S>
DG_INLINE int64_t positions(const Geometry& g, const Band& band, const float* weight,
                            const int32_t* lanes, int64_t o, float* full, float* partial,
                            const Gate* gate, float* y) {
  using Vec = typename Lanes<L>::Vec;
  using IVec = typename Lanes<L>::IVec;
  const int64_t ic = C / g.groups;
  constexpr int64_t step = S * C;  // between output positions: constant offsets
  // Independent sums, so that few positions still keep the multiply-adds in
  // flight: at least eight chains where the registers allow (12 at L = 8,
  // where 16 registers also hold the weights and the broadcast).
  constexpr int kMaxSums = 12;
  constexpr int kChains = P * V >= 8 ? 1 : std::clamp(kMaxSums / (P * V), 1, 3);
  constexpr int kSums = P * V;  // [q * V + v]
  Vec full_sum[kSums] = {}, partial_sum[kSums] = {};
  for (int64_t grp = 0; grp < g.groups; ++grp) {
    Vec acc[kSums * kChains] = {};
    for (int64_t c = grp * ic; c < (grp + 1) * ic; ++c) {
#pragma GCC unroll 9
      for (int t = 0; t < 9; ++t) {
        const float* wp = weight + (c * 9 + t) * g.out_channels + o;
        Vec w[V];
#pragma GCC unroll 4
        for (int v = 0; v < V; ++v) w[v] = load<Vec>(wp + v * L);
        const float* x = band.row[t / 3] + (t % 3) * C + c;
        multiply_add<step, kChains, V>(acc, t % kChains, w, x,
                                       std::make_integer_sequence<int, P>());
      }
    }
    IVec take[V];
    for (int v = 0; v < V; ++v)
      std::memcpy(&take[v], lanes + grp * g.out_channels + o + v * L, sizeof(IVec));
    for (int q = 0; q < P; ++q) {
      for (int v = 0; v < V; ++v) {
        const int i = q * V + v;
        Vec sum = acc[q * kChains * V + v];
        for (int k = 1; k < kChains; ++k) sum += acc[(q * kChains + k) * V + v];
        full_sum[i] = grp == 0 ? sum : full_sum[i] + sum;
        partial_sum[i] = take[v] ? sum : partial_sum[i];  // each output takes one group at most
      }
    }
  }
  if (gate == nullptr) {
    for (int q = 0; q < P; ++q) {
      for (int v = 0; v < V; ++v) {
        store(full + q * g.out_channels + o + v * L, full_sum[q * V + v]);
        store(partial + q * g.out_channels + o + v * L, partial_sum[q * V + v]);
      }
    }
    return 0;
  }
  IVec open_lanes = {};
  for (int v = 0; v < V; ++v) {
    const int64_t ov_first = o + v * L;
    // The decision of gate_decision, on (partial - mean) * inv_std.
    const Vec mean = load<Vec>(gate->mean + ov_first);
    const Vec inv_std = load<Vec>(gate->inv_std + ov_first);
    const Vec threshold = load<Vec>(gate->threshold + ov_first);
    for (int q = 0; q < P; ++q) {
      Vec& f = full_sum[q * V + v];
      const Vec pa = partial_sum[q * V + v];
      const Vec z = gate->alpha * ((pa - mean) * inv_std - threshold);
      const IVec open = z > gate_decision::kLastClosedLogit;  // -1 where open
      f = open ? f : pa;
      open_lanes -= open;
      if (gate->decisions != nullptr) {
        uint8_t* d = gate->decisions + (y + q * g.out_channels + ov_first - gate->y_first);
        int32_t flag[L];  // 0 or -1 per lane
        std::memcpy(flag, &open, sizeof(flag));
        for (int i = 0; i < L; ++i) d[i] = static_cast<uint8_t>(flag[i] & 1);
      }
    }
    if (gate->scale != nullptr) {
      const Vec scale = load<Vec>(gate->scale + ov_first);
      const Vec shift = load<Vec>(gate->shift + ov_first);
      for (int q = 0; q < P; ++q) full_sum[q * V + v] = full_sum[q * V + v] * scale + shift;
      if (gate->relu) {
        for (int q = 0; q < P; ++q) {
          Vec& f = full_sum[q * V + v];
          f = f < 0.0f ? Vec{} : f;  // NaN stays
        }
      }
    }
    for (int q = 0; q < P; ++q) store(y + q * g.out_channels + ov_first, full_sum[q * V + v]);
  }
  int64_t count = 0;
  for (int i = 0; i < L; ++i) count += open_lanes[i];
  return count;
}

// Positions [w, w + P) of an output row, whose outputs start at `at`.
template <int L, int P, int V, int C, int S>
DG_INLINE int64_t block(const Geometry& g, const Band& band, int64_t at, int64_t w, int64_t o,
                        const float* weight, const int32_t* lanes, float* full, float* partial,
                        const Gate* gate, float* y) {
  const int64_t column = w * S * C;
  const Band from{{band.row[0] + column, band.row[1] + column, band.row[2] + column}};
  if (gate != nullptr) {
    return positions<L, P, V, C, S>(g, from, weight, lanes, o, nullptr, nullptr, gate, y + at);
  }
  return positions<L, P, V, C, S>(g, from, weight, lanes, o, full + at, partial + at, nullptr,
                                  nullptr);
}

// A whole output row for the V vectors of outputs from o on (the row's
// outputs start at out_row), P positions at a time, then the rest of the
// row in blocks of Rest... positions.
template <int L, int V, int C, int S, int P, int... Rest>
DG_INLINE int64_t run_row(const Geometry& g, const Band& band, int64_t out_row, int64_t o,
                          int64_t w, const float* weight, const int32_t* lanes, float* full,
                          float* partial, const Gate* gate, float* y) {
  int64_t count = 0;
  // The kernel calls stay out of lambdas, which would be compiled outside
  // this function's level.
  for (; w + P <= g.out_w; w += P) {
    count += block<L, P, V, C, S>(g, band, out_row + w * g.out_channels, w, o, weight, lanes, full,
                                  partial, gate, y);
  }
  if constexpr (sizeof...(Rest) > 0) {
    count +=
        run_row<L, V, C, S, Rest...>(g, band, out_row, o, w, weight, lanes, full, partial, gate, y);
  }
  return count;
}

// Every output channel of one output row at AVX2 (L = 8): 16 registers hold
// at most 12 sums beside the weights and the broadcast, as in oneDNN's AVX2
// kernels: four vectors by three positions, or two by six where the layer
// has only 16 outputs.
template <int L, int C, int S>
DG_INLINE int64_t output_row(const Geometry& g, const Band& band, int64_t out_row,
                             const float* weight, const int32_t* lanes, float* full, float* partial,
                             const Gate* gate, float* y) {
  static_assert(L == 8, "the AVX-512 level has its own kernel (namespace avx512)");
  const int64_t vectors = g.out_channels / L;
  int64_t count = 0, v = 0;
  for (; v + 4 <= vectors; v += 4)
    count += run_row<L, 4, C, S, 3, 2, 1>(g, band, out_row, v * L, 0, weight, lanes, full, partial,
                                          gate, y);
  for (; v + 2 <= vectors; v += 2)
    count += run_row<L, 2, C, S, 6, 2, 1>(g, band, out_row, v * L, 0, weight, lanes, full, partial,
                                          gate, y);
  return count;
}

// Output rows [first, last) (row = n * out_h + h) for C input channels and
// stride S along rows; returns the open gates. The input rows under an
// output row are read from zero-padded copies of single rows (they stay in
// cache, unlike a padded copy of the whole input), each copied once for the
// consecutive output rows that read it. Without a gate the sums go to full
// and partial; with one, only y is written.
template <int L, int C, int S>
DG_INLINE int64_t rows_of(const Geometry& g, const float* x, const float* weight,
                          const int32_t* lanes, float* full, float* partial, const Gate* gate,
                          float* y, int64_t first, int64_t last) {
  const int64_t padded_row = (g.in_w + 2 * g.pad_w) * C;
  // The padding columns of the slots are never written.
  RowSlots slots(padded_row);
  int64_t count = 0;
  for (int64_t row = first; row < last; ++row) {
    const int64_t n = row / g.out_h, h = row % g.out_h;
    Band band{};
    slots.band(g, n, h, band.row, [&](int64_t r, float* slot) {
      const float* src = x + r * g.in_w * C;
      std::copy(src, src + g.in_w * C, slot + g.pad_w * C);
    });
    // The input rows the next output row copies, fetched while this one computes.
    if (row + 1 < last && h + 1 < g.out_h) {
      for (int64_t i = std::max<int64_t>(0, 3 - g.stride_h); i < 3; ++i) {
        const int64_t r = (h + 1) * g.stride_h - g.pad_h + i;
        if (r < 0 || r >= g.in_h) continue;
        const char* line = reinterpret_cast<const char*>(x + (n * g.in_h + r) * g.in_w * C);
        for (int64_t b = 0; b < g.in_w * C * 4; b += 64) __builtin_prefetch(line + b);
      }
    }
    count += output_row<L, C, S>(g, band, row * g.out_w * g.out_channels, weight, lanes, full,
                                 partial, gate, y);
  }
  return count;
}

template <int L>
DG_INLINE int64_t rows_any(const Geometry& g, const float* xp, const float* weight,
                           const int32_t* lanes, float* full, float* partial, const Gate* gate,
                           float* y, int64_t first, int64_t last) {
  if (g.stride_w == 1) {
    if (g.channels == 16)
      return rows_of<L, 16, 1>(g, xp, weight, lanes, full, partial, gate, y, first, last);
    if (g.channels == 32)
      return rows_of<L, 32, 1>(g, xp, weight, lanes, full, partial, gate, y, first, last);
    return rows_of<L, 64, 1>(g, xp, weight, lanes, full, partial, gate, y, first, last);
  }
  if (g.channels == 16)
    return rows_of<L, 16, 2>(g, xp, weight, lanes, full, partial, gate, y, first, last);
  if (g.channels == 32)
    return rows_of<L, 32, 2>(g, xp, weight, lanes, full, partial, gate, y, first, last);
  return rows_of<L, 64, 2>(g, xp, weight, lanes, full, partial, gate, y, first, last);
}

// The kernel at AVX-512 (x86-64-v4) and AVX2 with FMA (x86-64-v3) only,
// chosen by isa::level() (which DNN_GATING_MAX_ISA caps): its templates take
// minutes to compile per level, and at the x86-64 baseline it would run
// slower than the library's convolutions, so there supported() refuses it
// and the layers take the library's way. A sanitizer build compiles it
// once, for the baseline, with the AVX2 blocking.
using Rows = int64_t (*)(const Geometry&, const float*, const float*, const int32_t*, float*,
                         float*, const Gate*, float*, int64_t, int64_t);

#if DNN_GATING_KERNEL_LEVELS
__attribute__((target("arch=x86-64-v4"))) int64_t rows_avx512(
    const Geometry& g, const float* xp, const float* weight, const int32_t* lanes, float* full,
    float* partial, const Gate* gate, float* y, int64_t first, int64_t last) {
  return avx512::rows_any(g, xp, weight, lanes, full, partial, gate, y, first, last);
}

__attribute__((target("arch=x86-64-v3"))) int64_t rows_avx2(const Geometry& g, const float* xp,
                                                            const float* weight,
                                                            const int32_t* lanes, float* full,
                                                            float* partial, const Gate* gate,
                                                            float* y, int64_t first, int64_t last) {
  return rows_any<8>(g, xp, weight, lanes, full, partial, gate, y, first, last);
}

Rows rows_at_level() { return isa::at_level<Rows>(rows_avx512, rows_avx2, nullptr); }
#else
int64_t rows_portable(const Geometry& g, const float* xp, const float* weight, const int32_t* lanes,
                      float* full, float* partial, const Gate* gate, float* y, int64_t first,
                      int64_t last) {
  return rows_any<8>(g, xp, weight, lanes, full, partial, gate, y, first, last);
}

Rows rows_at_level() { return rows_portable; }
#endif

bool runs_here() { return rows_at_level() != nullptr; }

int64_t rows(const Geometry& g, const float* xp, const float* weight, const int32_t* lanes,
             float* full, float* partial, const Gate* gate, float* y, int64_t first, int64_t last) {
  const Rows at_level = rows_at_level();
  TORCH_CHECK(at_level != nullptr, "partial_conv runs on x86-64-v3 (AVX2 and FMA) or better only");
  return at_level(g, xp, weight, lanes, full, partial, gate, y, first, last);
}

}  // namespace

std::vector<std::vector<bool>> group_blocks(const torch::Tensor& mask, int64_t groups) {
  if (mask.dim() != 4 || groups < 1 || mask.size(1) % groups != 0) return {};
  const int64_t out = mask.size(0);
  const torch::Tensor m = mask.detach().to(torch::kFloat).contiguous().view({out, groups, -1});
  const torch::Tensor first = m.select(2, 0);
  if (!torch::equal(m, first.unsqueeze(2).expand_as(m))) return {};
  if (!torch::equal(first * (1 - first), torch::zeros_like(first))) return {};  // 0 or 1 only
  std::vector<std::vector<bool>> blocks(out, std::vector<bool>(groups));
  const auto f = first.accessor<float, 2>();
  for (int64_t o = 0; o < out; ++o) {
    int64_t taken = 0;
    for (int64_t g = 0; g < groups; ++g) {
      blocks[o][g] = f[o][g] != 0;
      taken += blocks[o][g];
    }
    if (taken > 1) return {};  // the kernel keeps one group's sum per output
  }
  return blocks;
}

bool supported(const torch::Tensor& weight, int64_t groups, torch::IntArrayRef stride) {
  const int64_t c = weight.dim() == 4 ? weight.size(1) : 0;
  return weight.dim() == 4 && weight.scalar_type() == torch::kFloat && weight.device().is_cpu() &&
         weight.size(2) == 3 && weight.size(3) == 3 && weight.size(0) % 16 == 0 &&
         (c == 16 || c == 32 || c == 64) && groups >= 1 && c % groups == 0 && stride.size() == 2 &&
         (stride[1] == 1 || stride[1] == 2) && stride[0] >= 1 && runs_here();
}

namespace {

// What both entry points set up: the geometry, the weights as [C, 3, 3, O]
// (the outputs of one input channel and tap side by side) and the lanes.
struct Prepared {
  Geometry g{};
  torch::Tensor weight;
  std::vector<int32_t> lanes;
};

Prepared prepare(const torch::Tensor& x, const torch::Tensor& weight,
                 const std::vector<std::vector<bool>>& blocks, torch::IntArrayRef stride,
                 torch::IntArrayRef padding) {
  TORCH_CHECK(!blocks.empty(), "partial_conv needs the mask's input-group blocks");
  const auto groups = static_cast<int64_t>(blocks[0].size());
  TORCH_CHECK(supported(weight, groups, stride) && x.dim() == 4 && x.size(1) == weight.size(1) &&
                  x.scalar_type() == torch::kFloat && x.device().is_cpu() &&
                  x.is_contiguous(at::MemoryFormat::ChannelsLast) && padding.size() == 2 &&
                  padding[0] >= 0 && padding[1] >= 0 &&
                  static_cast<int64_t>(blocks.size()) == weight.size(0),
              "partial_conv: input ", x.sizes(), " (channels-last float) and weight ",
              weight.sizes(), " in ", groups, " groups are not a supported convolution");
  Prepared p;
  Geometry& g = p.g;
  set_3x3(g, x, weight, stride, padding, "partial_conv");
  g.groups = groups;
  p.weight = weight.detach().permute({1, 2, 3, 0}).contiguous();
  p.lanes.resize(groups * g.out_channels);
  for (int64_t grp = 0; grp < groups; ++grp) {
    for (int64_t o = 0; o < g.out_channels; ++o)
      p.lanes[grp * g.out_channels + o] = blocks[o][grp] ? ~0 : 0;
  }
  return p;
}

torch::Tensor output(const Prepared& p, const torch::Tensor& like) {
  return torch::empty({p.g.batch, p.g.out_channels, p.g.out_h, p.g.out_w}, like.options(),
                      at::MemoryFormat::ChannelsLast);
}

// O floats of a per-channel tensor.
std::vector<float> per_channel(const torch::Tensor& t, int64_t channels) {
  TORCH_CHECK(t.numel() == channels, "partial_conv: a per-channel tensor has ", t.numel(),
              " values for ", channels, " channels");
  const torch::Tensor f = t.detach().to(torch::kFloat).contiguous().view({-1});
  return {f.data_ptr<float>(), f.data_ptr<float>() + channels};
}

}  // namespace

std::pair<torch::Tensor, torch::Tensor> full_and_partial(
    const torch::Tensor& x, const torch::Tensor& weight,
    const std::vector<std::vector<bool>>& blocks, torch::IntArrayRef stride,
    torch::IntArrayRef padding) {
  RECORD_FUNCTION("dnn_gating::full_and_partial", std::vector<c10::IValue>());
  const Prepared p = prepare(x, weight, blocks, stride, padding);
  torch::Tensor partial = output(p, x);
  torch::Tensor full = output(p, x);
  const float* xp = x.data_ptr<float>();
  const float* wp = p.weight.data_ptr<float>();
  float* fp = full.data_ptr<float>();
  float* pp = partial.data_ptr<float>();
  at::parallel_for(0, p.g.batch * p.g.out_h, 1, [&](int64_t a, int64_t b) {
    rows(p.g, xp, wp, p.lanes.data(), fp, pp, nullptr, nullptr, a, b);
  });
  return {full, partial};
}

std::pair<torch::Tensor, int64_t> gated(const torch::Tensor& x, const torch::Tensor& weight,
                                        const std::vector<std::vector<bool>>& blocks,
                                        torch::IntArrayRef stride, torch::IntArrayRef padding,
                                        const GateParameters& gate, const Affine* then,
                                        const torch::Tensor& decisions) {
  RECORD_FUNCTION("dnn_gating::gated_partial_conv", std::vector<c10::IValue>());
  const Prepared p = prepare(x, weight, blocks, stride, padding);
  const int64_t channels = p.g.out_channels;
  const std::vector<float> mean = per_channel(gate.running_mean, channels);
  std::vector<float> inv_std = per_channel(gate.running_var, channels);
  for (float& v : inv_std) v = 1.0f / std::sqrt(v + static_cast<float>(gate.eps));
  const std::vector<float> threshold = per_channel(gate.threshold, channels);
  const std::vector<float> scale = then ? per_channel(then->scale, channels) : std::vector<float>();
  const std::vector<float> shift = then ? per_channel(then->shift, channels) : std::vector<float>();
  Gate g{mean.data(),
         inv_std.data(),
         threshold.data(),
         static_cast<float>(gate.alpha),
         then ? scale.data() : nullptr,
         then ? shift.data() : nullptr,
         then != nullptr && then->relu,
         nullptr,
         nullptr};
  torch::Tensor y = output(p, x);
  const float* xp = x.data_ptr<float>();
  const float* wp = p.weight.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  if (decisions.defined()) {
    TORCH_CHECK(decisions.scalar_type() == torch::kByte && decisions.sizes() == y.sizes() &&
                    decisions.is_contiguous(at::MemoryFormat::ChannelsLast),
                "partial_conv::gated: decisions must be a channels-last uint8 ", y.sizes(),
                ", got ", decisions.scalar_type(), " ", decisions.sizes());
    g.decisions = decisions.data_ptr<uint8_t>();
    g.y_first = yp;
  }
  const int64_t open = at::parallel_reduce(
      0, p.g.batch * p.g.out_h, 1, int64_t{0},
      [&](int64_t a, int64_t b, int64_t acc) {
        return acc + rows(p.g, xp, wp, p.lanes.data(), nullptr, nullptr, &g, yp, a, b);
      },
      std::plus<int64_t>());
  return {y, open};
}

}  // namespace dnn_gating::kernels::partial_conv
