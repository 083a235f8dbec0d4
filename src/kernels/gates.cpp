#include "kernels/gates.h"

#include <ATen/Parallel.h>
#include <ATen/record_function.h>

#include <algorithm>
#include <cstring>
#include <numeric>
#include <vector>

#include "kernels/fusable.h"
#include "kernels/gate_decision.h"
#include "kernels/simd.h"

namespace dnn_gating::kernels::gates {
namespace {

using gate_decision::logit;
using gate_decision::sigmoid_above_half;

// Elements of one [N, C, ...] tensor grouped by plane: plane p = (n, c) covers
// elements [p * size, (p + 1) * size) and uses threshold c = p % channels.
struct Planes {
  int64_t count;
  int64_t size;
  int64_t channels;
};

Planes planes_of(const torch::Tensor& t) {
  TORCH_CHECK(t.dim() >= 2, "gate tensors need [N, C, ...], got ", t.sizes());
  const int64_t count = t.size(0) * t.size(1);
  return {count, count == 0 ? 0 : t.numel() / count, t.size(1)};
}

// Calls fn(plane, channel, begin, end) for every plane, in parallel.
template <typename Fn>
void for_each_plane(const Planes& planes, Fn fn) {
  const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(planes.size, 1));
  at::parallel_for(0, planes.count, grain, [&](int64_t first, int64_t last) {
    for (int64_t p = first; p < last; ++p) {
      fn(p, p % planes.channels, p * planes.size, (p + 1) * planes.size);
    }
  });
}

// The threshold as C contiguous floats.
torch::Tensor per_channel(const torch::Tensor& threshold, int64_t channels) {
  TORCH_CHECK(threshold.numel() == channels, "gate threshold has ", threshold.numel(),
              " values for ", channels, " channels");
  return threshold.detach().reshape({channels}).contiguous();
}

inline float pg_mix(float msb, float lsb, float open) { return msb + open * lsb; }
inline float cg_mix(float full, float partial, float open) {
  return full * open + partial * (1.0f - open);
}

DNN_GATING_SIMD_CLONES
void logit_kernel(const float* __restrict a, float* __restrict z, int64_t begin, int64_t end,
                  float threshold, float alpha) {
  for (int64_t i = begin; i < end; ++i) z[i] = logit(a[i], threshold, alpha);
}

// logit_kernel for a block of channels-last positions, `t` the channels'
// thresholds repeated over the block.
DNN_GATING_SIMD_CLONES
void logit_cl_kernel(const float* __restrict a, float* __restrict z, int64_t size,
                     const float* __restrict t, float alpha) {
  for (int64_t i = 0; i < size; ++i) z[i] = logit(a[i], t[i], alpha);
}

// The shape the selections share: y[i] = mix(a[i], b[i], open) over
// [begin, end) with open = 1 where is_open(i), else 0; returns the number of
// open gates. Inlined into each clone below, so that each vectorises as one
// loop with that clone's ISA.
template <typename IsOpen, typename Mix>
[[gnu::always_inline]] inline float select_run(const float* __restrict a, const float* __restrict b,
                                               float* __restrict y, int64_t begin, int64_t end,
                                               IsOpen is_open, Mix mix) {
  return simd::lane_sum(begin, end, [=](int64_t i) {
    const float open = is_open(i) ? 1.0f : 0.0f;
    y[i] = mix(a[i], b[i], open);
    return open;
  });
}

constexpr auto kPgMix = [](float msb, float lsb, float open) { return pg_mix(msb, lsb, open); };
constexpr auto kCgMix = [](float full, float partial, float open) {
  return cg_mix(full, partial, open);
};

// The original opens the CG gate where s - 0.5 > 0, which is s > 0.5.
DNN_GATING_SIMD_CLONES
float cg_select_kernel(const float* __restrict s, const float* __restrict full,
                       const float* __restrict partial, float* __restrict y, int64_t begin,
                       int64_t end) {
  return select_run(
      full, partial, y, begin, end, [=](int64_t i) { return s[i] > 0.5f; }, kCgMix);
}

// Over [begin, end): y with the gates decided from the logit; returns the
// number of open gates.
DNN_GATING_SIMD_CLONES
float pg_infer_kernel(const float* __restrict gate_input, const float* __restrict msb,
                      const float* __restrict lsb, float* __restrict y, int64_t begin, int64_t end,
                      float threshold, float alpha) {
  return select_run(
      msb, lsb, y, begin, end,
      [=](int64_t i) { return sigmoid_above_half(logit(gate_input[i], threshold, alpha)); },
      kPgMix);
}

DNN_GATING_SIMD_CLONES
float cg_infer_kernel(const float* __restrict gate_input, const float* __restrict full,
                      const float* __restrict partial, float* __restrict y, int64_t begin,
                      int64_t end, float threshold, float alpha) {
  return select_run(
      full, partial, y, begin, end,
      [=](int64_t i) { return sigmoid_above_half(logit(gate_input[i], threshold, alpha)); },
      kCgMix);
}

// Writes open[i] = 1 where plane element i's gate opens, else 0; returns the
// number of open gates.
DNN_GATING_SIMD_CLONES
float open_plane_kernel(const float* __restrict gate_input, uint8_t* __restrict open, int64_t size,
                        float threshold, float alpha) {
  return simd::lane_sum(0, size, [=](int64_t i) {
    const bool on = sigmoid_above_half(logit(gate_input[i], threshold, alpha));
    open[i] = on ? 1 : 0;
    return on ? 1.0f : 0.0f;
  });
}

// Channels-last tensors ([N, H, W, C] in memory) are taken in blocks of
// whole positions, [0, size) of the block's elements, with `t` the channels'
// thresholds repeated over the block. Writes open[i] = 1 where the gate opens;
// returns the number of open gates.
DNN_GATING_SIMD_CLONES
float open_cl_kernel(const float* __restrict gate_input, float* __restrict open, int64_t size,
                     const float* __restrict t, float alpha) {
  return simd::lane_sum(0, size, [=](int64_t i) {
    const float on = sigmoid_above_half(logit(gate_input[i], t[i], alpha)) ? 1.0f : 0.0f;
    open[i] = on;
    return on;
  });
}

// bytes[i] = values[i] for 0/1 floats (a separate loop: mixed with the float
// decisions, the byte stores keep GCC to narrow vectors).
DNN_GATING_SIMD_CLONES
void to_bytes(const float* __restrict values, uint8_t* __restrict bytes, int64_t size) {
  for (int64_t i = 0; i < size; ++i) bytes[i] = static_cast<uint8_t>(values[i]);
}

// Bits c - first of the 0/1 bytes d[c], c in [first, min(first + 64, end)).
// Eight bytes at a time: multiplying by 0x0102040810204080 gathers the low
// bits of bytes 0..7 into bits 56..63 (little-endian byte order).
inline uint64_t pack_bits(const uint8_t* d, int64_t first, int64_t end) {
  const int64_t last = std::min(end, first + 64);
  uint64_t bits = 0;
  int64_t c = first;
  for (; c + 8 <= last; c += 8) {
    uint64_t v = 0;
    std::memcpy(&v, d + c, 8);
    bits |= ((v * 0x0102040810204080ULL) >> 56) << (c - first);
  }
  for (; c < last; ++c) bits |= uint64_t{d[c]} << (c - first);
  return bits;
}

// pg_infer_kernel and cg_infer_kernel for a block of channels-last positions
// (as open_cl_kernel).
DNN_GATING_SIMD_CLONES
float pg_infer_cl_kernel(const float* __restrict gate_input, const float* __restrict msb,
                         const float* __restrict lsb, float* __restrict y, int64_t size,
                         const float* __restrict t, float alpha) {
  return simd::lane_sum(0, size, [=](int64_t i) {
    const float open = sigmoid_above_half(logit(gate_input[i], t[i], alpha)) ? 1.0f : 0.0f;
    y[i] = pg_mix(msb[i], lsb[i], open);
    return open;
  });
}

// PG's selection for a pass with a backward one, from the logit as the
// inference kernels decide: y = msb + open * lsb, the gate's backward factor
// lsb (1 - s) s alpha (0 where sparse_bp cuts the path; s the polynomial
// sigmoid, within 2 ulp of ATen's, which no decision reads) and the gate;
// returns the number of open gates. `threshold(i)` is element i's.
template <typename Threshold>
[[gnu::always_inline]] inline float pg_train_run(const float* __restrict msb,
                                                 const float* __restrict lsb, float* __restrict y,
                                                 float* __restrict factor, uint8_t* __restrict gate,
                                                 int64_t begin, int64_t end, Threshold threshold,
                                                 float alpha, bool sparse_bp) {
  return simd::lane_sum(begin, end, [=](int64_t i) {
    const float z = logit(msb[i], threshold(i), alpha);
    const float open = sigmoid_above_half(z) ? 1.0f : 0.0f;
    y[i] = pg_mix(msb[i], lsb[i], open);
    const float s = gate_decision::sigmoid(z);
    factor[i] =
        sparse_bp && gate_decision::sigmoid_below_half(z) ? 0.0f : lsb[i] * (1.0f - s) * s * alpha;
    gate[i] = static_cast<uint8_t>(open);
    return open;
  });
}

// pg_train_run over [begin, end) of one channel's plane.
DNN_GATING_SIMD_CLONES
float pg_train_kernel(const float* __restrict msb, const float* __restrict lsb, float* __restrict y,
                      float* __restrict factor, uint8_t* __restrict gate, int64_t begin,
                      int64_t end, float threshold, float alpha, bool sparse_bp) {
  return pg_train_run(
      msb, lsb, y, factor, gate, begin, end, [=](int64_t) { return threshold; }, alpha, sparse_bp);
}

// pg_train_run over a block of channels-last positions, `t` the channels'
// thresholds repeated over the block.
DNN_GATING_SIMD_CLONES
float pg_train_cl_kernel(const float* __restrict msb, const float* __restrict lsb,
                         float* __restrict y, float* __restrict factor, uint8_t* __restrict gate,
                         int64_t size, const float* __restrict t, float alpha, bool sparse_bp) {
  return pg_train_run(
      msb, lsb, y, factor, gate, 0, size, [=](int64_t i) { return t[i]; }, alpha, sparse_bp);
}

// pg_infer_cl_kernel with the map that follows the layer applied as y is
// written: y * scale + shift per channel (tiled as t is), then a ReLU and a
// clip at `upper` where `relu` (ATen's batch_norm, relu and clamp_max).
DNN_GATING_SIMD_CLONES
float pg_infer_mapped_cl_kernel(const float* __restrict gate_input, const float* __restrict msb,
                                const float* __restrict lsb, float* __restrict y, int64_t size,
                                const float* __restrict t, float alpha,
                                const float* __restrict scale, const float* __restrict shift,
                                bool relu, float upper) {
  return simd::lane_sum(0, size, [=](int64_t i) {
    const float open = sigmoid_above_half(logit(gate_input[i], t[i], alpha)) ? 1.0f : 0.0f;
    y[i] = activated(pg_mix(msb[i], lsb[i], open) * scale[i] + shift[i], relu, upper);
    return open;
  });
}

DNN_GATING_SIMD_CLONES
float cg_infer_cl_kernel(const float* __restrict gate_input, const float* __restrict full,
                         const float* __restrict partial, float* __restrict y, int64_t size,
                         const float* __restrict t, float alpha) {
  return simd::lane_sum(0, size, [=](int64_t i) {
    const float open = sigmoid_above_half(logit(gate_input[i], t[i], alpha)) ? 1.0f : 0.0f;
    y[i] = cg_mix(full[i], partial[i], open);
    return open;
  });
}

// Positions per block of the channels-last kernels.
constexpr int64_t kBlockPositions = 256;

// The channel thresholds repeated for a block of positions.
std::vector<float> tiled(const torch::Tensor& t, int64_t channels) {
  std::vector<float> out(kBlockPositions * channels);
  const float* tp = t.data_ptr<float>();
  for (size_t i = 0; i < out.size(); ++i) out[i] = tp[i % channels];
  return out;
}

// Calls fn(first, last) for blocks of positions of a channels-last tensor in
// parallel, summing what it returns.
template <typename Fn>
int64_t sum_over_blocks(int64_t positions, Fn fn) {
  return at::parallel_reduce(
      0, positions, kBlockPositions, int64_t{0},
      [&](int64_t first, int64_t last, int64_t acc) {
        for (int64_t b = first; b < last; b += kBlockPositions) {
          acc += fn(b, std::min(last, b + kBlockPositions));
        }
        return acc;
      },
      std::plus<int64_t>());
}

// dL/d(gate input) through the sigmoid, as ATen's chain computes it: the
// straight-through step passes dL/ds (cut where s < 0.5 under sparse_bp),
// sigmoid_backward gives g * (1 - s) * s, the scalar product times alpha.
inline float sigmoid_path(float grad_s, float s, float alpha, bool sparse_bp) {
  const float passed = (sparse_bp && s < 0.5f) ? 0.0f : grad_s;
  return passed * (1.0f - s) * s * alpha;
}

// Returns the plane's sum of the sigmoid-path gradient dL/dy * factor.
DNN_GATING_SIMD_CLONES
float pg_backward_kernel(const float* __restrict gy, const float* __restrict factor,
                         const uint8_t* __restrict gate, float* __restrict grad_msb,
                         float* __restrict grad_lsb, int64_t begin, int64_t end) {
  return simd::lane_sum(begin, end, [=](int64_t i) {
    const float through_gate = gy[i] * factor[i];
    grad_msb[i] = gy[i] + through_gate;
    grad_lsb[i] = gate[i] != 0 ? gy[i] : 0.0f;
    return through_gate;
  });
}

// pg_backward_kernel keeping each element's sigmoid-path term in
// through[i - begin] (a channels-last block's, to be summed per channel).
DNN_GATING_SIMD_CLONES
void pg_backward_cl_kernel(const float* __restrict gy, const float* __restrict factor,
                           const uint8_t* __restrict gate, float* __restrict grad_msb,
                           float* __restrict grad_lsb, float* __restrict through, int64_t begin,
                           int64_t end) {
  for (int64_t i = begin; i < end; ++i) {
    const float through_gate = gy[i] * factor[i];
    grad_msb[i] = gy[i] + through_gate;
    grad_lsb[i] = gate[i] != 0 ? gy[i] : 0.0f;
    through[i - begin] = through_gate;
  }
}

DNN_GATING_SIMD_CLONES
float cg_backward_kernel(const float* __restrict gy, const float* __restrict s,
                         const float* __restrict full, const float* __restrict partial,
                         float* __restrict grad_full, float* __restrict grad_partial,
                         float* __restrict grad_a, int64_t begin, int64_t end, float alpha,
                         bool sparse_bp) {
  return simd::lane_sum(begin, end, [=](int64_t i) {
    const float open = s[i] > 0.5f ? 1.0f : 0.0f;
    grad_full[i] = gy[i] * open;
    grad_partial[i] = gy[i] * (1.0f - open);
    const float through_gate =
        sigmoid_path(gy[i] * full[i] - gy[i] * partial[i], s[i], alpha, sparse_bp);
    grad_a[i] = through_gate;
    return through_gate;
  });
}

// Sums per-plane values [N * C] to per-channel threshold gradients [C],
// negated (the threshold enters as a - threshold).
torch::Tensor threshold_grad(const torch::Tensor& plane_sums, const Planes& planes) {
  return -plane_sums.view({-1, planes.channels}).sum(0).to(torch::kFloat);
}

// The threshold gradient of a channels-last gate: `backward(begin, end,
// scratch)` computes elements [begin, end) of the gradients and returns
// where their sigmoid-path terms lie, term k of element begin + k (CG: in
// dL/da; PG: in `scratch`, room for end - begin floats). Channels alternate
// within a block of positions, so each block's terms are summed per channel
// (in double) while in cache, then the blocks' sums added up and negated.
template <typename Backward>
torch::Tensor channel_sums(const torch::Tensor& gy, Backward backward) {
  const int64_t channels = gy.size(1);
  const int64_t positions = gy.numel() / channels;
  const int64_t blocks = (positions + kBlockPositions - 1) / kBlockPositions;
  torch::Tensor block_sums = torch::zeros({blocks, channels}, gy.options().dtype(torch::kDouble));
  double* bs = block_sums.data_ptr<double>();
  at::parallel_for(0, blocks, 1, [&](int64_t first_block, int64_t last_block) {
    std::vector<float> scratch(kBlockPositions * channels);
    for (int64_t b = first_block; b < last_block; ++b) {
      const int64_t first = b * kBlockPositions;
      const int64_t last = std::min(positions, first + kBlockPositions);
      const float* term = backward(first * channels, last * channels, scratch.data());
      double* acc = bs + b * channels;
      for (int64_t k = 0; k < (last - first) * channels; k += channels) {
        for (int64_t c = 0; c < channels; ++c) acc[c] += term[k + c];
      }
    }
  });
  return -block_sums.sum(0).to(torch::kFloat);
}

// Runs a select kernel kernel(s, a, b, y, begin, end) over the whole tensor;
// returns y and the number of open gates.
using SelectKernel = float (*)(const float*, const float*, const float*, float*, int64_t, int64_t);

std::pair<torch::Tensor, int64_t> run_select(const torch::Tensor& s, const torch::Tensor& a_in,
                                             const torch::Tensor& b_in, SelectKernel kernel) {
  const torch::Tensor a = laid_like(a_in, s);
  const torch::Tensor b = laid_like(b_in, s);
  torch::Tensor y = torch::empty_like(a);
  const float* sp = s.data_ptr<float>();
  const float* ap = a.data_ptr<float>();
  const float* bp = b.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  const int64_t open = at::parallel_reduce(
      0, y.numel(), 32768, int64_t{0},
      [=](int64_t begin, int64_t end, int64_t acc) {
        return acc + static_cast<int64_t>(kernel(sp, ap, bp, yp, begin, end));
      },
      std::plus<int64_t>());
  return {y, open};
}

// Runs an inference kernel kernel(gate_input, a, b, y, begin, end, threshold,
// alpha) plane by plane; returns y and the number of open gates.
using InferKernel = float (*)(const float*, const float*, const float*, float*, int64_t, int64_t,
                              float, float);

std::pair<torch::Tensor, int64_t> run_inference(const torch::Tensor& gate_input_in,
                                                const torch::Tensor& a_in,
                                                const torch::Tensor& b_in,
                                                const torch::Tensor& threshold, double alpha,
                                                InferKernel kernel) {
  const torch::Tensor gate_input = gate_input_in.contiguous();
  const torch::Tensor a = a_in.contiguous();
  const torch::Tensor b = b_in.contiguous();
  const Planes planes = planes_of(a);
  const torch::Tensor t = per_channel(threshold, planes.channels);
  torch::Tensor y = torch::empty_like(a);
  const float* gp = gate_input.data_ptr<float>();
  const float* ap = a.data_ptr<float>();
  const float* bp = b.data_ptr<float>();
  const float* tp = t.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  const auto alpha_f = static_cast<float>(alpha);
  std::vector<int64_t> open(planes.count);
  for_each_plane(planes, [&](int64_t p, int64_t c, int64_t begin, int64_t end) {
    open[p] = static_cast<int64_t>(kernel(gp, ap, bp, yp, begin, end, tp[c], alpha_f));
  });
  return {y, std::accumulate(open.begin(), open.end(), int64_t{0})};
}

}  // namespace

