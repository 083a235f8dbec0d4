#include "dnn_gating/io/checkpoint.h"

#include <fstream>

#include "dnn_gating/io/model_meta.h"
#include "dnn_gating/models/resnet.h"
#include "test_support.h"

namespace dg = dnn_gating;
namespace fs = std::filesystem;
using dg::models::BlockLayout;
using dg::models::ConvKind;
using dg::models::ResNetOptions;

TEST(Checkpoint, RoundTripKeepsEveryTensorAndTheDescription) {
  dg::testing::TempDir tmp;
  torch::manual_seed(1);
  dg::models::ResNet a(ResNetOptions(ConvKind::kChannelGated).partitions(4).use_group(true));
  const std::string path = (tmp.path() / "sub" / "m.pt").string();
  dg::train::save_checkpoint(path, *a, "{\"x\": 1}");
  EXPECT_FALSE(fs::exists(path + ".partial"));
  const auto ckpt = dg::train::read_checkpoint(path);
  EXPECT_EQ(ckpt.meta, "{\"x\": 1}");
  EXPECT_TRUE(ckpt.state.count("layer1.0.conv1.mask"));
  EXPECT_TRUE(ckpt.state.count("layer1.0.conv1.bn.running_var"));
  torch::manual_seed(2);
  dg::models::ResNet b(ResNetOptions(ConvKind::kChannelGated).partitions(4).use_group(true));
  dg::train::load_state(*b, ckpt, path);
  auto pb = b->named_parameters();
  for (const auto& p : a->named_parameters())
    EXPECT_TRUE(torch::equal(p.value(), pb[p.key()])) << p.key();
}

TEST(Checkpoint, PlainStateDictsLoadWithoutDescription) {
  dg::testing::TempDir tmp;
  dg::models::ResNet model{ResNetOptions()};
  c10::Dict<std::string, torch::Tensor> plain;
  for (const auto& p : model->named_parameters()) plain.insert(p.key(), p.value().detach());
  for (const auto& b : model->named_buffers()) plain.insert(b.key(), b.value());
  const auto bytes = torch::pickle_save(plain);
  const fs::path path = tmp.path() / "plain.pt";
  std::ofstream(path, std::ios::binary)
      .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  const auto ckpt = dg::train::read_checkpoint(path.string());
  EXPECT_EQ(ckpt.meta, "");
  EXPECT_EQ(ckpt.state.size(), plain.size());
  EXPECT_NO_THROW(dg::train::load_state(*model, ckpt, path.string()));
}

TEST(Checkpoint, MismatchedModelIsRefusedNamingFileAndKeys) {
  dg::testing::TempDir tmp;
  dg::models::ResNet plain{ResNetOptions()};
  const std::string path = (tmp.path() / "float.pt").string();
  dg::train::save_checkpoint(path, *plain, "");
  dg::models::ResNet pg(ResNetOptions(ConvKind::kPrecisionGated).wbits(8).abits(3).pred_bits(2));
  try {
    dg::train::load_state(*pg, dg::train::read_checkpoint(path), path);
    FAIL() << "expected an error";
  } catch (const std::exception& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_NE(msg.find("missing layer1.0.conv1.threshold"), std::string::npos) << msg;
  }
  const fs::path junk = tmp.path() / "junk.pt";
  std::ofstream(junk) << "not a checkpoint";
  try {
    dg::train::read_checkpoint(junk.string());
    FAIL() << "expected an error";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("junk.pt: not a readable checkpoint"), std::string::npos);
  }
  EXPECT_THROW(dg::train::read_checkpoint((tmp.path() / "absent.pt").string()), std::runtime_error);
}

TEST(ModelMeta, JsonRoundTripAndDifferences) {
  const auto options = ResNetOptions(ConvKind::kChannelGated, BlockLayout::kPostActivated)
                           .depth(32)
                           .partitions(2)
                           .ginit(-0.5)
                           .use_group(true)
                           .in_channels(1);
  const auto back = dg::train::model_from_json(dg::train::model_to_json(options));
  EXPECT_TRUE(dg::train::differing_fields(options, back).empty());
  EXPECT_EQ(back.conv(), ConvKind::kChannelGated);
  EXPECT_EQ(back.layout(), BlockLayout::kPostActivated);
  EXPECT_EQ(back.depth(), 32);
  EXPECT_DOUBLE_EQ(back.ginit(), -0.5);
  EXPECT_EQ(
      dg::train::differing_fields(
          options, ResNetOptions(ConvKind::kChannelGated, BlockLayout::kPostActivated).depth(32)),
      (std::vector<std::string>{"ginit", "in_channels", "partitions", "use_group"}));
  // Checkpoints written before the convolution and the layout were two
  // settings name the model by one "kind".
  const auto legacy = dg::train::model_from_json(R"({"kind": "cg-postact", "partitions": 2})");
  EXPECT_EQ(legacy.conv(), ConvKind::kChannelGated);
  EXPECT_EQ(legacy.layout(), BlockLayout::kPostActivated);
  EXPECT_EQ(dg::train::model_from_json(R"({"kind": "postact"})").conv(), ConvKind::kFloat);
  EXPECT_EQ(dg::train::model_from_json(R"({"kind": "quantized"})").conv(), ConvKind::kQuantized);
}
