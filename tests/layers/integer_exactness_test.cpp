// The integer way's sums are exact on every CPU: oneDNN's int8 kernels
// without VNNI (AVX2) add pairs of uint8 x int8 products in 16 bits with
// saturation, so the layers take the integer way only for input codes up to
// Convolution::max_exact_input_code(). ctest runs these tests a second time
// with oneDNN capped at AVX2 (integer_at_avx2), where that risk is.
#include <cstdlib>
#include <vector>

#include "dnn_gating/layers/integer.h"
#include "dnn_gating/layers/pg_conv.h"
#include "dnn_gating/layers/quantized_conv.h"
#include "kernels/int8_conv.h"
#include "test_support.h"

namespace dg = dnn_gating;
namespace ic = dg::kernels::int8_conv;
using dg::layers::Integer;

namespace {

#define DG_EXACTNESS_OR_SKIP()                                                        \
  if (!dg::layers::integer_available()) {                                             \
    if (std::getenv("CI") != nullptr) FAIL() << "no integer convolution (CI is set)"; \
    GTEST_SKIP() << "built without oneDNN (libdnnl-dev): no integer inference";       \
  }

constexpr int64_t kIn = 32, kOut = 4, kSize = 6, kBatch = 2;

// Weight codes at +-max: the first output all +max (every pair of products
// at its largest), the others alternating in sign by channel and tap.
std::vector<int16_t> extreme_codes(int16_t max) {
  std::vector<int16_t> codes(kOut * kIn * 9);
  for (int64_t o = 0; o < kOut; ++o) {
    for (int64_t i = 0; i < kIn * 9; ++i) {
      const bool negative = o == 1 || (o > 1 && (i + o) % 2 == 1);
      codes[o * kIn * 9 + i] = negative ? static_cast<int16_t>(-max) : max;
    }
  }
  return codes;
}

// sum over c, i, j of codes[o, c, i, j] * a[n, h + i - 1, w + j - 1, c], exactly.
std::vector<int64_t> exact_sums(const std::vector<int16_t>& codes, const std::vector<int64_t>& a) {
  std::vector<int64_t> sums(kBatch * kSize * kSize * kOut, 0);
  for (int64_t n = 0; n < kBatch; ++n)
    for (int64_t h = 0; h < kSize; ++h)
      for (int64_t w = 0; w < kSize; ++w)
        for (int64_t o = 0; o < kOut; ++o) {
          int64_t s = 0;
          for (int64_t c = 0; c < kIn; ++c)
            for (int64_t i = 0; i < 3; ++i)
              for (int64_t j = 0; j < 3; ++j) {
                const int64_t y = h + i - 1, x = w + j - 1;
                if (y < 0 || y >= kSize || x < 0 || x >= kSize) continue;
                s += codes[((o * kIn + c) * 3 + i) * 3 + j] *
                     a[((n * kSize + y) * kSize + x) * kIn + c];
              }
          sums[((n * kSize + h) * kSize + w) * kOut + o] = s;
        }
  return sums;
}

// The convolution's output on codes `a` (doubled where it splits) against
// the exact sums; the scale 1 keeps every sum (below 2^24) exact in float.
void expect_exact(const ic::Convolution& conv, const std::vector<int16_t>& codes,
                  const std::vector<int64_t>& a) {
  const int64_t channels = conv.doubles_input() ? 2 * kIn : kIn;
  std::vector<uint8_t> src(kBatch * kSize * kSize * channels);
  for (int64_t p = 0; p < kBatch * kSize * kSize; ++p) {
    for (int64_t c = 0; c < kIn; ++c) {
      const int64_t v = a[p * kIn + c];
      if (conv.doubles_input()) {
        src[p * channels + c] = static_cast<uint8_t>(2 * v);
        src[p * channels + kIn + c] = static_cast<uint8_t>(v);
      } else {
        src[p * channels + c] = static_cast<uint8_t>(v);
      }
    }
  }
  std::vector<float> dst(kBatch * kSize * kSize * kOut);
  conv.run(src.data(), kBatch, kSize, kSize, 1.0f, dst.data());
  const std::vector<int64_t> expected = exact_sums(codes, a);
  int64_t wrong = 0;
  for (size_t k = 0; k < dst.size(); ++k) wrong += dst[k] != static_cast<float>(expected[k]);
  EXPECT_EQ(wrong, 0) << "of " << dst.size() << " sums (first: " << dst[0] << " against "
                      << expected[0] << ")";
}

}  // namespace