torch::autograd::variable_list gate_outputs(torch::autograd::AutogradContext* ctx, torch::Tensor y,
                                            int64_t open, double alpha, bool sparse_bp) {
  ctx->saved_data["alpha"] = alpha;
  ctx->saved_data["sparse_bp"] = sparse_bp;
  torch::Tensor count = torch::scalar_tensor(open, torch::kLong);
  ctx->mark_non_differentiable({count});
  return {std::move(y), count};
}

torch::Tensor gate_sigmoid(const torch::Tensor& a_in, const torch::Tensor& threshold,
                           double alpha) {
  const torch::Tensor a = dense(a_in);
  const Planes planes = planes_of(a);
  const torch::Tensor t = per_channel(threshold, planes.channels);
  torch::Tensor z = torch::empty_like(a);  // in a's layout
  const float* ap = a.data_ptr<float>();
  const float* tp = t.data_ptr<float>();
  float* zp = z.data_ptr<float>();
  const auto alpha_f = static_cast<float>(alpha);
  if (channels_last(a)) {
    const int64_t channels = planes.channels;
    const std::vector<float> tt = tiled(t, channels);
    sum_over_blocks(a.numel() / channels, [&](int64_t first, int64_t last) {
      logit_cl_kernel(ap + first * channels, zp + first * channels, (last - first) * channels,
                      tt.data(), alpha_f);
      return int64_t{0};
    });
  } else {
    for_each_plane(planes, [=](int64_t, int64_t c, int64_t begin, int64_t end) {
      logit_kernel(ap, zp, begin, end, tp[c], alpha_f);
    });
  }
  return z.sigmoid_();
}

