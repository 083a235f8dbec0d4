// The pictures of --maps: PNG files that decode to what was drawn, heatmap
// pixels that are the gate decisions of that image's evaluation, and
// per-image costs whose mean is the report's effective MACs and whose
// values, image by image and layer by layer, are those decisions priced.
#include "dnn_gating/report/gate_pictures.h"

#include <torch/torch.h>
#include <zlib.h>

#include <fstream>
#include <sstream>

#include "dnn_gating/data/loader.h"
#include "dnn_gating/layers/gated_layer.h"
#include "dnn_gating/models/resnet.h"
#include "dnn_gating/report/image_costs.h"
#include "dnn_gating/report/png.h"
#include "dnn_gating/report/report.h"
#include "dnn_gating/train/gate_recorder.h"
#include "dnn_gating/train/step.h"
#include "test_support.h"

namespace dg = dnn_gating;
namespace dgt = dnn_gating::testing;
using dg::train::Picture;
using dg::train::Rgb;

TEST(Png, RoundTripsEveryPixel) {
  Picture picture(37, 11);
  for (int64_t y = 0; y < 11; ++y) {
    for (int64_t x = 0; x < 37; ++x) {
      picture.set(
          x, y,
          {static_cast<uint8_t>(x * 7), static_cast<uint8_t>(y * 23), static_cast<uint8_t>(x * y)});
    }
  }
  const Picture back = dg::train::decode_png(dg::train::encode_png(picture), "memory");
  ASSERT_EQ(back.width(), 37);
  ASSERT_EQ(back.height(), 11);
  EXPECT_EQ(back.rgb(), picture.rgb());
}

TEST(Png, RefusesWhatIsNotAPng) {
  const std::string message =
      dgt::error_of([] { dg::train::decode_png("not a picture at all", "x.png"); });
  EXPECT_NE(message.find("x.png: not a PNG file"), std::string::npos) << message;
  // A PNG cut short: named, no crash.
  Picture picture(64, 64, {1, 2, 3});
  const std::string bytes = dg::train::encode_png(picture);
  const std::string cut =
      dgt::error_of([&] { dg::train::decode_png(bytes.substr(0, bytes.size() / 2), "cut.png"); });
  EXPECT_NE(cut.find("cut.png: not a readable PNG file"), std::string::npos) << cut;
  dgt::TempDir tmp;
  const auto missing = (tmp.path() / "missing.png").string();
  EXPECT_NE(dgt::error_of([&] { dg::train::read_png(missing); }).find(missing), std::string::npos);
}

// A header that claims more pixels than its bytes can hold is refused
// before anything is allocated for them.
TEST(Png, RefusesAHeaderLargerThanItsFile) {
  std::string bytes = dg::train::encode_png(Picture(1, 1));
  const auto put32 = [&](size_t at, uint32_t v) {
    for (int i = 0; i < 4; ++i) bytes[at + i] = static_cast<char>((v >> (24 - 8 * i)) & 0xff);
  };
  put32(16, 8000);  // IHDR width
  put32(20, 8000);  // IHDR height
  put32(29, static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(bytes.data() + 12), 17)));
  const std::string message = dgt::error_of([&] { dg::train::decode_png(bytes, "bomb.png"); });
  EXPECT_NE(message.find("bomb.png: not a readable PNG file (8000 x 8000 pixels cannot be stored"),
            std::string::npos)
      << message;
}

TEST(GatePictures, ColourScaleRunsFromDarkToBright) {
  const Rgb low = dg::train::share_colour(0.0), high = dg::train::share_colour(1.0);
  EXPECT_EQ(low, (Rgb{68, 1, 84}));
  EXPECT_EQ(high, (Rgb{253, 231, 37}));
  EXPECT_EQ(dg::train::share_colour(-1.0), low);
  EXPECT_EQ(dg::train::share_colour(2.0), high);
  int previous = -1;  // brightness grows with the share
  for (int i = 0; i <= 16; ++i) {
    const Rgb c = dg::train::share_colour(i / 16.0);
    const int brightness = c.r + c.g;
    EXPECT_GT(brightness, previous);
    previous = brightness;
  }
}

namespace {

// A CG ResNet-8 on 12 random grey images, its gates half open.
struct SmallRun {
  dg::models::ResNet model{nullptr};
  dg::data::ImageSet set;
  std::unique_ptr<dg::data::BatchLoader> loader;
  dg::train::Classifier classifier;