// Weights at +-127 (one int8 pass) and at +-255 (split into two), every
// input code from 0 to the exactness limit in every position, then random
// codes up to it: every sum exactly the int64 sum.
TEST(IntegerExactness, EveryCodeUpToTheLimitSumsExactly) {
  DG_EXACTNESS_OR_SKIP();
  ic::Geometry g;
  g.out_channels = kOut;
  g.in_channels = kIn;
  g.kernel_h = g.kernel_w = 3;
  g.pad_h = g.pad_w = 1;
  torch::manual_seed(11);
  for (const int16_t max : {int16_t{127}, int16_t{255}}) {
    const std::vector<int16_t> codes = extreme_codes(max);
    const ic::Convolution conv(g, codes.data());
    EXPECT_EQ(conv.doubles_input(), max > 127);
    const int64_t limit = conv.max_exact_input_code();
    EXPECT_EQ(limit, max > 127 ? 63 : 129);
    SCOPED_TRACE(std::string("weights +-") + std::to_string(max) + ", oneDNN at " + ic::isa());
    const int64_t positions = kBatch * kSize * kSize * kIn;
    for (int64_t code = 0; code <= limit; ++code) {
      SCOPED_TRACE("every input code " + std::to_string(code));
      expect_exact(conv, codes, std::vector<int64_t>(positions, code));
    }
    const torch::Tensor random = torch::randint(0, limit + 1, {positions}, torch::kLong);
    expect_exact(
        conv, codes,
        std::vector<int64_t>(random.data_ptr<int64_t>(), random.data_ptr<int64_t>() + positions));
  }
}

// 8-bit weights (codes up to +-255: split, limit 63): the quantized layer
// takes 2 to 6 activation bits (largest code 63) in integers and hands 7
// and 8 to float; the PG layer, whose MSB and LSB parts are coded apart
// (largest codes 2^pred_bits - 1 and 2^(abits - pred_bits) - 1), takes
// every split whose parts have at most 6 bits each.
TEST(IntegerExactness, EightBitWeightsTakeCodesOfUpToSixBits) {
  DG_EXACTNESS_OR_SKIP();
  torch::manual_seed(12);
  torch::NoGradGuard no_grad;
  const torch::Tensor x = torch::relu(torch::randn({2, 16, 8, 8}));
  for (int64_t abits = 2; abits <= 8; ++abits) {
    SCOPED_TRACE("a" + std::to_string(abits));
    dg::layers::QuantizedConv2d quantized(
        dg::layers::QuantizedConv2dOptions(16, 16, 3).padding(1).wbits(8).abits(abits).integer(
            Integer::kAlways));
    quantized->eval();
    quantized->forward(x);
    EXPECT_EQ(quantized->computed_in_integers(), abits <= 6);
    for (int64_t pred_bits = 1; pred_bits < abits; ++pred_bits) {
      SCOPED_TRACE("pb" + std::to_string(pred_bits));
      dg::layers::PGConv2d pg(dg::layers::PGConv2dOptions(16, 16, 3)
                                  .padding(1)
                                  .wbits(8)
                                  .abits(abits)
                                  .pred_bits(pred_bits)
                                  .skipping(dg::layers::Skipping::kNever)
                                  .integer(Integer::kAlways));
      pg->eval();
      pg->forward(x);
      EXPECT_EQ(pg->computed_in_integers(), pred_bits <= 6 && abits - pred_bits <= 6);
    }
  }
}