PgSelected pg_select_training(const torch::Tensor& msb_in, const torch::Tensor& lsb_in,
                              const torch::Tensor& threshold, double alpha, bool sparse_bp) {
  const torch::Tensor msb = dense(msb_in);
  const torch::Tensor lsb = laid_like(lsb_in, msb);
  const Planes planes = planes_of(msb);
  const torch::Tensor t = per_channel(threshold, planes.channels);
  PgSelected out;
  out.y = torch::empty_like(msb);  // (in msb's layout, as the two below)
  out.gate.factor = torch::empty_like(msb);
  out.gate.open = torch::empty_like(msb, msb.options().dtype(torch::kByte));
  const float* mp = msb.data_ptr<float>();
  const float* lp = lsb.data_ptr<float>();
  float* yp = out.y.data_ptr<float>();
  float* fp = out.gate.factor.data_ptr<float>();
  uint8_t* op = out.gate.open.data_ptr<uint8_t>();
  const auto alpha_f = static_cast<float>(alpha);
  if (channels_last(msb)) {
    const int64_t channels = planes.channels;
    const std::vector<float> tt = tiled(t, channels);
    out.open = sum_over_blocks(msb.numel() / channels, [&](int64_t first, int64_t last) {
      const int64_t o = first * channels;
      return static_cast<int64_t>(pg_train_cl_kernel(mp + o, lp + o, yp + o, fp + o, op + o,
                                                     (last - first) * channels, tt.data(), alpha_f,
                                                     sparse_bp));
    });
    return out;
  }
  const float* tp = t.data_ptr<float>();
  std::vector<int64_t> open(planes.count);
  for_each_plane(planes, [&](int64_t p, int64_t c, int64_t begin, int64_t end) {
    open[p] = static_cast<int64_t>(
        pg_train_kernel(mp, lp, yp, fp, op, begin, end, tp[c], alpha_f, sparse_bp));
  });
  out.open = std::accumulate(open.begin(), open.end(), int64_t{0});
  return out;
}

