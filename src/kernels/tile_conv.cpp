#include "kernels/tile_conv.h"

#include <ATen/Parallel.h>
#include <ATen/record_function.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>

#include "kernels/conv_geometry.h"
#include "kernels/gate_decision.h"
#include "kernels/isa.h"
#include "kernels/lanes.h"
#include "kernels/row_slots.h"
#include "kernels/simd.h"

namespace dnn_gating::kernels::tile_conv {
namespace {

// Vectors of T floats (lanes.h): one tile's positions.
using lanes::Lanes;
using lanes::load;
using lanes::store;

// How many lanes of a comparison's result (0 or -1 per lane) are set, by a
// halving reduction instead of one extraction per lane.
template <int T>
DG_INLINE int64_t lane_count(typename Lanes<T>::IVec v) {
  using IVec = typename Lanes<T>::IVec;
  IVec s = v;
  if constexpr (T == 16) {
    s += __builtin_shuffle(s, IVec{8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7});
    s += __builtin_shuffle(s, IVec{4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11});
    s += __builtin_shuffle(s, IVec{2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13});
    s += __builtin_shuffle(s, IVec{1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14});
  } else {
    s += __builtin_shuffle(s, IVec{4, 5, 6, 7, 0, 1, 2, 3});
    s += __builtin_shuffle(s, IVec{2, 3, 0, 1, 6, 7, 4, 5});
    s += __builtin_shuffle(s, IVec{1, 0, 3, 2, 5, 4, 7, 6});
  }
  return -static_cast<int64_t>(s[0]);
}

// Outputs blocked together: each input load serves this many.
constexpr int kBlock = 4;

// A 3x3 convolution over a channels-last input, its input channels in
// `groups` equal groups, computed in tiles of `tile` positions.
struct Geometry : ConvGeometry {
  int64_t groups = 0;
  int64_t plane_w = 0;            // floats of one channel's row in one phase
  int64_t tile = 0, tiles_w = 0;  // positions per tile, tiles per output row
};

// The three input rows under an output row as the tiles read them: per
// channel and column phase (column mod stride of the zero-padded row), a
// zero-padded row of plane_w floats, so that the T outputs of a tile read T
// consecutive floats per tap. Rows are transposed from the channels-last
// input into small buffers that stay in cache.
struct Band {
  const float* row[3];  // [channel][phase][plane_w] each
};

// Per output channel: the gate (running statistics folded into mean and
// inv_std, threshold) and what follows the layer.
struct Gate {
  const float* mean;
  const float* inv_std;
  const float* threshold;
  float alpha;
  const float* scale;  // null: no map
  const float* shift;
  bool relu;
  float upper;
};

// Which outputs take which input group: group_outputs[g] lists the outputs
// taking group g; group_outputs[groups] those taking none.
struct Groups {
  std::vector<std::vector<int64_t>> outputs;
  int64_t channels_per_group;
};

// acc[m] += sum over channels [c_begin, c_end) and the 3x3 taps of
// w[outs[m]] * x, for M outputs and T positions from column w0 of output
// row h of image n. S: the stride. The sums are kept in eight (nine for
// three outputs) independent chains, so that the multiply-adds do not wait
// on each other (four chains for four outputs had run at half the rate
// where tiles are 8 wide).
template <int T, int S, int M>
DG_INLINE void add_products(const Geometry& g, const Band& band, const float* weight,
                            typename Lanes<T>::Vec* acc, const int64_t* outs, int64_t n, int64_t h,
                            int64_t w0, int64_t c_begin, int64_t c_end) {
  using Vec = typename Lanes<T>::Vec;
  constexpr int kChains = M >= 4 ? 2 : M == 1 ? 8 : M == 2 ? 4 : 3;
  const int64_t pw = g.plane_w;
  Vec sums[M * kChains] = {};
  for (int64_t c = c_begin; c < c_end; ++c) {
    const int64_t at = c * S * pw + w0;
    const float* w[M];
    for (int m = 0; m < M; ++m) w[m] = weight + (outs[m] * g.channels + c) * 9;
#pragma GCC unroll 9
    for (int t = 0; t < 9; ++t) {
      const int i = t / 3, j = t % 3;
      const Vec x = load<Vec>(band.row[i] + at + (j % S) * pw + j / S);
#pragma GCC unroll 4
      for (int m = 0; m < M; ++m) sums[m * kChains + t % kChains] += w[m][t] * x;
    }
  }
  for (int m = 0; m < M; ++m) {
#pragma GCC unroll 4
    for (int k = 0; k < kChains; ++k) acc[m] += sums[m * kChains + k];
  }
}

// The same over every group but `skip` (the rest of the outputs' sums).
template <int T, int S, int M>
DG_INLINE void add_rest(const Geometry& g, const Band& band, const float* weight,
                        typename Lanes<T>::Vec* acc, const int64_t* outs, int64_t n, int64_t h,
                        int64_t w0, int64_t skip, int64_t per_group) {
  for (int64_t grp = 0; grp < g.groups; ++grp) {
    if (grp == skip) continue;
    add_products<T, S, M>(g, band, weight, acc, outs, n, h, w0, grp * per_group,
                          (grp + 1) * per_group);
  }
}

// Up to kBlock outputs `outs` at once: add_products or add_rest for
// M = 1 ... kBlock, as `count` says.
template <int T, int S, bool Rest>
DG_INLINE void sums_of(const Geometry& g, const Band& band, const float* weight,
                       typename Lanes<T>::Vec* acc, const int64_t* outs, int count, int64_t n,
                       int64_t h, int64_t w0, int64_t grp, int64_t per_group) {
  switch (count) {
#define DG_SUMS_CASE(M)                                                            \
  case M:                                                                          \
    if constexpr (Rest) {                                                          \
      add_rest<T, S, M>(g, band, weight, acc, outs, n, h, w0, grp, per_group);     \
    } else {                                                                       \
      add_products<T, S, M>(g, band, weight, acc, outs, n, h, w0, grp * per_group, \
                            (grp + 1) * per_group);                                \
    }                                                                              \
    break;
    DG_SUMS_CASE(4)
    DG_SUMS_CASE(3)
    DG_SUMS_CASE(2)
    DG_SUMS_CASE(1)
#undef DG_SUMS_CASE
    default:
      break;
  }
}

// The outputs `outs` taking input group grp (-1: none) over one tile:
// their partial sums, decisions, the rest of the sums of those whose gate
// opens at a position of the tile (kBlock at a time), the select and the
// map; stored into out[k * O + o] and, where wanted, dec[k * O + o].
// `scratch` holds a vector per output. Returns {open gates, outputs whose
// rest was computed}.
template <int T, int S>
DG_INLINE std::pair<int64_t, int64_t> group_of_tile(const Geometry& g,
                                                    const std::vector<int64_t>& outs, int64_t grp,
                                                    int64_t per_group, const Band& band,
                                                    const float* weight, const Gate& gate,
                                                    int64_t n, int64_t h, int64_t w0, int64_t valid,
                                                    float* out, uint8_t* dec, float* partial_sums,
                                                    float* full_sums, int64_t* opened) {
  using Vec = typename Lanes<T>::Vec;
  using IVec = typename Lanes<T>::IVec;
  const auto count = static_cast<int64_t>(outs.size());
  // Vectors kept in float buffers (std::vector does not align them).
  const auto partial = [&](int64_t i) { return load<Vec>(partial_sums + i * T); };
  for (int64_t i = 0; i < count; i += kBlock) {
    Vec sums[kBlock] = {};
    const int m = static_cast<int>(std::min<int64_t>(kBlock, count - i));
    if (grp >= 0) {
      sums_of<T, S, false>(g, band, weight, sums, outs.data() + i, m, n, h, w0, grp, per_group);
    }
    for (int j = 0; j < m; ++j) store(partial_sums + (i + j) * T, sums[j]);
  }
  IVec in_tile;
  for (int k = 0; k < T; ++k) in_tile[k] = k < valid ? -1 : 0;
  int64_t open_count = 0, opened_count = 0;
  for (int64_t i = 0; i < count; ++i) {
    const int64_t o = outs[i];
    const Vec z = gate.alpha * ((partial(i) - gate.mean[o]) * gate.inv_std[o] - gate.threshold[o]);
    const IVec open = (z > gate_decision::kLastClosedLogit) & in_tile;
    const int64_t lanes = lane_count<T>(open);
    open_count += lanes;
    if (lanes > 0) opened[opened_count++] = i;
    // Until the rest is added: the partial sum, selected where closed.
    store(full_sums + i * T, partial(i));
    if (dec != nullptr) {
      for (int64_t k = 0; k < valid; ++k) dec[k * g.out_channels + o] = open[k] & 1;
    }
  }
  // The rest of the opened outputs' sums, kBlock at a time.
  for (int64_t i = 0; i < opened_count; i += kBlock) {
    const int m = static_cast<int>(std::min<int64_t>(kBlock, opened_count - i));
    int64_t block_outs[kBlock];
    Vec sums[kBlock];
    for (int j = 0; j < m; ++j) {
      block_outs[j] = outs[opened[i + j]];
      sums[j] = partial(opened[i + j]);
    }
    sums_of<T, S, true>(g, band, weight, sums, block_outs, m, n, h, w0, grp, per_group);
    for (int j = 0; j < m; ++j) {
      const int64_t at = opened[i + j];
      const Vec z = gate.alpha * ((partial(at) - gate.mean[outs[at]]) * gate.inv_std[outs[at]] -
                                  gate.threshold[outs[at]]);
      store(full_sums + at * T, z > gate_decision::kLastClosedLogit ? sums[j] : partial(at));
    }
  }
  for (int64_t i = 0; i < count; ++i) {
    const int64_t o = outs[i];
    Vec y = load<Vec>(full_sums + i * T);
    if (gate.scale != nullptr) {
      y = y * gate.scale[o] + gate.shift[o];
      if (gate.relu) {
        y = y < 0.0f ? Vec{} : y;  // NaN stays
        if (gate.upper < std::numeric_limits<float>::infinity())
          y = y > gate.upper ? Vec{} + gate.upper : y;
      }
    }
    store(out + o * T, y);  // [O][T]: transposed once per tile
  }
  return {open_count, opened_count};
}

typedef float V8 __attribute__((vector_size(32)));
typedef int32_t I8 __attribute__((vector_size(32)));

// c[k][i] = r[i][k]: an 8x8 block transposed in three rounds of shuffles.
DG_INLINE void transpose8x8(const V8* r, V8* c) {
  V8 a[8], b[8];
  for (int i = 0; i < 8; i += 2) {
    a[i] = __builtin_shuffle(r[i], r[i + 1], I8{0, 8, 1, 9, 4, 12, 5, 13});
    a[i + 1] = __builtin_shuffle(r[i], r[i + 1], I8{2, 10, 3, 11, 6, 14, 7, 15});
  }
  for (int i = 0; i < 8; i += 4) {
    b[i] = __builtin_shuffle(a[i], a[i + 2], I8{0, 1, 8, 9, 4, 5, 12, 13});
    b[i + 1] = __builtin_shuffle(a[i], a[i + 2], I8{2, 3, 10, 11, 6, 7, 14, 15});
    b[i + 2] = __builtin_shuffle(a[i + 1], a[i + 3], I8{0, 1, 8, 9, 4, 5, 12, 13});
    b[i + 3] = __builtin_shuffle(a[i + 1], a[i + 3], I8{2, 3, 10, 11, 6, 7, 14, 15});
  }
  for (int i = 0; i < 4; ++i) {
    c[i] = __builtin_shuffle(b[i], b[i + 4], I8{0, 1, 2, 3, 8, 9, 10, 11});
    c[i + 4] = __builtin_shuffle(b[i], b[i + 4], I8{4, 5, 6, 7, 12, 13, 14, 15});
  }
}

// The tile's outputs, [O][T] in `from`, into y's [position][O] at `to`, for
// the first `valid` positions: in 8x8 blocks of vector shuffles where O is a
// multiple of 8.
template <int T>
DG_INLINE void store_tile(const float* from, int64_t out_channels, int64_t valid, float* to) {
  if (out_channels % 8 != 0) {
    for (int64_t k = 0; k < valid; ++k) {
      for (int64_t o = 0; o < out_channels; ++o) to[k * out_channels + o] = from[o * T + k];
    }
    return;
  }
  for (int64_t o0 = 0; o0 < out_channels; o0 += 8) {
    for (int64_t k0 = 0; k0 < valid; k0 += 8) {
      V8 r[8], c[8];
      for (int i = 0; i < 8; ++i) r[i] = load<V8>(from + (o0 + i) * T + k0);
      transpose8x8(r, c);
      const int64_t n = std::min<int64_t>(8, valid - k0);
      for (int64_t k = 0; k < n; ++k) store(to + (k0 + k) * out_channels + o0, c[k]);
    }
  }
}

// Transposes input row r (n * in_h + row) of the channels-last x into
// `slot` ([channel][phase][plane_w], its padding already zero): at stride 1
// with channels in eights, 8 columns x 8 channels at a time by vector
// shuffles (element by element, the strided stores had taken a quarter of
// the kernel's time where most gates are closed).
template <int S>
DG_INLINE void transpose_row(const Geometry& g, const float* x, int64_t r, float* slot) {
  const int64_t channels = g.channels, pw = g.plane_w;
  const float* in = x + r * g.in_w * channels;
  int64_t w = 0;
  if (S == 1 && channels % 8 == 0) {
    for (; w + 8 <= g.in_w; w += 8) {
      for (int64_t c0 = 0; c0 < channels; c0 += 8) {
        V8 rows[8], columns[8];
        for (int i = 0; i < 8; ++i) rows[i] = load<V8>(in + (w + i) * channels + c0);
        transpose8x8(rows, columns);
        for (int k = 0; k < 8; ++k) store(slot + (c0 + k) * pw + w + g.pad_w, columns[k]);
      }
    }
  }
  for (; w < g.in_w; ++w) {
    const int64_t col = w + g.pad_w;
    float* to = slot + (col % S) * pw + col / S;
    for (int64_t c = 0; c < channels; ++c) to[c * S * pw] = in[w * channels + c];
  }
}

// Output rows [first, last) (row = n * out_h + h), tiles of T positions.
// The input rows under an output row are transposed into three slots, each
// once for the consecutive output rows that read it; a fourth slot is zeros.
template <int T, int S>
DG_INLINE std::pair<int64_t, int64_t> rows_of(const Geometry& g, const Groups& groups,
                                              const float* x, const float* weight, const Gate& gate,
                                              float* y, uint8_t* decisions, int64_t first,
                                              int64_t last) {
  const int64_t out_channels = g.out_channels;
  RowSlots slots(g.channels * S * g.plane_w);
  std::vector<float> out(T * out_channels);
  std::vector<float> partial(out_channels * T), full(out_channels * T);
  std::vector<int64_t> opened(out_channels);
  int64_t open = 0, computed = 0;
  for (int64_t row = first; row < last; ++row) {
    const int64_t n = row / g.out_h, h = row % g.out_h;
    Band band{};
    slots.band(g, n, h, band.row, [&](int64_t r, float* slot) { transpose_row<S>(g, x, r, slot); });
    for (int64_t w0 = 0; w0 < g.out_w; w0 += T) {
      const int64_t valid = std::min<int64_t>(T, g.out_w - w0);
      const int64_t at = (row * g.out_w + w0) * out_channels;
      uint8_t* dec = decisions != nullptr ? decisions + at : nullptr;
      for (int64_t grp = 0; grp <= g.groups; ++grp) {
        const std::vector<int64_t>& outs = groups.outputs[grp];
        if (outs.empty()) continue;
        const auto [o, c] = group_of_tile<T, S>(
            g, outs, grp < g.groups ? grp : -1, groups.channels_per_group, band, weight, gate, n, h,
            w0, valid, out.data(), dec, partial.data(), full.data(), opened.data());
        open += o;
        computed += c;
      }
      store_tile<T>(out.data(), out_channels, valid, y + at);
    }
  }
  return {open, computed};
}

template <int T>
DG_INLINE std::pair<int64_t, int64_t> rows_at(const Geometry& g, const Groups& groups,
                                              const float* x, const float* weight, const Gate& gate,
                                              float* y, uint8_t* decisions, int64_t first,
                                              int64_t last) {
  if (g.stride_w == 1) return rows_of<T, 1>(g, groups, x, weight, gate, y, decisions, first, last);
  return rows_of<T, 2>(g, groups, x, weight, gate, y, decisions, first, last);
}

using Rows = std::pair<int64_t, int64_t> (*)(const Geometry&, const Groups&, const float*,
                                             const float*, const Gate&, float*, uint8_t*, int64_t,
                                             int64_t);

// rows() at each level: AVX-512 takes tiles of 16 positions where rows are
// wider than 8, AVX2 and the baseline tiles of 8.
#define DG_TILE_ROWS_AT(name, attributes, wide)                                      \
  attributes std::pair<int64_t, int64_t> name(                                       \
      const Geometry& g, const Groups& groups, const float* x, const float* weight,  \
      const Gate& gate, float* y, uint8_t* decisions, int64_t first, int64_t last) { \
    if (wide && g.tile == 16)                                                        \
      return rows_at<16>(g, groups, x, weight, gate, y, decisions, first, last);     \
    return rows_at<8>(g, groups, x, weight, gate, y, decisions, first, last);        \
  }
DG_TILE_ROWS_AT(rows_baseline, , false)
#if DNN_GATING_KERNEL_LEVELS
DG_TILE_ROWS_AT(rows_avx512, __attribute__((target("arch=x86-64-v4"))), true)
DG_TILE_ROWS_AT(rows_avx2, __attribute__((target("arch=x86-64-v3"))), false)
#endif
#undef DG_TILE_ROWS_AT

Rows rows_at_level() {
#if DNN_GATING_KERNEL_LEVELS
  return isa::at_level<Rows>(rows_avx512, rows_avx2, rows_baseline);
#else
  return rows_baseline;
#endif
}

// O floats of a per-channel tensor.
std::vector<float> per_channel(const torch::Tensor& t, int64_t channels) {
  TORCH_CHECK(t.numel() == channels, "tile_conv: a per-channel tensor has ", t.numel(),
              " values for ", channels, " channels");
  const torch::Tensor f = t.detach().to(torch::kFloat).contiguous().view({-1});
  return {f.data_ptr<float>(), f.data_ptr<float>() + channels};
}

}  // namespace

double relative_throughput() { return isa::level() == isa::Level::kAvx512 ? 0.55 : 0.8; }

bool supported(const torch::Tensor& weight, torch::IntArrayRef stride, torch::IntArrayRef padding) {
  return weight.dim() == 4 && weight.scalar_type() == torch::kFloat && weight.device().is_cpu() &&
         weight.size(2) == 3 && weight.size(3) == 3 && stride.size() == 2 &&
         stride[0] == stride[1] && (stride[0] == 1 || stride[0] == 2) && padding.size() == 2 &&
         padding[0] >= 0 && padding[1] >= 0 && padding[0] <= 2 && padding[1] <= 2;
}

Result gated(const torch::Tensor& x, const torch::Tensor& weight,
             const std::vector<std::vector<bool>>& blocks, torch::IntArrayRef stride,
             torch::IntArrayRef padding, const partial_conv::GateParameters& gate_parameters,
             const Affine* then, const torch::Tensor& decisions) {
  RECORD_FUNCTION("dnn_gating::tile_conv::gated", std::vector<c10::IValue>());
  TORCH_CHECK(supported(weight, stride, padding) && x.dim() == 4 &&
                  x.scalar_type() == torch::kFloat && x.device().is_cpu() &&
                  x.is_contiguous(at::MemoryFormat::ChannelsLast) && x.size(1) == weight.size(1) &&
                  !blocks.empty() && static_cast<int64_t>(blocks.size()) == weight.size(0) &&
                  x.size(1) % static_cast<int64_t>(blocks[0].size()) == 0,
              "tile_conv: input ", x.sizes(), " and weight ", weight.sizes(),
              " are not a supported convolution");
  Geometry g{};
  set_3x3(g, x, weight, stride, padding, "tile_conv");
  g.groups = static_cast<int64_t>(blocks[0].size());
  // Tiles of 16 positions where AVX-512 runs them (compiled in, rows wider
  // than 8), else 8.
  g.tile = DNN_GATING_KERNEL_LEVELS && isa::level() == isa::Level::kAvx512 && g.out_w > 8 ? 16 : 8;
  g.tiles_w = (g.out_w + g.tile - 1) / g.tile;
  // The last tile reads `tile` floats from its first column, plus 2 / stride.
  g.plane_w = std::max((g.in_w + 2 * g.pad_w + g.stride_w - 1) / g.stride_w,
                       g.tiles_w * g.tile + 2 / g.stride_w);
  Groups groups{std::vector<std::vector<int64_t>>(g.groups + 1), g.channels / g.groups};
  for (int64_t o = 0; o < g.out_channels; ++o) {
    int64_t taken = g.groups;
    for (int64_t grp = 0; grp < g.groups; ++grp) {
      if (blocks[o][grp]) taken = grp;
    }
    groups.outputs[taken].push_back(o);
  }
  const int64_t channels = g.out_channels;
  const std::vector<float> mean = per_channel(gate_parameters.running_mean, channels);
  std::vector<float> inv_std = per_channel(gate_parameters.running_var, channels);
  for (float& v : inv_std) v = 1.0f / std::sqrt(v + static_cast<float>(gate_parameters.eps));
  const std::vector<float> threshold = per_channel(gate_parameters.threshold, channels);
  const std::vector<float> scale = then ? per_channel(then->scale, channels) : std::vector<float>();
  const std::vector<float> shift = then ? per_channel(then->shift, channels) : std::vector<float>();
  const Gate gate{mean.data(),
                  inv_std.data(),
                  threshold.data(),
                  static_cast<float>(gate_parameters.alpha),
                  then ? scale.data() : nullptr,
                  then ? shift.data() : nullptr,
                  then != nullptr && then->relu,
                  then != nullptr ? then->upper : std::numeric_limits<float>::infinity()};
  Result result;
  result.y = torch::empty({g.batch, g.out_channels, g.out_h, g.out_w}, x.options(),
                          at::MemoryFormat::ChannelsLast);
  uint8_t* dp = nullptr;
  if (decisions.defined()) {
    TORCH_CHECK(decisions.scalar_type() == torch::kByte && decisions.sizes() == result.y.sizes() &&
                    decisions.is_contiguous(at::MemoryFormat::ChannelsLast),
                "tile_conv::gated: decisions must be a channels-last uint8 ", result.y.sizes(),
                ", got ", decisions.scalar_type(), " ", decisions.sizes());
    dp = decisions.data_ptr<uint8_t>();
  }
  const torch::Tensor w = weight.detach().contiguous();
  const Rows rows = rows_at_level();
  const float* xp = x.data_ptr<float>();
  const float* wp = w.data_ptr<float>();
  float* yp = result.y.data_ptr<float>();
  const auto [open, computed] = at::parallel_reduce(
      0, g.batch * g.out_h, 1, std::pair<int64_t, int64_t>{0, 0},
      [&](int64_t a, int64_t b, std::pair<int64_t, int64_t> acc) {
        const auto r = rows(g, groups, xp, wp, gate, yp, dp, a, b);
        return std::pair<int64_t, int64_t>{acc.first + r.first, acc.second + r.second};
      },
      [](std::pair<int64_t, int64_t> a, std::pair<int64_t, int64_t> b) {
        return std::pair<int64_t, int64_t>{a.first + b.first, a.second + b.second};
      });
  result.open = open;
  result.tiles_computed = computed;
  result.tiles = g.batch * g.out_h * g.tiles_w * g.out_channels;
  return result;
}

}  // namespace dnn_gating::kernels::tile_conv
