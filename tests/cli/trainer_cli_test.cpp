// Every original flag spelling of both trainers parses into the right setting.
#include "dnn_gating/cli/trainer_cli.h"

#include <CLI/CLI.hpp>

#include "dnn_gating/cli/flags.h"
#include "test_support.h"

namespace dg = dnn_gating;
using dg::cli::Trainer;
using dg::models::BlockLayout;
using dg::models::ConvKind;

namespace {

dg::cli::Invocation parse(Trainer trainer, std::vector<std::string> args) {
  args.insert(args.begin(), trainer == Trainer::kPrecisionGating ? "pg-cifar10" : "cg-cifar10");
  return dg::cli::parse_command_line(trainer, args);
}

std::string parse_error(Trainer trainer, std::vector<std::string> args) {
  try {
    parse(trainer, std::move(args));
  } catch (const c10::Error& e) {
    return e.what_without_backtrace();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace

TEST(PgCommandLine, OriginalScriptVerbatim) {
  const auto inv = parse(Trainer::kPrecisionGating, {"-pg", "-w", "8", "-a", "3", "-pb", "2",
                                                     "-gtar", "1", "-spbp", "-pact", "-gpu", "0"});
  const auto& m = inv.job.model;
  EXPECT_EQ(m.conv(), ConvKind::kPrecisionGated);
  EXPECT_EQ(m.layout(), BlockLayout::kStandard);
  EXPECT_EQ(m.wbits(), 8);
  EXPECT_EQ(m.abits(), 3);
  EXPECT_EQ(m.pred_bits(), 2);
  EXPECT_TRUE(m.sparse_bp());
  EXPECT_TRUE(m.pact());
  EXPECT_DOUBLE_EQ(inv.job.gating_loss.target, 1.0);
  EXPECT_DOUBLE_EQ(inv.job.gating_loss.weight, 0.001);
  EXPECT_EQ(inv.job.gating_loss.form, dg::layers::GatingLossForm::kNorm);
  EXPECT_EQ(inv.gpus, "0");
  EXPECT_EQ(inv.job.epochs, 200);
  EXPECT_EQ(inv.job.milestones, (std::vector<int64_t>{100, 150}));
  EXPECT_FALSE(inv.job.sgd.exempt_thresholds_and_1d);
  EXPECT_DOUBLE_EQ(inv.job.sgd.weight_decay, 1e-4);
  EXPECT_EQ(inv.job.batch_size, 128);
  EXPECT_EQ(inv.job.data_dir, "");  // the dataset's default
  EXPECT_EQ(dg::train::default_data_dir("cifar10"), "data/cifar-10-batches-bin");
  EXPECT_EQ(inv.job.explicit_settings.at("wbits"), "-w/--wbits");
  EXPECT_EQ(inv.job.explicit_settings.at("conv"), "-pg/--ispg");
  EXPECT_EQ(inv.job.explicit_settings.count("depth"), 0u);
}

TEST(PgCommandLine, LongSpellingsAndDefaults) {
  const auto defaults = parse(Trainer::kPrecisionGating, {});
  EXPECT_EQ(defaults.job.model.conv(), ConvKind::kQuantized);
  EXPECT_EQ(defaults.job.model.layout(), BlockLayout::kStandard);
  EXPECT_EQ(defaults.job.model.wbits(), 0);
  EXPECT_EQ(defaults.job.model.abits(), 0);
  EXPECT_EQ(defaults.job.model.pred_bits(), 4);
  EXPECT_DOUBLE_EQ(defaults.job.gating_loss.target, 0.0);
  EXPECT_EQ(defaults.gpus, "");

  dg::testing::TempDir tmp;
  const std::string ckpt = (tmp.path() / "m.pt").string();
  std::ofstream(ckpt) << "x";
  const auto inv = parse(
      Trainer::kPrecisionGating,
      {"--ispg", "--wbits", "4", "--abits", "4", "--pbits", "3", "--gtarget", "0.5", "--sigma",
       "0.01", "--sparse_bp", "--ispact", "--save", "--test", "--path", ckpt, "--which_gpus", "1"});
  EXPECT_EQ(inv.job.model.conv(), ConvKind::kPrecisionGated);
  EXPECT_EQ(inv.job.model.layout(), BlockLayout::kStandard);
  EXPECT_EQ(inv.job.model.wbits(), 4);
  EXPECT_EQ(inv.job.model.pred_bits(), 3);
  EXPECT_DOUBLE_EQ(inv.job.gating_loss.weight, 0.01);
  EXPECT_DOUBLE_EQ(inv.job.gating_loss.target, 0.5);
  EXPECT_TRUE(inv.job.save && inv.job.test_only);
  EXPECT_EQ(inv.job.load_path, ckpt);
  EXPECT_EQ(inv.gpus, "1");

  const auto short_forms =
      parse(Trainer::kPrecisionGating, {"-s", "-t", "-p", ckpt, "-sg", "0.2", "-gtar=2"});
  EXPECT_TRUE(short_forms.job.save && short_forms.job.test_only);
  EXPECT_DOUBLE_EQ(short_forms.job.gating_loss.weight, 0.2);
  EXPECT_DOUBLE_EQ(short_forms.job.gating_loss.target, 2.0);
}

TEST(PgCommandLine, Additions) {
  const auto inv =
      parse(Trainer::kPrecisionGating,
            {"--epochs", "10", "--batch-size", "64", "--data-dir", "/tmp/x", "--save-dir", "out",
             "--seed", "7", "--threads", "3", "--dataset", "fashion-mnist", "--train-limit", "6000",
             "--test-limit", "100", "--quiet"});
  EXPECT_EQ(inv.job.epochs, 10);
  EXPECT_EQ(inv.job.milestones, (std::vector<int64_t>{5, 8}));
  EXPECT_EQ(inv.job.batch_size, 64);
  EXPECT_EQ(inv.job.data_dir, "/tmp/x");
  EXPECT_EQ(inv.job.save_dir, "out");
  EXPECT_EQ(inv.job.seed, 7u);
  EXPECT_EQ(inv.threads, 3);
  EXPECT_EQ(inv.job.dataset, "fashion-mnist");
  EXPECT_EQ(inv.job.train_limit, 6000);
  EXPECT_EQ(inv.job.test_limit, 100);
  EXPECT_TRUE(inv.quiet);
  EXPECT_EQ(inv.job.model.skipping(), dg::layers::Skipping::kFastest);
  EXPECT_EQ(parse(Trainer::kPrecisionGating, {"--skipping", "never"}).job.model.skipping(),
            dg::layers::Skipping::kNever);
  EXPECT_EQ(parse(Trainer::kChannelGating, {"--skipping", "always"}).job.model.skipping(),
            dg::layers::Skipping::kAlways);
  EXPECT_NE(parse_error(Trainer::kChannelGating, {"--skipping", "sometimes"}).find("--skipping"),
            std::string::npos);
  EXPECT_EQ(
      parse(Trainer::kPrecisionGating, {"--epochs", "20", "--milestones", "3,12"}).job.milestones,
      (std::vector<int64_t>{3, 12}));
  EXPECT_EQ(dg::train::default_data_dir("fashion-mnist"), "/usr/share/datasets/fashion-mnist");
  // A one-epoch run keeps the initial learning rate throughout.
  EXPECT_EQ(parse(Trainer::kPrecisionGating, {"--epochs", "1"}).job.milestones,
            (std::vector<int64_t>{1, 1}));
}

TEST(PgCommandLine, RejectsBadSettingsWithOneClearMessage) {
  EXPECT_NE(parse_error(Trainer::kPrecisionGating, {"-pg", "-a", "0"}).find("-a/--abits"),
            std::string::npos);
  EXPECT_NE(parse_error(Trainer::kPrecisionGating, {"-pg", "-a", "3", "-pb", "3"}).find("-pb"),
            std::string::npos);
  EXPECT_NE(
      parse_error(Trainer::kPrecisionGating, {"-w", "-2"}).find("-w/--wbits must be between 0"),
      std::string::npos);
  EXPECT_NE(parse_error(Trainer::kPrecisionGating, {"-t"}).find("-p FILE"), std::string::npos);
  EXPECT_NE(
      parse_error(Trainer::kPrecisionGating, {"-p", "/no/such/file.pt"}).find("/no/such/file.pt"),
      std::string::npos);
  EXPECT_NE(
      parse_error(Trainer::kPrecisionGating, {"--milestones", "5,x", "--epochs", "10"}).find("'x'"),
      std::string::npos);
  EXPECT_NE(parse_error(Trainer::kPrecisionGating, {"--dataset", "mnist"}).find("mnist"),
            std::string::npos);
  EXPECT_NE(parse_error(Trainer::kPrecisionGating, {"--bogus"}).find("--bogus"), std::string::npos);
  EXPECT_NE(parse_error(Trainer::kPrecisionGating, {"--depth", "21"}).find("6n+2"),
            std::string::npos);
}

// A library message names settings; users read the flags that set them,
// every time a message names one.
TEST(PgCommandLine, NamesEverySettingAsItsFlag) {
  EXPECT_EQ(
      parse_error(Trainer::kPrecisionGating, {"-pg", "-a", "3", "-pb", "3"}),
      "-pb/--pbits must be at least 1 and below -a/--abits (got -pb/--pbits 3, -a/--abits 3)");
  EXPECT_EQ(parse_error(Trainer::kPrecisionGating, {"--depth", "21"}),
            "--depth must be 6n+2 (20, 32, 44, 56, 110, ...), got 21");
}

TEST(CgCommandLine, OriginalScriptsVerbatim) {
  const auto inv =
      parse(Trainer::kChannelGating, {"-gpu", "0", "-gi", "0.0", "-gt", "1.0", "-pt", "4",
                                      "--alpha", "2.0", "-cg", "--sparse_bp", "--use_group"});
  const auto& m = inv.job.model;
  EXPECT_EQ(m.conv(), ConvKind::kChannelGated);
  EXPECT_EQ(m.layout(), BlockLayout::kStandard);
  EXPECT_EQ(m.partitions(), 4);
  EXPECT_DOUBLE_EQ(m.ginit(), 0.0);
  EXPECT_DOUBLE_EQ(m.cg_alpha(), 2.0);
  EXPECT_TRUE(m.use_group());
  EXPECT_TRUE(m.sparse_bp());
  EXPECT_FALSE(m.shuffle());
  EXPECT_DOUBLE_EQ(inv.job.gating_loss.target, 1.0);
  EXPECT_EQ(inv.job.gating_loss.form, dg::layers::GatingLossForm::kSquaredSum);
  EXPECT_DOUBLE_EQ(inv.job.gating_loss.weight, 1e-4);
  EXPECT_TRUE(inv.job.sgd.exempt_thresholds_and_1d);
  EXPECT_EQ(inv.job.epochs, 250);
  EXPECT_EQ(inv.job.milestones, (std::vector<int64_t>{150, 200}));

  const auto post = parse(Trainer::kChannelGating,
                          {"-gpu", "1", "-lr", "0.08", "-wd", "3e-4", "-gi", "0.0", "-gt", "0.6",
                           "-pt", "2", "-cg", "--use_postact", "--sparse_bp", "--use_group"});
  EXPECT_EQ(post.job.model.conv(), ConvKind::kChannelGated);
  EXPECT_EQ(post.job.model.layout(), BlockLayout::kPostActivated);
  EXPECT_DOUBLE_EQ(post.job.sgd.lr, 0.08);
  EXPECT_DOUBLE_EQ(post.job.sgd.weight_decay, 3e-4);
  EXPECT_EQ(post.job.model.partitions(), 2);
  EXPECT_DOUBLE_EQ(post.job.gating_loss.target, 0.6);
  EXPECT_EQ(post.gpus, "1");
}

TEST(CgCommandLine, EverySpelling) {
  const auto a = parse(Trainer::kChannelGating,
                       {"-lr", "0.05", "-wd", "0", "-pt", "2", "-gi", "-1.5", "-a", "3", "-group",
                        "-gtar", "0.3", "-spbp", "-cg", "-shuffle", "-postact", "-s"});
  EXPECT_DOUBLE_EQ(a.job.sgd.lr, 0.05);
  EXPECT_DOUBLE_EQ(a.job.sgd.weight_decay, 0.0);
  EXPECT_EQ(a.job.model.partitions(), 2);
  EXPECT_DOUBLE_EQ(a.job.model.ginit(), -1.5);
  EXPECT_DOUBLE_EQ(a.job.model.cg_alpha(), 3.0);
  EXPECT_TRUE(a.job.model.use_group() && a.job.model.sparse_bp() && a.job.model.shuffle());
  EXPECT_EQ(a.job.model.conv(), ConvKind::kChannelGated);
  EXPECT_EQ(a.job.model.layout(), BlockLayout::kPostActivated);
  EXPECT_DOUBLE_EQ(a.job.gating_loss.target, 0.3);
  EXPECT_TRUE(a.job.save);
  const auto b =
      parse(Trainer::kChannelGating, {"--lr", "0.2", "--wt_decay", "1e-3", "--partitions", "8",
                                      "--ginit", "0.5", "--alpha", "1", "--use_group", "--gtarget",
                                      "0.7", "--use_cg", "--use_shuffle", "--which_gpus", "2"});
  EXPECT_DOUBLE_EQ(b.job.sgd.lr, 0.2);
  EXPECT_DOUBLE_EQ(b.job.sgd.weight_decay, 1e-3);
  EXPECT_EQ(b.job.model.partitions(), 8);
  EXPECT_EQ(b.job.model.conv(), ConvKind::kChannelGated);
  EXPECT_EQ(b.job.model.layout(), BlockLayout::kStandard);
  EXPECT_DOUBLE_EQ(b.job.gating_loss.target, 0.7);
  EXPECT_EQ(b.gpus, "2");
  // Without -cg: the float baselines of the same architectures.
  EXPECT_EQ(parse(Trainer::kChannelGating, {}).job.model.conv(), ConvKind::kFloat);
  EXPECT_EQ(parse(Trainer::kChannelGating, {}).job.model.layout(), BlockLayout::kStandard);
  EXPECT_EQ(parse(Trainer::kChannelGating, {"-postact"}).job.model.conv(), ConvKind::kFloat);
  EXPECT_EQ(parse(Trainer::kChannelGating, {"-postact"}).job.model.layout(),
            BlockLayout::kPostActivated);
  EXPECT_NE(parse_error(Trainer::kChannelGating, {"-cg", "-pt", "3"}).find("-pt"),
            std::string::npos);
  EXPECT_NE(parse_error(Trainer::kChannelGating, {"-cg", "-pt", "0"}).find("-pt"),
            std::string::npos);
}

TEST(Spellings, RewritesOnlyExactFlags) {
  const std::vector<dg::cli::Spelling> s{{"-pg", "--ispg"}, {"-gtar", "--gtarget"}};
  EXPECT_EQ(dg::cli::rewrite_spellings({"prog", "-pg", "-gtar=3", "-pgx", "--", "-pg"}, s),
            (std::vector<std::string>{"prog", "--ispg", "--gtarget=3", "-pgx", "--", "-pg"}));
}