std::pair<torch::Tensor, int64_t> cg_select(const torch::Tensor& s, const torch::Tensor& full,
                                            const torch::Tensor& partial) {
  return run_select(s, full, partial, cg_select_kernel);
}

namespace {

using InferClKernel = float (*)(const float*, const float*, const float*, float*, int64_t,
                                const float*, float);

// The selection of `run_inference` on channels-last tensors, by blocks of
// positions; NCHW (or mixed) tensors take run_inference itself.
std::pair<torch::Tensor, int64_t> infer_select(const torch::Tensor& gate_input,
                                               const torch::Tensor& a, const torch::Tensor& b,
                                               const torch::Tensor& threshold, double alpha,
                                               InferKernel kernel, InferClKernel cl_kernel) {
  if (!channels_last(gate_input) || !channels_last(a) || !channels_last(b)) {
    return run_inference(gate_input, a, b, threshold, alpha, kernel);
  }
  const int64_t channels = a.size(1);
  const torch::Tensor t = per_channel(threshold, channels);
  torch::Tensor y = torch::empty_like(a);  // channels-last too
  const float* gp = gate_input.data_ptr<float>();
  const float* ap = a.data_ptr<float>();
  const float* bp = b.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  const auto alpha_f = static_cast<float>(alpha);
  const std::vector<float> tt = tiled(t, channels);
  const int64_t open = sum_over_blocks(a.numel() / channels, [&](int64_t first, int64_t last) {
    const int64_t o = first * channels;
    return static_cast<int64_t>(
        cl_kernel(gp + o, ap + o, bp + o, yp + o, (last - first) * channels, tt.data(), alpha_f));
  });
  return {y, open};
}

}  // namespace

