// The codes the integer way feeds its convolutions (uint8 grid indices of
// Q_abits, or T's high part and the rest), against ATen's formula: the
// kernel multiplies by 1 / m where ATen divides by m, and must code again
// with the division wherever that could round the other way.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <limits>

#include "kernels/quantize.h"
#include "layers/integer_conv.h"

namespace integer_conv = dnn_gating::layers::integer_conv;

namespace {

// A channels-last [2, C, 3, 5] input in [0, 1.75] whose values include,
// for every code k, the floats around (k + 0.5) * m / levels: the
// half-integers of |x| / m * levels where rounding turns.
torch::Tensor near_halves(int64_t channels, int64_t abits, uint64_t seed) {
  torch::manual_seed(seed);
  torch::Tensor x = torch::rand({2, channels, 3, 5}) * 1.75f;
  x.view(-1)[0] = 1.75f;
  const float m = 1.75f + dnn_gating::kernels::quantize::kScaleEpsilon;
  const auto levels = static_cast<float>((int64_t{1} << abits) - 1);
  float* v = x.data_ptr<float>();
  int64_t i = 1;
  for (int64_t k = 0; k < static_cast<int64_t>(levels) && i < x.numel(); ++k) {
    float around = (static_cast<float>(k) + 0.5f) * m / levels;
    for (int step = 0; step < 4; ++step) around = std::nextafter(around, 0.0f);
    for (int step = 0; step < 9 && i < x.numel(); ++step, i += 3) {
      v[i] = around;
      around = std::nextafter(around, 2.0f);
    }
  }
  return x.contiguous(at::MemoryFormat::ChannelsLast);
}

// [N, H, W, C] of ATen's codes of x: {high part (all of it where
// high_bits is 0), the rest}.
std::pair<torch::Tensor, torch::Tensor> reference_codes(const torch::Tensor& x, int64_t abits,
                                                        int64_t high_bits) {
  const float m = x.abs().max().item<float>() + dnn_gating::kernels::quantize::kScaleEpsilon;
  const double levels = static_cast<double>((int64_t{1} << abits) - 1);
  const torch::Tensor code = torch::round(torch::clamp(x.abs() / m, 0, 1) * levels);
  const double step = high_bits > 0 ? std::ldexp(1.0, static_cast<int>(abits - high_bits)) : 1.0;
  const torch::Tensor high = torch::floor(code / step);
  return {high.permute({0, 2, 3, 1}).to(torch::kInt),
          (code - high * step).permute({0, 2, 3, 1}).to(torch::kInt)};
}

// Where |x| * (1 / m) rounds to another code than |x| / m: the cases
// only the kernel's second pass codes right.
int64_t multiplication_differs(const torch::Tensor& x, int64_t abits) {
  const float m = x.abs().max().item<float>() + dnn_gating::kernels::quantize::kScaleEpsilon;
  const double levels = static_cast<double>((int64_t{1} << abits) - 1);
  const torch::Tensor divided = torch::round(torch::clamp(x.abs() / m, 0, 1) * levels);
  const torch::Tensor multiplied = torch::round(torch::clamp(x.abs() * (1.0f / m), 0, 1) * levels);
  return (divided != multiplied).sum().item<int64_t>();
}

}  // namespace