  SmallRun() {
    torch::manual_seed(21);
    model = dg::models::ResNet(dg::models::ResNetOptions(dg::models::ConvKind::kChannelGated)
                                   .depth(8)
                                   .in_channels(1)
                                   .use_group(true)
                                   .partitions(4));
    {
      torch::NoGradGuard no_grad;
      for (auto& p : model->named_parameters()) {
        if (p.key().find("threshold") != std::string::npos) p.value().uniform_(-0.3, 0.3);
      }
    }
    set.images = torch::randint(0, 256, {12, 1, 32, 32}, torch::kByte);
    set.labels = torch::randint(0, 10, {12}, torch::kLong);
    for (int c = 0; c < 10; ++c) set.class_names.push_back("class" + std::to_string(c));
    set.mean = {0.5f};
    set.std = {0.25f};
    set.name = "random";
    loader = std::make_unique<dg::data::BatchLoader>(set, dg::data::LoaderOptions(5));
    classifier = {model.ptr(), [this](const torch::Tensor& x) { return model->forward(x); }};
  }
};

}  // namespace

TEST(GatePictures, HeatmapPixelsAreThatImagesDecisions) {
  SmallRun run;
  const std::vector<int64_t> chosen{7, 2};
  dg::train::Evaluation evaluation;
  std::vector<dg::train::ImageMaps> maps;
  std::vector<dg::train::ImageCost> costs;
  {
    dg::train::GateRecorder recorder(*run.model, run.set, chosen);
    evaluation = dg::train::evaluate(
        run.classifier, *run.loader, torch::kCPU, 10, 0, 1,
        [&](int64_t first, const torch::Tensor& labels, const torch::Tensor& predicted) {
          recorder.observe(first, labels, predicted);
        });
    maps = recorder.maps(evaluation);
    costs = recorder.costs(evaluation);
  }
  EXPECT_FALSE(dg::layers::gated_layers(*run.model).front().second->keeps_decisions());
  ASSERT_EQ(maps.size(), 2u);
  EXPECT_EQ(maps[0].cost.index, 7);
  EXPECT_EQ(maps[1].cost.index, 2);

  // The decisions again, from a pass over the batch that held image 7
  // (images 5 to 9): each map is that image's decisions, position by position.
  dg::layers::keep_decisions(*run.model, true);
  {
    torch::NoGradGuard no_grad;
    run.model->forward(run.loader->batch(1).images);
  }
  const auto gated = dg::layers::gated_layers(*run.model);
  ASSERT_EQ(maps[0].layers.size(), gated.size());
  double on_somewhere = 0;
  for (size_t l = 0; l < gated.size(); ++l) {
    const torch::Tensor per_position =
        gated[l].second->last_decisions()[2].sum(0, false, torch::kInt).contiguous();
    const dg::train::LayerMap& map = maps[0].layers[l];
    EXPECT_EQ(map.name, gated[l].first);
    ASSERT_EQ(map.height * map.width, per_position.numel());
    const int32_t* expected = per_position.data_ptr<int32_t>();
    EXPECT_EQ(map.open, std::vector<int32_t>(expected, expected + per_position.numel()));
    on_somewhere += map.on_fraction();
  }
  EXPECT_GT(on_somewhere, 0.0);

  // The picture, through a PNG file: every image pixel of every heatmap tile
  // has the colour of its position's share.
  const dg::train::MapPicture drawn =
      dg::train::image_maps_picture(maps[0], run.set.class_names, evaluation.dense_macs);
  dgt::TempDir tmp;
  const std::string file = (tmp.path() / "image_7.png").string();
  dg::train::write_png(file, drawn.picture, "gate map");
  const Picture back = dg::train::read_png(file);
  ASSERT_EQ(back.width(), drawn.picture.width());
  ASSERT_EQ(back.height(), drawn.picture.height());
  ASSERT_EQ(drawn.tiles.size(), gated.size() + 1);
  for (size_t l = 0; l < gated.size(); ++l) {
    const dg::train::Tile& tile = drawn.tiles[l + 1];
    const dg::train::LayerMap& map = maps[0].layers[l];
    EXPECT_EQ(tile.layer, map.name);
    for (int64_t y = 0; y < 32; ++y) {
      for (int64_t x = 0; x < 32; ++x) {
        const int64_t position = (y * map.height / 32) * map.width + x * map.width / 32;
        const Rgb expected = dg::train::share_colour(static_cast<double>(map.open[position]) /
                                                     static_cast<double>(map.channels));
        ASSERT_EQ(back.at(tile.x0 + x * tile.scale + tile.scale / 2,
                          tile.y0 + y * tile.scale + tile.scale / 2),
                  expected)
            << map.name << " pixel (" << x << ", " << y << ")";
      }
    }
  }
  // The input tile shows the image's own pixels.
  const dg::train::Tile& input = drawn.tiles.front();
  const uint8_t v = run.set.images[7][0][4][9].item<uint8_t>();
  EXPECT_EQ(back.at(input.x0 + 9 * input.scale, input.y0 + 4 * input.scale), (Rgb{v, v, v}));

  // Per-image costs: one per image, their mean the report's effective MACs.
  ASSERT_EQ(costs.size(), 12u);
  double sum = 0;
  for (const auto& c : costs) sum += c.effective_macs;
  const double report = dg::train::cost_figures(evaluation).effective_macs;
  EXPECT_NEAR(sum / 12.0, report, 1e-9 * report);
  const auto summary = dg::train::summarise(costs);
  EXPECT_NEAR(summary.mean, report, 1e-9 * report);
  EXPECT_LT(summary.min, summary.max) << "images of equal cost test nothing";
  EXPECT_EQ(summary.correct + summary.wrong, 12);

  // The overview holds each image's tiles at the same colours.
  const dg::train::MapPicture overview = dg::train::maps_overview(maps, run.set.class_names);
  const Picture decoded = dg::train::decode_png(dg::train::encode_png(overview.picture), "o");
  ASSERT_EQ(overview.tiles.size(), 2 * (gated.size() + 1));
  const dg::train::Tile& last = overview.tiles.back();  // image 2, last layer
  const dg::train::LayerMap& map = maps[1].layers.back();
  EXPECT_EQ(decoded.at(last.x0, last.y0),
            dg::train::share_colour(static_cast<double>(map.open[0]) / map.channels));

  // The CSV has a row per image with its cost; the other pictures decode.
  const std::string csv = dg::train::image_costs_csv(costs, evaluation, run.set.class_names);
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 13);
  EXPECT_NE(csv.find("\n7,"), std::string::npos);

  // Image 7 (the third of the batch re-run above) priced from its own
  // decisions: per layer, its on-fraction f = open outputs / (C H W), and
  // the CG cost model with p = 4 partitions (1/p of a layer's MACs always,
  // the rest where the gate is open) over the dense figures.
  const dg::train::ImageCost& seventh = costs[7];
  ASSERT_EQ(seventh.index, 7);
  ASSERT_EQ(seventh.layer_on.size(), gated.size());
  double expected_macs = static_cast<double>(evaluation.dense_macs);
  std::vector<double> expected_percent;
  for (size_t l = 0; l < gated.size(); ++l) {
    const torch::Tensor decisions = gated[l].second->last_decisions()[2];
    const int64_t open = decisions.sum().item<int64_t>();
    EXPECT_EQ(seventh.layer_on[l], open) << gated[l].first;
    const double f = static_cast<double>(open) / static_cast<double>(decisions.numel());
    EXPECT_NEAR(f, maps[0].layers[l].on_fraction(), 1e-12) << gated[l].first;
    const double dense = static_cast<double>(evaluation.layers[l].dense_macs_per_image);
    expected_macs += dense * (0.25 + 0.75 * f) - dense;
    expected_percent.push_back(100.0 * f);
  }
  EXPECT_NEAR(seventh.effective_macs, expected_macs, 1e-9 * expected_macs);
  EXPECT_NEAR(maps[0].cost.effective_macs, expected_macs, 1e-9 * expected_macs);
  std::string layer_columns;
  for (const auto& [name, layer] : gated) layer_columns += ",on_percent:" + name;
  EXPECT_EQ(csv.substr(0, csv.find('\n')),
            "index,label,class,predicted,predicted_class,correct,effective_macs,dense_fraction" +
                layer_columns);
  // Its CSV row: cost to 0.1 MAC, share of dense, each layer's on-% to 1e-4.
  const size_t row = csv.find("\n7,") + 1;
  std::vector<std::string> fields;
  std::stringstream line(csv.substr(row, csv.find('\n', row) - row));
  for (std::string field; std::getline(line, field, ',');) fields.push_back(field);
  ASSERT_EQ(fields.size(), 8 + gated.size());
  EXPECT_EQ(fields[5], seventh.correct() ? "1" : "0");
  EXPECT_NEAR(std::stod(fields[6]), expected_macs, 0.05 + 1e-12 * expected_macs);
  EXPECT_NEAR(std::stod(fields[7]), expected_macs / evaluation.dense_macs, 5e-7);
  for (size_t l = 0; l < gated.size(); ++l) {
    EXPECT_NEAR(std::stod(fields[8 + l]), expected_percent[l], 5e-5 + 1e-12) << gated[l].first;
  }
  const Picture histogram = dg::train::decode_png(
      dg::train::encode_png(dg::train::cost_histogram(costs, evaluation.dense_macs, "t")), "h");
  EXPECT_EQ(histogram.width(), 720);
  const Picture extremes = dg::train::cost_extremes(costs, run.set.images, run.set.class_names);
  EXPECT_GT(extremes.width(), 8 * 96);
}