std::pair<torch::Tensor, int64_t> pg_select_inference(const torch::Tensor& msb,
                                                      const torch::Tensor& lsb,
                                                      const torch::Tensor& threshold,
                                                      double alpha) {
  RECORD_FUNCTION("dnn_gating::pg_select_inference", std::vector<c10::IValue>());
  return infer_select(msb, msb, lsb, threshold, alpha, pg_infer_kernel, pg_infer_cl_kernel);
}

std::pair<torch::Tensor, int64_t> pg_select_inference(const torch::Tensor& msb,
                                                      const torch::Tensor& lsb,
                                                      const torch::Tensor& threshold, double alpha,
                                                      const Affine& then) {
  RECORD_FUNCTION("dnn_gating::pg_select_inference", std::vector<c10::IValue>());
  const int64_t channels = msb.size(1);
  if (!channels_last(msb) || !channels_last(lsb) || then.scale.numel() != channels ||
      then.shift.numel() != channels) {
    auto result = pg_select_inference(msb, lsb, threshold, alpha);
    apply_in_place(then, result.first);
    return result;
  }
  const torch::Tensor t = per_channel(threshold, channels);
  torch::Tensor y = torch::empty_like(msb);  // channels-last too
  const float* gp = msb.data_ptr<float>();
  const float* lp = lsb.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  const auto alpha_f = static_cast<float>(alpha);
  const std::vector<float> tt = tiled(t, channels);
  const std::vector<float> scale =
      tiled(then.scale.detach().to(torch::kFloat).contiguous(), channels);
  const std::vector<float> shift =
      tiled(then.shift.detach().to(torch::kFloat).contiguous(), channels);
  const int64_t open = sum_over_blocks(msb.numel() / channels, [&](int64_t first, int64_t last) {
    const int64_t o = first * channels;
    return static_cast<int64_t>(pg_infer_mapped_cl_kernel(
        gp + o, gp + o, lp + o, yp + o, (last - first) * channels, tt.data(), alpha_f, scale.data(),
        shift.data(), then.relu, then.upper));
  });
  return {y, open};
}

std::pair<torch::Tensor, int64_t> cg_select_inference(const torch::Tensor& full,
                                                      const torch::Tensor& partial,
                                                      const torch::Tensor& gate_input,
                                                      const torch::Tensor& threshold,
                                                      double alpha) {
  RECORD_FUNCTION("dnn_gating::cg_select_inference", std::vector<c10::IValue>());
  return infer_select(gate_input, full, partial, threshold, alpha, cg_infer_kernel,
                      cg_infer_cl_kernel);
}

