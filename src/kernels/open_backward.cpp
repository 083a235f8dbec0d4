#include "kernels/open_backward.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

#include "kernels/isa.h"
#include "kernels/simd.h"
#include "kernels/vec16.h"

namespace dnn_gating::kernels::open_backward {
namespace {

using vec16::kVec;
using vec16::Vec;

// The convolution's sizes (stride 1), per image.
struct Shape {
  int64_t channels, height, width;  // x
  int64_t outputs, kh, kw;          // weight
  int64_t out_height, out_width;    // grad
  int64_t ph, pw;
  // Zero rows before (and after) a row's gathered gradients, so that every
  // kernel column reads inside them.
  int64_t lead() const { return kw + pw; }
  int64_t gathered_rows() const { return out_width + 2 * lead(); }
};

// One output row's open channels and their gradients, [gathered_rows, m],
// the row's position w at row w + lead.
struct OpenRow {
  std::vector<int32_t> any;
  std::vector<int64_t> open;
  std::vector<float> grads;
  int64_t m = 0;

  explicit OpenRow(const Shape& s)
      : any(s.outputs), open(s.outputs), grads(s.gathered_rows() * s.outputs) {}

  // Finds the channels of `row` ([W', O]) holding a nonzero gradient and
  // gathers them.
  void gather(const Shape& s, const float* row) {
    const int64_t outputs = s.outputs, width = s.out_width;
    std::fill(any.begin(), any.end(), 0);
    int32_t* a = any.data();
    for (int64_t w = 0; w < width; ++w) {
      const float* r = row + w * outputs;
#pragma omp simd
      for (int64_t o = 0; o < outputs; ++o) a[o] |= static_cast<int32_t>(r[o] != 0.0f);
    }
    m = 0;
    for (int64_t o = 0; o < outputs; ++o) {
      if (a[o] != 0) open[m++] = o;
    }
    if (m == 0) return;
    std::fill(grads.begin(), grads.begin() + s.gathered_rows() * m, 0.0f);
    for (int64_t w = 0; w < width; ++w) {
      float* dst = &grads[(w + s.lead()) * m];
      for (int64_t j = 0; j < m; ++j) dst[j] = row[w * outputs + open[j]];
    }
  }
};

// Input gradient at positions wi..wi+B-1 of input row `dst_row` (kernel row
// i), channels c0..c0+16 CV: the sum over kernel columns j and open
// channels k of g[k, w = wi + pw - j] * weight[k, i, j, c].
template <int B, int CV>
DG_INLINE void input_block(const Shape& s, const OpenRow& r, const float* wt, int64_t i,
                           int64_t wi, int64_t c0, float* dst_row) {
  Vec acc[B][CV];
  for (int b = 0; b < B; ++b) {
    for (int v = 0; v < CV; ++v) acc[b][v] = Vec{};
  }
  for (int64_t j = 0; j < s.kw; ++j) {
    const float* g = r.grads.data() + (wi + s.pw - j + s.lead()) * r.m;
    for (int64_t k = 0; k < r.m; ++k) {
      const float* w = wt + ((r.open[k] * s.kh + i) * s.kw + j) * s.channels + c0;
      Vec wv[CV];
      for (int v = 0; v < CV; ++v) wv[v] = vec16::load(w + v * kVec);
      for (int b = 0; b < B; ++b) {
        const float gv = g[b * r.m + k];
        for (int v = 0; v < CV; ++v) acc[b][v] += gv * wv[v];
      }
    }
  }
  for (int b = 0; b < B; ++b) {
    for (int v = 0; v < CV; ++v) {
      float* d = dst_row + (wi + b) * s.channels + c0 + v * kVec;
      vec16::store(d, vec16::load(d) + acc[b][v]);
    }
  }
}

// Weight gradient of open channels k0..k0+B-1 at kernel position (i, j),
// channels c0..c0+16 CV: the sum over positions w0..w1 of the row of
// g[k, w] * x[row, w - pw + j, c], added to acc_w ([O, kh, kw, C]).
template <int B, int CV>
DG_INLINE void weight_block(const Shape& s, const OpenRow& r, const float* xrow, int64_t i,
                            int64_t j, int64_t k0, int64_t c0, int64_t w0, int64_t w1,
                            float* acc_w) {
  Vec acc[B][CV];
  for (int b = 0; b < B; ++b) {
    for (int v = 0; v < CV; ++v) acc[b][v] = Vec{};
  }
  for (int64_t w = w0; w <= w1; ++w) {
    const float* xp = xrow + (w - s.pw + j) * s.channels + c0;
    Vec xv[CV];
    for (int v = 0; v < CV; ++v) xv[v] = vec16::load(xp + v * kVec);
    const float* g = r.grads.data() + (w + s.lead()) * r.m + k0;
    for (int b = 0; b < B; ++b) {
      const float gv = g[b];
      for (int v = 0; v < CV; ++v) acc[b][v] += gv * xv[v];
    }
  }
  for (int b = 0; b < B; ++b) {
    for (int v = 0; v < CV; ++v) {
      float* d = acc_w + ((r.open[k0 + b] * s.kh + i) * s.kw + j) * s.channels + c0 + v * kVec;
      vec16::store(d, vec16::load(d) + acc[b][v]);
    }
  }
}

// Images first..last: input gradients into gx (or none), weight gradients
// into acc_w (or none); returns the rows computed.
template <int CV>
DG_INLINE int64_t open_rows(const Shape& s, const float* grad, const float* x, const float* wt,
                            float* gx, float* acc_w, int64_t first, int64_t last) {
  constexpr int64_t kChunk = CV * kVec;
  const int64_t image = s.height * s.width * s.channels;
  OpenRow r(s);
  int64_t done = 0;
  for (int64_t n = first; n < last; ++n) {
    for (int64_t ho = 0; ho < s.out_height; ++ho) {
      r.gather(s, grad + (n * s.out_height + ho) * s.out_width * s.outputs);
      if (r.m == 0) continue;
      done += r.m;
      for (int64_t i = 0; i < s.kh; ++i) {
        const int64_t hi = ho - s.ph + i;
        if (hi < 0 || hi >= s.height) continue;
        const int64_t row = n * image + hi * s.width * s.channels;
        if (gx != nullptr) {
          for (int64_t c0 = 0; c0 < s.channels; c0 += kChunk) {
            int64_t wi = 0;
            for (; wi + 4 <= s.width; wi += 4) input_block<4, CV>(s, r, wt, i, wi, c0, gx + row);
            for (; wi < s.width; ++wi) input_block<1, CV>(s, r, wt, i, wi, c0, gx + row);
          }
        }
        if (acc_w != nullptr) {
          for (int64_t j = 0; j < s.kw; ++j) {
            const int64_t w0 = std::max<int64_t>(0, s.pw - j);
            const int64_t w1 = std::min<int64_t>(s.out_width - 1, s.width - 1 + s.pw - j);
            if (w1 < w0) continue;
            for (int64_t c0 = 0; c0 < s.channels; c0 += kChunk) {
              int64_t k0 = 0;
              for (; k0 + 4 <= r.m; k0 += 4)
                weight_block<4, CV>(s, r, x + row, i, j, k0, c0, w0, w1, acc_w);
              for (; k0 < r.m; ++k0) weight_block<1, CV>(s, r, x + row, i, j, k0, c0, w0, w1, acc_w);
            }
          }
        }
      }
    }
  }
  return done;
}

using Rows = int64_t (*)(const Shape&, const float*, const float*, const float*, float*, float*,
                         int64_t, int64_t);

// open_rows() at each level, with as many channel vectors at once as the
// level has registers for: four AVX-512 vectors (16 accumulators), one
// 16-float vector (two AVX2 registers) below.
#define DG_OPEN_ROWS_AT(name, attributes, max_vectors)                                         \
  attributes int64_t name(const Shape& s, const float* grad, const float* x, const float* wt, \
                          float* gx, float* acc_w, int64_t first, int64_t last) {             \
    const int64_t vectors = s.channels / kVec;                                                \
    if (max_vectors >= 4 && vectors % 4 == 0)                                                 \
      return open_rows<4>(s, grad, x, wt, gx, acc_w, first, last);                            \
    if (max_vectors >= 2 && vectors % 2 == 0)                                                 \
      return open_rows<2>(s, grad, x, wt, gx, acc_w, first, last);                            \
    return open_rows<1>(s, grad, x, wt, gx, acc_w, first, last);                              \
  }
DG_OPEN_ROWS_AT(open_rows_baseline, , 1)
#if DNN_GATING_KERNEL_LEVELS
DG_OPEN_ROWS_AT(open_rows_avx512, __attribute__((target("arch=x86-64-v4"))), 4)
DG_OPEN_ROWS_AT(open_rows_avx2, __attribute__((target("arch=x86-64-v3"))), 1)
#endif
#undef DG_OPEN_ROWS_AT

Rows open_rows_at_level() {
#if DNN_GATING_KERNEL_LEVELS
  return isa::at_level<Rows>(open_rows_avx512, open_rows_avx2, open_rows_baseline);
#else
  return open_rows_baseline;
#endif
}

}  // namespace

bool supported(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& grad,
               torch::IntArrayRef stride, torch::IntArrayRef padding) {
  const auto cl = at::MemoryFormat::ChannelsLast;
  if (!(x.device().is_cpu() && x.scalar_type() == torch::kFloat &&
        weight.scalar_type() == torch::kFloat && grad.scalar_type() == torch::kFloat &&
        x.dim() == 4 && weight.dim() == 4 && grad.dim() == 4 && stride.size() == 2 &&
        padding.size() == 2)) {
    return false;
  }
  const int64_t kh = weight.size(2), kw = weight.size(3);
  return x.is_contiguous(cl) && grad.is_contiguous(cl) && weight.size(1) == x.size(1) &&
         x.size(1) % kVec == 0 && stride[0] == 1 && stride[1] == 1 && padding[0] >= 0 &&
         padding[1] >= 0 && padding[0] < kh && padding[1] < kw && grad.size(0) == x.size(0) &&
         grad.size(1) == weight.size(0) && grad.size(2) == x.size(2) + 2 * padding[0] - kh + 1 &&
         grad.size(3) == x.size(3) + 2 * padding[1] - kw + 1;
}

Share add_backward(const torch::Tensor& grad, const torch::Tensor& x, const torch::Tensor& weight,
                   torch::IntArrayRef stride, torch::IntArrayRef padding,
                   const torch::Tensor& grad_input, const torch::Tensor& grad_weight) {
  TORCH_CHECK(supported(x, weight, grad, stride, padding),
              "open_backward: expects float channels-last x and grad on the CPU, a float weight "
              "over a multiple of 16 channels, stride 1 and padding below the kernel size");
  const Shape s{x.size(1),      x.size(2),      x.size(3),    weight.size(0), weight.size(2),
                weight.size(3), grad.size(2),   grad.size(3), padding[0],     padding[1]};
  const bool want_input = grad_input.defined(), want_weight = grad_weight.defined();
  if (want_input) {
    TORCH_CHECK(grad_input.sizes() == x.sizes() && grad_input.scalar_type() == torch::kFloat &&
                    grad_input.is_contiguous(at::MemoryFormat::ChannelsLast),
                "open_backward: grad_input must be a float channels-last tensor of x's shape");
  }
  if (want_weight) {
    TORCH_CHECK(grad_weight.sizes() == weight.sizes() &&
                    grad_weight.scalar_type() == torch::kFloat && grad_weight.is_contiguous(),
                "open_backward: grad_weight must be a contiguous float tensor of weight's shape");
  }
  const int64_t O = s.outputs, patch = s.kh * s.kw * s.channels;
  // The weight as [O, kh, kw, C], as channels-last positions read it.
  const torch::Tensor wt = weight.detach().permute({0, 2, 3, 1}).contiguous();
  const int threads = at::get_num_threads();
  const torch::Tensor accumulated =
      want_weight ? torch::zeros({threads, O, patch}) : torch::Tensor();
  std::vector<int64_t> computed(threads, 0);
  const Rows rows = open_rows_at_level();
  at::parallel_for(0, x.size(0), 1, [&](int64_t begin, int64_t end) {
    const int t = at::get_thread_num();
    computed[t] +=
        rows(s, grad.data_ptr<float>(), x.data_ptr<float>(), wt.data_ptr<float>(),
             want_input ? grad_input.data_ptr<float>() : nullptr,
             want_weight ? accumulated.data_ptr<float>() + t * O * patch : nullptr, begin, end);
  });
  if (want_weight) {
    grad_weight.add_(accumulated.sum(0).view({O, s.kh, s.kw, s.channels}).permute({0, 3, 1, 2}));
  }
  Share share;
  for (const int64_t c : computed) share.rows_computed += c;
  share.rows = x.size(0) * s.out_height * O;
  return share;
}

double open_row_share(const torch::Tensor& grad) {
  TORCH_CHECK(grad.dim() == 4 && grad.scalar_type() == torch::kFloat &&
                  grad.is_contiguous(at::MemoryFormat::ChannelsLast),
              "open_row_share: expects a float channels-last [N, O, H, W] tensor");
  const int64_t rows = grad.size(0) * grad.size(2), outputs = grad.size(1),
                width = grad.size(3);
  if (rows * outputs == 0) return 0;
  const float* g = grad.data_ptr<float>();
  std::vector<int64_t> counts(at::get_num_threads(), 0);
  at::parallel_for(0, rows, 16, [&](int64_t begin, int64_t end) {
    std::vector<int32_t> any(outputs);
    int64_t open = 0;
    for (int64_t row = begin; row < end; ++row) {
      std::fill(any.begin(), any.end(), 0);
      int32_t* a = any.data();
      for (int64_t w = 0; w < width; ++w) {
        const float* r = g + (row * width + w) * outputs;
#pragma omp simd
        for (int64_t o = 0; o < outputs; ++o) a[o] |= static_cast<int32_t>(r[o] != 0.0f);
      }
      for (int64_t o = 0; o < outputs; ++o) open += a[o];
    }
    counts[at::get_thread_num()] += open;
  });
  int64_t open = 0;
  for (const int64_t c : counts) open += c;
  return static_cast<double>(open) / static_cast<double>(rows * outputs);
}

}  // namespace dnn_gating::kernels::open_backward
