// The distillation loss against a hand computation and Hinton's gradient.
#include "dnn_gating/train/distillation.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace dtr = dnn_gating::train;

namespace {

std::vector<double> softmax(const std::vector<double>& z, double t) {
  double sum = 0;
  std::vector<double> out;
  for (const double v : z) sum += std::exp(v / t);
  for (const double v : z) out.push_back(std::exp(v / t) / sum);
  return out;
}

}  // namespace

TEST(DistillationLoss, EqualsTheHandComputedLoss) {
  const std::vector<std::vector<double>> student{{1.0, 2.0, 0.5}, {-1.0, 0.0, 3.0}};
  const std::vector<std::vector<double>> teacher{{3.0, 1.0, 0.0}, {0.5, 0.5, 2.0}};
  const std::vector<int64_t> labels{0, 2};
  const double t = 2.5, alpha = 0.7;
  double kl = 0, ce = 0;
  for (size_t i = 0; i < labels.size(); ++i) {
    const auto ps = softmax(student[i], t), pt = softmax(teacher[i], t);
    for (size_t c = 0; c < 3; ++c) kl += pt[c] * std::log(pt[c] / ps[c]);
    ce -= std::log(softmax(student[i], 1.0)[labels[i]]);
  }
  kl /= 2;
  ce /= 2;
  const double expected = alpha * t * t * kl + (1 - alpha) * ce;
  const auto s = torch::tensor({1.0, 2.0, 0.5, -1.0, 0.0, 3.0}, torch::kDouble).view({2, 3});
  const auto q = torch::tensor({3.0, 1.0, 0.0, 0.5, 0.5, 2.0}, torch::kDouble).view({2, 3});
  const auto y = torch::tensor({0, 2}, torch::kLong);
  EXPECT_NEAR(dtr::distillation_loss(s, q, y, t, alpha).item<double>(), expected, 1e-12);
  // alpha 0 is the cross entropy alone; alpha 1 the distillation term alone.
  EXPECT_NEAR(dtr::distillation_loss(s, q, y, t, 0.0).item<double>(), ce, 1e-12);
  EXPECT_NEAR(dtr::distillation_loss(s, q, y, t, 1.0).item<double>(), t * t * kl, 1e-12);
}

// Hinton et al.: the gradient of T^2 KL with respect to the student's logits
// is T (softmax(s/T) - softmax(t/T)), per image (over the batch: / B); the
// teacher gets none.
TEST(DistillationLoss, GradientIsHintons) {
  torch::manual_seed(0);
  const double t = 4.0;
  const auto s = torch::randn({3, 5}, torch::kDouble).requires_grad_(true);
  const auto q = torch::randn({3, 5}, torch::kDouble).requires_grad_(true);
  const auto y = torch::tensor({1, 0, 4}, torch::kLong);
  dtr::distillation_loss(s, q, y, t, 1.0).backward();
  const auto expected =
      t * (torch::softmax(s.detach() / t, 1) - torch::softmax(q.detach() / t, 1)) / 3.0;
  EXPECT_TRUE(torch::allclose(s.grad(), expected, 1e-12, 1e-12));
  EXPECT_FALSE(q.grad().defined());
}