sparse_conv::OpenOutputs open_outputs(const torch::Tensor& gate_input_in,
                                      const torch::Tensor& threshold, double alpha) {
  RECORD_FUNCTION("dnn_gating::open_outputs", std::vector<c10::IValue>());
  TORCH_CHECK(gate_input_in.dim() == 4, "open_outputs needs an [N, C, H, W] gate input, got ",
              gate_input_in.sizes());
  const bool cl = channels_last(gate_input_in);
  const torch::Tensor gate_input = cl ? gate_input_in : gate_input_in.contiguous();
  sparse_conv::OpenOutputs open = sparse_conv::OpenOutputs::none(gate_input.sizes());
  const int64_t n = gate_input.size(0), c = gate_input.size(1);
  const int64_t plane = gate_input.size(2) * gate_input.size(3);
  const int64_t per = open.words_per_position();
  const torch::Tensor t = per_channel(threshold, c);
  const float* gp = gate_input.data_ptr<float>();
  const float* tp = t.data_ptr<float>();
  auto* wp = reinterpret_cast<uint64_t*>(open.words.data_ptr<int64_t>());
  const auto alpha_f = static_cast<float>(alpha);
  if (cl) {  // the decisions of a block of positions, then their bits (every word written)
    open.words = torch::empty_like(open.words);
    wp = reinterpret_cast<uint64_t*>(open.words.data_ptr<int64_t>());
    const std::vector<float> tt = tiled(t, c);
    open.count = sum_over_blocks(n * plane, [&](int64_t first, int64_t last) {
      thread_local std::vector<float> decided;
      thread_local std::vector<uint8_t> on;
      decided.resize(kBlockPositions * c);
      on.resize(kBlockPositions * c);
      const int64_t size = (last - first) * c;
      const auto count = static_cast<int64_t>(
          open_cl_kernel(gp + first * c, decided.data(), size, tt.data(), alpha_f));
      to_bytes(decided.data(), on.data(), size);
      for (int64_t p = first; p < last; ++p) {
        const uint8_t* d = on.data() + (p - first) * c;
        for (int64_t k = 0; k < per; ++k) wp[p * per + k] = pack_bits(d, k * 64, c);
      }
      return count;
    });
    return open;
  }
  // One image per task (the channels of a position share its words): each
  // plane's decisions, then their bits.
  open.count = at::parallel_reduce(
      0, n, 1, int64_t{0},
      [&](int64_t first, int64_t last, int64_t acc) {
        std::vector<uint8_t> on(plane);
        for (int64_t img = first; img < last; ++img) {
          uint64_t* words = wp + img * plane * per;
          for (int64_t ch = 0; ch < c; ++ch) {
            acc += static_cast<int64_t>(
                open_plane_kernel(gp + (img * c + ch) * plane, on.data(), plane, tp[ch], alpha_f));
            const int64_t k = ch / 64, shift = ch % 64;
            for (int64_t i = 0; i < plane; ++i) words[i * per + k] |= uint64_t{on[i]} << shift;
          }
        }
        return acc;
      },
      std::plus<int64_t>());
  return open;
}

torch::Tensor pg_select_backward(const torch::Tensor& grad_y_in, const PgGateFactors& gate,
                                 const torch::Tensor& grad_msb, const torch::Tensor& grad_lsb) {
  const torch::Tensor& factor = gate.factor;
  const torch::Tensor gy = laid_like(grad_y_in, factor);
  const Planes planes = planes_of(gy);
  const float* gp = gy.data_ptr<float>();
  const float* fp = factor.data_ptr<float>();
  const uint8_t* op = gate.open.data_ptr<uint8_t>();
  float* gm = grad_msb.data_ptr<float>();
  float* gl = grad_lsb.data_ptr<float>();
  if (channels_last(gy)) {
    TORCH_CHECK(channels_last(grad_msb) && channels_last(grad_lsb),
                "pg_select_backward: the gradients must be laid out as the factors");
    return channel_sums(gy, [=](int64_t begin, int64_t end, float* scratch) {
      pg_backward_cl_kernel(gp, fp, op, gm, gl, scratch, begin, end);
      return static_cast<const float*>(scratch);
    });
  }
  torch::Tensor sums = torch::empty({planes.count}, gy.options().dtype(torch::kDouble));
  double* out = sums.data_ptr<double>();
  for_each_plane(planes, [=](int64_t p, int64_t, int64_t begin, int64_t end) {
    out[p] = pg_backward_kernel(gp, fp, op, gm, gl, begin, end);
  });
  return threshold_grad(sums, planes);
}

namespace {

// The CG gate's backward pass: its inputs laid out as s, its three gradient
// buffers (dL/dfull, dL/dpartial's mixing term, dL/da), and
// cg_backward_kernel over elements [begin, end) of them.
struct CgBackward {
  CgBackward(const torch::Tensor& grad_y, const torch::Tensor& s_in, const torch::Tensor& full_in,
             const torch::Tensor& partial_in, double alpha_in, bool sparse_bp_in)
      : gy(laid_like(grad_y, s_in)),
        s(s_in),
        full(laid_like(full_in, s_in)),
        partial(laid_like(partial_in, s_in)),
        grad_full(torch::empty_like(gy)),
        grad_partial(torch::empty_like(gy)),
        grad_a(torch::empty_like(gy)),
        alpha(static_cast<float>(alpha_in)),
        sparse_bp(sparse_bp_in) {}

  // Returns the sum of the sigmoid-path terms over [begin, end).
  float run(int64_t begin, int64_t end) const {
    return cg_backward_kernel(gy.data_ptr<float>(), s.data_ptr<float>(), full.data_ptr<float>(),
                              partial.data_ptr<float>(), grad_full.data_ptr<float>(),
                              grad_partial.data_ptr<float>(), grad_a.data_ptr<float>(), begin, end,
                              alpha, sparse_bp);
  }

  torch::Tensor gy, s, full, partial;
  torch::Tensor grad_full, grad_partial, grad_a;
  float alpha;
  bool sparse_bp;
};

}  // namespace

std::tuple<torch::Tensor, torch::Tensor, torch::Tensor, torch::Tensor> cg_select_backward(
    const torch::Tensor& grad_y, const torch::Tensor& s, const torch::Tensor& full,
    const torch::Tensor& partial, double alpha, bool sparse_bp) {
  const CgBackward b(grad_y, s, full, partial, alpha, sparse_bp);
  const float* ga = b.grad_a.data_ptr<float>();
  if (channels_last(b.gy)) {
    return {b.grad_full, b.grad_partial, b.grad_a,
            channel_sums(b.gy, [&](int64_t begin, int64_t end, float*) {
              b.run(begin, end);
              return ga + begin;
            })};
  }
  const Planes planes = planes_of(b.gy);
  torch::Tensor sums = torch::empty({planes.count}, b.gy.options().dtype(torch::kDouble));
  double* out = sums.data_ptr<double>();
  for_each_plane(
      planes, [&](int64_t p, int64_t, int64_t begin, int64_t end) { out[p] = b.run(begin, end); });
  return {b.grad_full, b.grad_partial, b.grad_a, threshold_grad(sums, planes)};
}

