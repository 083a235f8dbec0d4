// The summary of per-image costs and the lines the report prints from it,
// on small tables whose figures are worked out by hand.
#include "dnn_gating/report/image_costs.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace dtr = dnn_gating::train;

namespace {

// An image of cost `macs`, misclassified when `wrong`.
dtr::ImageCost image(int64_t index, double macs, bool wrong) {
  dtr::ImageCost c;
  c.index = index;
  c.label = 3;
  c.predicted = wrong ? 5 : 3;
  c.effective_macs = macs;
  return c;
}

}  // namespace

// Costs 300, 1000, 100, 400, 200; the images of 1000 and 400 misclassified.
// Mean 2000 / 5 = 400; deviations -300 .. 600 whose squares sum to 500000:
// standard deviation (over the images, as the correlation needs)
// sqrt(100000) = 316.23; correct mean (300 + 100 + 200) / 3 = 200,
// misclassified (1000 + 400) / 2 = 700. The point-biserial correlation,
// (700 - 200) / sqrt(100000) * sqrt(2/5 * 3/5) = sqrt(0.6), is Pearson's of
// cost with the 0/1 misclassified flag: cov = (1000 + 400) / 5 - 400 * 2/5
// = 120 over sqrt(100000) * sqrt(0.24).
TEST(ImageCosts, SummaryIsTheHandComputedOne) {
  const std::vector<dtr::ImageCost> costs{image(0, 300, false), image(1, 1000, true),
                                          image(2, 100, false), image(3, 400, true),
                                          image(4, 200, false)};
  const dtr::ImageCostSummary s = dtr::summarise(costs);
  EXPECT_EQ(s.images, 5);
  EXPECT_DOUBLE_EQ(s.mean, 400);
  EXPECT_DOUBLE_EQ(s.min, 100);
  EXPECT_DOUBLE_EQ(s.max, 1000);
  EXPECT_NEAR(s.std, std::sqrt(100000.0), 1e-9);
  EXPECT_EQ(s.correct, 3);
  EXPECT_EQ(s.wrong, 2);
  EXPECT_DOUBLE_EQ(s.mean_correct, 200);
  EXPECT_DOUBLE_EQ(s.mean_wrong, 700);
  EXPECT_NEAR(s.correlation, std::sqrt(0.6), 1e-12);
  EXPECT_NEAR(s.correlation, 120 / (std::sqrt(100000.0) * std::sqrt(0.24)), 1e-12);

  // Against 2000 dense MACs: 20 %, 5 % and 50 %.
  const auto lines = dtr::image_cost_lines(s, /*dense_macs=*/2000);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0],
            "Per-image effective MACs over 5 test images: mean 400 (20.0 % of dense), min 100 "
            "(5.0 %), max 1000 (50.0 %), standard deviation 316");
  EXPECT_EQ(lines[1],
            "Correctly classified: mean 200 (3 images); misclassified: mean 700 (2 images); "
            "correlation of cost with misclassification +0.775");
}

// The same costs with the groups swapped: misclassified images cheaper, the
// correlation -sqrt(0.6) (p = 3/5 misclassified, p (1 - p) unchanged).
TEST(ImageCosts, CheaperMisclassifiedImagesCorrelateNegatively) {
  const std::vector<dtr::ImageCost> costs{image(0, 300, true), image(1, 1000, false),
                                          image(2, 100, true), image(3, 400, false),
                                          image(4, 200, true)};
  const dtr::ImageCostSummary s = dtr::summarise(costs);
  EXPECT_DOUBLE_EQ(s.mean_correct, 700);
  EXPECT_DOUBLE_EQ(s.mean_wrong, 200);
  EXPECT_NEAR(s.correlation, -std::sqrt(0.6), 1e-12);
  EXPECT_EQ(dtr::image_cost_lines(s, 2000)[1],
            "Correctly classified: mean 700 (2 images); misclassified: mean 200 (3 images); "
            "correlation of cost with misclassification -0.775");
}

// One group empty: no comparison, correlation 0; equal costs: std 0.
TEST(ImageCosts, NoComparisonWithoutBothGroups) {
  const std::vector<dtr::ImageCost> right{image(0, 50, false), image(1, 150, false)};
  const dtr::ImageCostSummary s = dtr::summarise(right);
  EXPECT_DOUBLE_EQ(s.std, 50);
  EXPECT_EQ(s.correlation, 0);
  const auto lines = dtr::image_cost_lines(s, 1000);
  EXPECT_EQ(lines[0],
            "Per-image effective MACs over 2 test images: mean 100 (10.0 % of dense), min 50 "
            "(5.0 %), max 150 (15.0 %), standard deviation 50");
  EXPECT_EQ(lines[1],
            "Every image correctly classified: no comparison of correct and "
            "misclassified costs");
  const dtr::ImageCostSummary same =
      dtr::summarise({image(0, 80, true), image(1, 80, false), image(2, 80, true)});
  EXPECT_EQ(same.std, 0);
  EXPECT_EQ(same.correlation, 0);
  EXPECT_EQ(dtr::image_cost_lines(dtr::summarise({image(0, 80, true)}), 1000)[1],
            "Every image misclassified: no comparison of correct and misclassified costs");
}