TEST(IntegerCodes, EqualATensCodesAtEveryHalfBoundary) {
  int64_t cases = 0, differing = 0;
  for (const int64_t channels : {16, 48, 3, 1100}) {
    for (const int64_t abits : {2, 3, 4, 6, 7}) {
      for (const int64_t high_bits : {int64_t{0}, int64_t{1}, abits / 2}) {
        if (high_bits >= abits) continue;
        for (const bool doubled : {false, true}) {
          const torch::Tensor x =
              near_halves(channels, abits, static_cast<uint64_t>(channels + abits));
          differing += multiplication_differs(x, abits);
          const integer_conv::Codes codes = integer_conv::input_codes(x, abits, high_bits, doubled);
          ASSERT_TRUE(codes.non_negative);
          const auto [high, rest] = reference_codes(x, abits, high_bits);
          const auto check = [&](const torch::Tensor& got, const torch::Tensor& want,
                                 const char* part) {
            const torch::Tensor g = got.to(torch::kInt);
            const int64_t c = channels;
            const torch::Tensor first = g.narrow(3, 0, c);
            EXPECT_TRUE(torch::equal(first, doubled ? want * 2 : want))
                << part << ": " << c << " channels, " << abits << " bits, high " << high_bits
                << (doubled ? ", doubled" : "");
            if (doubled) {
              EXPECT_TRUE(torch::equal(g.narrow(3, c, c), want))
                  << part << " (second half): " << c << " channels, " << abits << " bits";
            }
          };
          ASSERT_EQ(codes.hi.size(3), doubled ? 2 * channels : channels);
          check(codes.hi, high, "high part");
          if (high_bits > 0) check(codes.lo, rest, "rest");
          ++cases;
        }
      }
    }
  }
  EXPECT_GT(cases, 50);
  // The inputs reach the values where multiplying rounds otherwise.
  EXPECT_GT(differing, 0);
}

TEST(IntegerCodes, NegativeOrNaNInputsHaveNoCodes) {
  for (const float bad : {-0.5f, std::numeric_limits<float>::quiet_NaN()}) {
    torch::Tensor x = near_halves(16, 3, 1);
    x.select(1, 5).select(1, 2).select(1, 4)[1] = bad;
    EXPECT_FALSE(integer_conv::input_codes(x, 3, 0, true).non_negative) << bad;
  }
}

// With a layer's InputMaximum the codes are written with the scale of the
// maximum the last inputs repeated, and again where this input's differs:
// the codes and scales are those without it either way, and only a repeated
// maximum is expected.
TEST(IntegerCodes, AnExpectedMaximumChangesNeitherCodesNorScales) {
  integer_conv::InputMaximum maximum;
  EXPECT_TRUE(std::isnan(maximum.expected()));
  const torch::Tensor clipped = near_halves(16, 3, 2);  // its maximum is 1.75
  const torch::Tensor lower = near_halves(16, 3, 3) * 0.5f;
  const auto expect_same = [](const torch::Tensor& x, integer_conv::InputMaximum& seen,
                              const char* what) {
    const integer_conv::Codes want = integer_conv::input_codes(x, 3, 1, true);
    const torch::Tensor want_hi = want.hi.clone(), want_lo = want.lo.clone();
    const integer_conv::Codes got = integer_conv::input_codes(x, 3, 1, true, &seen);
    EXPECT_TRUE(got.non_negative) << what;
    EXPECT_TRUE(torch::equal(got.hi, want_hi)) << what;
    EXPECT_TRUE(torch::equal(got.lo, want_lo)) << what;
    EXPECT_EQ(got.hi_scale, want.hi_scale) << what;
    EXPECT_EQ(got.lo_scale, want.lo_scale) << what;
  };
  expect_same(clipped, maximum, "first input");
  EXPECT_TRUE(std::isnan(maximum.expected()));
  expect_same(clipped, maximum, "its maximum seen once");
  EXPECT_EQ(maximum.expected(), 1.75f);
  expect_same(clipped, maximum, "its maximum expected");
  expect_same(lower, maximum, "a lower maximum than expected");
  EXPECT_TRUE(std::isnan(maximum.expected()));
  expect_same(lower, maximum, "the lower maximum seen once");
  expect_same(clipped, maximum, "a higher maximum than expected");
  torch::Tensor negative = clipped.clone();
  negative.index_put_({0, 2, 1, 3}, -0.25f);
  expect_same(clipped, maximum, "its maximum seen again");
  EXPECT_FALSE(integer_conv::input_codes(negative, 3, 1, true, &maximum).non_negative);
}