namespace {

// The normalised gate's logit, one definition for the forward pass that
// decides the gates and the backward pass that decides them again: both
// must compute the same bits.
inline float normalised_logit(float partial, float mean, float inv_std, float threshold,
                              float alpha) {
  return logit((partial - mean) * inv_std, threshold, alpha);
}

// The normalised gate over whole positions of a channels-last block, the
// per-channel values C apart: y and the number of open gates.
DNN_GATING_SIMD_CLONES
int64_t cg_normalised_select_kernel(const float* __restrict full, const float* __restrict partial,
                                    float* __restrict y, int64_t positions, int64_t channels,
                                    const float* __restrict mean, const float* __restrict inv_std,
                                    const float* __restrict threshold, float alpha) {
  int64_t open_count = 0;
  for (int64_t q = 0; q < positions; ++q) {
    const int64_t k = q * channels;
#pragma omp simd reduction(+ : open_count)
    for (int64_t c = 0; c < channels; ++c) {
      const float z = normalised_logit(partial[k + c], mean[c], inv_std[c], threshold[c], alpha);
      const bool open = sigmoid_above_half(z);
      y[k + c] = cg_mix(full[k + c], partial[k + c], open ? 1.0f : 0.0f);
      open_count += open ? 1 : 0;
    }
  }
  return open_count;
}

// The normalised gate's gradients over whole positions: dL/dfull, the
// mixing term of dL/dpartial and dL/da (a the normalised partial sum), the
// logit and sigmoid computed again as the forward pass computed them.
DNN_GATING_SIMD_CLONES
void cg_normalised_backward_kernel(const float* __restrict gy, const float* __restrict full,
                                   const float* __restrict partial, float* __restrict grad_full,
                                   float* __restrict grad_partial, float* __restrict grad_a,
                                   int64_t positions, int64_t channels,
                                   const float* __restrict mean, const float* __restrict inv_std,
                                   const float* __restrict threshold, float alpha, bool sparse_bp) {
  for (int64_t q = 0; q < positions; ++q) {
    const int64_t k = q * channels;
#pragma omp simd
    for (int64_t c = 0; c < channels; ++c) {
      const int64_t i = k + c;
      const float z = normalised_logit(partial[i], mean[c], inv_std[c], threshold[c], alpha);
      const float open = sigmoid_above_half(z) ? 1.0f : 0.0f;
      grad_full[i] = gy[i] * open;
      grad_partial[i] = gy[i] * (1.0f - open);
      // As sigmoid_path: the step passes dL/ds (cut under sparse_bp where
      // s < 0.5), then g * (1 - s) * s * alpha.
      const float passed = (sparse_bp && gate_decision::sigmoid_below_half(z))
                               ? 0.0f
                               : gy[i] * full[i] - gy[i] * partial[i];
      const float sv = gate_decision::sigmoid(z);
      grad_a[i] = passed * (1.0f - sv) * sv * alpha;
    }
  }
}

// The normalisation's backward pass added to grad_partial over whole
// positions: inv_std * (ga - mean(ga) - xhat * mean(ga * xhat)), with
// xhat = (partial - mean) * inv_std and the two means given per channel.
DNN_GATING_SIMD_CLONES
void normalisation_backward_kernel(float* __restrict grad_partial, const float* __restrict ga,
                                   const float* __restrict partial, int64_t positions,
                                   int64_t channels, const float* __restrict mean,
                                   const float* __restrict inv_std, const float* __restrict mean_ga,
                                   const float* __restrict mean_ga_xhat) {
  for (int64_t q = 0; q < positions; ++q) {
    const int64_t k = q * channels;
    for (int64_t c = 0; c < channels; ++c) {
      const float xhat = (partial[k + c] - mean[c]) * inv_std[c];
      grad_partial[k + c] += inv_std[c] * (ga[k + c] - mean_ga[c] - xhat * mean_ga_xhat[c]);
    }
  }
}

// Calls fn(first, last, sums) for blocks of positions of a channels-last
// tensor in parallel, `sums` a block's own `width` doubles (zeroed); returns
// the blocks' sums added up.
template <typename Fn>
std::vector<double> block_sums(int64_t positions, int64_t width, Fn fn) {
  const int64_t blocks = (positions + kBlockPositions - 1) / kBlockPositions;
  std::vector<double> sums(blocks * width, 0.0);
  at::parallel_for(0, blocks, 1, [&](int64_t first_block, int64_t last_block) {
    for (int64_t b = first_block; b < last_block; ++b) {
      const int64_t first = b * kBlockPositions;
      fn(first, std::min(positions, first + kBlockPositions), sums.data() + b * width);
    }
  });
  std::vector<double> total(width, 0.0);
  for (int64_t b = 0; b < blocks; ++b) {
    for (int64_t i = 0; i < width; ++i) total[i] += sums[b * width + i];
  }
  return total;
}

// values[first, first + count) times scale, as floats.
torch::Tensor floats(const std::vector<double>& values, double scale, int64_t first,
                     int64_t count) {
  torch::Tensor t = torch::empty({count});
  float* out = t.data_ptr<float>();
  for (int64_t i = 0; i < count; ++i) out[i] = static_cast<float>(values[first + i] * scale);
  return t;
}

void check_channels_last(const torch::Tensor& t, const char* what) {
  TORCH_CHECK(t.dim() == 4 && t.scalar_type() == torch::kFloat && channels_last(t), what,
              ": needs a channels-last float [N, C, H, W] tensor, got ", t.sizes());
}

}  // namespace

std::pair<torch::Tensor, torch::Tensor> channel_moments(const torch::Tensor& partial) {
  check_channels_last(partial, "channel_moments");
  const int64_t channels = partial.size(1);
  const int64_t positions = partial.numel() / channels;
  TORCH_CHECK(positions > 0, "channel_moments: an empty batch has no statistics");
  const float* pp = partial.data_ptr<float>();
  const std::vector<double> sums =
      block_sums(positions, 2 * channels, [&](int64_t first, int64_t last, double* acc) {
        for (int64_t q = first; q < last; ++q) {
          const float* v = pp + q * channels;
          for (int64_t c = 0; c < channels; ++c) {
            acc[c] += v[c];
            acc[channels + c] += static_cast<double>(v[c]) * v[c];
          }
        }
      });
  std::vector<double> moments(2 * channels);
  for (int64_t c = 0; c < channels; ++c) {
    const double mean = sums[c] / static_cast<double>(positions);
    moments[c] = mean;
    moments[channels + c] =
        std::max(0.0, sums[channels + c] / static_cast<double>(positions) - mean * mean);
  }
  return {floats(moments, 1.0, 0, channels), floats(moments, 1.0, channels, channels)};
}

std::pair<torch::Tensor, int64_t> cg_normalised_select(
    const torch::Tensor& full_in, const torch::Tensor& partial, const torch::Tensor& mean_in,
    const torch::Tensor& inv_std_in, const torch::Tensor& threshold, double alpha) {
  check_channels_last(partial, "cg_normalised_select");
  const int64_t channels = partial.size(1);
  const torch::Tensor full = laid_like(full_in, partial);
  const torch::Tensor t = per_channel(threshold, channels);
  const torch::Tensor mean = per_channel(mean_in, channels);
  const torch::Tensor inv_std = per_channel(inv_std_in, channels);
  torch::Tensor y = torch::empty_like(partial);
  const float* fp = full.data_ptr<float>();
  const float* pp = partial.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  const auto alpha_f = static_cast<float>(alpha);
  const int64_t open =
      sum_over_blocks(partial.numel() / channels, [&](int64_t first, int64_t last) {
        return cg_normalised_select_kernel(fp + first * channels, pp + first * channels,
                                           yp + first * channels, last - first, channels,
                                           mean.data_ptr<float>(), inv_std.data_ptr<float>(),
                                           t.data_ptr<float>(), alpha_f);
      });
  return {y, open};
}

std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> cg_normalised_select_backward(
    const torch::Tensor& grad_y_in, const torch::Tensor& full_in, const torch::Tensor& partial,
    const torch::Tensor& mean_in, const torch::Tensor& inv_std_in, const torch::Tensor& threshold,
    double alpha, bool sparse_bp) {
  check_channels_last(partial, "cg_normalised_select_backward");
  const int64_t channels = partial.size(1);
  const int64_t positions = partial.numel() / channels;
  const torch::Tensor gy = laid_like(grad_y_in, partial);
  const torch::Tensor full = laid_like(full_in, partial);
  const torch::Tensor mean = per_channel(mean_in, channels);
  const torch::Tensor inv_std = per_channel(inv_std_in, channels);
  const torch::Tensor t = per_channel(threshold, channels);
  torch::Tensor grad_full = torch::empty_like(partial);
  torch::Tensor grad_partial = torch::empty_like(partial);
  torch::Tensor grad_a = torch::empty_like(partial);
  const float* pp = partial.data_ptr<float>();
  const float* mp = mean.data_ptr<float>();
  const float* ip = inv_std.data_ptr<float>();
  float* gpart = grad_partial.data_ptr<float>();
  float* ga = grad_a.data_ptr<float>();
  const auto alpha_f = static_cast<float>(alpha);
  // Per channel: the sum of the gate-input gradient, then of its product
  // with the normalised partial sum, each block's while it is in cache.
  const std::vector<double> sums =
      block_sums(positions, 2 * channels, [&](int64_t first, int64_t last, double* acc) {
        const int64_t at = first * channels;
        cg_normalised_backward_kernel(gy.data_ptr<float>() + at, full.data_ptr<float>() + at,
                                      pp + at, grad_full.data_ptr<float>() + at, gpart + at,
                                      ga + at, last - first, channels, mp, ip, t.data_ptr<float>(),
                                      alpha_f, sparse_bp);
        for (int64_t k = first * channels; k < last * channels; k += channels) {
          for (int64_t c = 0; c < channels; ++c) {
            const float xhat = (pp[k + c] - mp[c]) * ip[c];
            acc[c] += ga[k + c];
            acc[channels + c] += static_cast<double>(ga[k + c]) * xhat;
          }
        }
      });
  const double per_position = 1.0 / static_cast<double>(positions);
  const torch::Tensor mean_ga = floats(sums, per_position, 0, channels);
  const torch::Tensor mean_ga_xhat = floats(sums, per_position, channels, channels);
  sum_over_blocks(positions, [&](int64_t first, int64_t last) {
    normalisation_backward_kernel(gpart + first * channels, ga + first * channels,
                                  pp + first * channels, last - first, channels, mp, ip,
                                  mean_ga.data_ptr<float>(), mean_ga_xhat.data_ptr<float>());
    return int64_t{0};
  });
  // The threshold enters as a - threshold.
  return {grad_full, grad_partial, floats(sums, -1.0, 0, channels)};
}

}  // namespace dnn_gating::kernels::gates
