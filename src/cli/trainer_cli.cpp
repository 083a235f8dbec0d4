#include "dnn_gating/cli/trainer_cli.h"

#include "dnn_gating/cli/flags.h"
#include "dnn_gating/train/recipe.h"
#include "dnn_gating/train/runtime.h"

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <sstream>

namespace dnn_gating::cli {
namespace {


// The original's single-dash spellings of several letters.
const std::vector<Spelling>& spellings(Trainer trainer) {
  static const std::vector<Spelling> pg{
      {"-pact", "--ispact"}, {"-pg", "--ispg"},       {"-pb", "--pbits"},
      {"-gtar", "--gtarget"}, {"-sg", "--sigma"},     {"-spbp", "--sparse_bp"},
      {"-gpu", "--which_gpus"}};
  static const std::vector<Spelling> cg{
      {"-lr", "--lr"},          {"-wd", "--wt_decay"},       {"-pt", "--partitions"},
      {"-gi", "--ginit"},       {"-group", "--use_group"},   {"-gtar", "--gtarget"},
      {"-gt", "--gtarget"},     {"-spbp", "--sparse_bp"},    {"-cg", "--use_cg"},
      {"-shuffle", "--use_shuffle"}, {"-postact", "--use_postact"}, {"-gpu", "--which_gpus"}};
  return trainer == Trainer::kPrecisionGating ? pg : cg;
}

std::vector<int64_t> parse_milestones(const std::string& text, int64_t epochs) {
  std::vector<int64_t> out;
  std::stringstream stream(text);
  std::string item;
  while (std::getline(stream, item, ',')) {
    size_t used = 0;
    int64_t value = -1;
    try {
      value = std::stoll(item, &used);
    } catch (const std::exception&) {
    }
    TORCH_CHECK(used == item.size() && value >= 1 && value <= epochs, "--milestones: '", item,
                "' is not an epoch between 1 and ", epochs, " (expected a comma list, e.g. 100,150)");
    out.push_back(value);
  }
  return out;
}

struct CommonFlags {
  int64_t epochs = 0;
  int64_t depth = 20;
  std::string milestones;
  std::string data_dir;
};

void add_common_flags(CLI::App& app, Invocation& inv, CommonFlags& common) {
  train::JobConfig& job = inv.job;
  app.add_flag("-s,--save", job.save, "Save the trained model to --save-dir");
  app.add_flag("-t,--test", job.test_only, "Only evaluate (the checkpoint given with -p)");
  app.add_option("-p,--path", job.load_path,
                 "Checkpoint to evaluate (-t) or to start training from")
      ->check(CLI::ExistingFile);
  app.add_option("--which_gpus", inv.gpus, "CUDA device(s) to use, e.g. 0 (-gpu)");
  app.add_option("--depth", common.depth, "ResNet depth: 6n+2 (20, 32, 44, 56, 110)")
      ->capture_default_str();
  app.add_option("--epochs", common.epochs, "Training epochs")->check(CLI::Range(1, 100000))
      ->capture_default_str();
  app.add_option("--milestones", common.milestones,
                 "Epochs at which the learning rate drops 10x, comma list (default: the "
                 "original's fractions of --epochs)");
  app.add_option("--batch-size", job.batch_size, "Images per batch")
      ->check(CLI::Range(1, 65536))->capture_default_str();
  app.add_option("--dataset", job.dataset, "cifar10 or fashion-mnist")
      ->check(CLI::IsMember({"cifar10", "fashion-mnist"}))->capture_default_str();
  app.add_option("--data-dir", common.data_dir,
                 "Data directory (default: " + train::default_data_dir("cifar10") + " for cifar10, " +
                     train::default_data_dir("fashion-mnist") + " for fashion-mnist)");
  app.add_option("--train-limit", job.train_limit, "Use only the first N training images (0: all)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--test-limit", job.test_limit, "Use only the first N test images (0: all)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--save-dir", job.save_dir, "Where -s saves the checkpoint")->capture_default_str();
  app.add_option("--seed", job.seed, "Random seed (weights, order, augmentation)")
      ->capture_default_str();
  app.add_option("--threads", inv.threads, "Intra-op threads (default: every core)")
      ->check(CLI::Range(1, 1024));
  app.add_flag("--quiet", inv.quiet, "Print only warnings, errors and the final report");
  app.add_option("--metrics", job.metrics_path, "Write per-epoch and final metrics as JSON lines");
  app.add_option("--metrics-csv", job.metrics_csv_path, "Write the per-epoch scalars as CSV");
  app.add_option("--plot", job.plot_path, "Write the training curves as an SVG file");
}

void finish_common(Invocation& inv, const CommonFlags& common, const train::Recipe& recipe) {
  train::JobConfig& job = inv.job;
  job.sgd = recipe.sgd;
  job.gating_loss = recipe.gating_loss;
  job.epochs = common.epochs;
  job.model.depth(common.depth);
  job.milestones = common.milestones.empty() ? recipe.milestones(job.epochs)
                                             : parse_milestones(common.milestones, job.epochs);
  job.data_dir = common.data_dir;
  TORCH_CHECK(!job.test_only || !job.load_path.empty(),
              "-t/--test evaluates a saved model: give its checkpoint with -p FILE");
}

struct PgFlags {
  int64_t wbits = 0, abits = 0, pbits = 4;
  bool pact = false, pg = false, sparse_bp = false;
  double gtarget = 0.0, sigma = 0.001;
};

void configure_pg(CLI::App& app, PgFlags& f) {
  app.add_option("-w,--wbits", f.wbits, "Weight bits (0: floating point)")->capture_default_str();
  app.add_option("-a,--abits", f.abits, "Activation bits (0: floating point)")->capture_default_str();
  app.add_flag("--ispact", f.pact, "Use PACT clipped activations (-pact)");
  app.add_flag("--ispg", f.pg, "Use precision gating (-pg)");
  app.add_option("--pbits", f.pbits, "Prediction bits, below -a (-pb)")->capture_default_str();
  app.add_option("--gtarget", f.gtarget, "Gating target of the thresholds (-gtar)")
      ->capture_default_str();
  app.add_option("--sigma", f.sigma, "Weight of the gating loss (-sg)")->capture_default_str();
  app.add_flag("--sparse_bp", f.sparse_bp, "Sparse back-propagation through the gates (-spbp)");
}

void finish_pg(Invocation& inv, const PgFlags& f) {
  TORCH_CHECK(f.wbits >= 0 && f.abits >= 0 && f.pbits >= 0,
              "bit widths must not be negative (got -w ", f.wbits, " -a ", f.abits, " -pb ", f.pbits, ")");
  train::JobConfig& job = inv.job;
  job.program = "pg-cifar10";
  job.model = models::ResNetOptions(f.pg ? models::BlockKind::kPrecisionGated
                                         : models::BlockKind::kQuantized)
                  .wbits(f.wbits)
                  .abits(f.abits)
                  .pact(f.pact)
                  .pred_bits(f.pbits)
                  .sparse_bp(f.sparse_bp);
}

struct CgFlags {
  double lr = 0.1, wt_decay = 1e-4, ginit = 0.0, alpha = 2.0, gtarget = 0.0;
  int64_t partitions = 4;
  bool use_group = false, sparse_bp = false, use_cg = false, shuffle = false, postact = false;
};

void configure_cg(CLI::App& app, CgFlags& f) {
  app.add_option("--lr", f.lr, "Initial learning rate (-lr)")->capture_default_str();
  app.add_option("--wt_decay", f.wt_decay, "Weight decay (-wd)")->capture_default_str();
  app.add_option("--partitions", f.partitions, "Base path uses 1/pt of the input channels (-pt)")
      ->capture_default_str();
  app.add_option("--ginit", f.ginit, "Initial gate threshold (-gi)")->capture_default_str();
  app.add_option("-a,--alpha", f.alpha, "Sigmoid steepness of the gate")->capture_default_str();
  app.add_flag("--use_group", f.use_group, "Block-diagonal (grouped) base path (-group)");
  app.add_option("--gtarget", f.gtarget, "Gating target of the thresholds (-gtar, -gt)")
      ->capture_default_str();
  app.add_flag("--sparse_bp", f.sparse_bp, "Sparse back-propagation through the gates (-spbp)");
  app.add_flag("--use_cg", f.use_cg, "Use channel gating (-cg)");
  app.add_flag("--use_shuffle", f.shuffle, "Channel-shuffle the gated convs' inputs (-shuffle)");
  app.add_flag("--use_postact", f.postact, "Post-activated ResNet (-postact)");
}

void finish_cg(Invocation& inv, const CgFlags& f) {
  train::JobConfig& job = inv.job;
  job.program = "cg-cifar10";
  TORCH_CHECK(f.lr > 0, "-lr must be positive, got ", f.lr);
  TORCH_CHECK(f.wt_decay >= 0, "-wd must not be negative, got ", f.wt_decay);
  TORCH_CHECK(f.alpha > 0, "--alpha must be positive, got ", f.alpha);
  const models::BlockKind kind =
      f.use_cg ? (f.postact ? models::BlockKind::kChannelGatedPostAct : models::BlockKind::kChannelGated)
               : (f.postact ? models::BlockKind::kPostActivated : models::BlockKind::kQuantized);
  job.model = models::ResNetOptions(kind)
                  .partitions(f.partitions)
                  .ginit(f.ginit)
                  .cg_alpha(f.alpha)
                  .use_group(f.use_group)
                  .shuffle(f.shuffle)
                  .sparse_bp(f.sparse_bp);
}

std::string error_text(const std::exception& e) {
  if (const auto* c10_error = dynamic_cast<const c10::Error*>(&e)) {
    return c10_error->what_without_backtrace();
  }
  return e.what();
}

torch::Device choose_device(const std::string& gpus) {
  if (gpus.empty()) return torch::kCPU;
  const std::string first = gpus.substr(0, gpus.find(','));
  int index = 0;
  try {
    index = std::stoi(first);
  } catch (const std::exception&) {
    TORCH_CHECK(false, "-gpu: '", gpus, "' is not a device number (expected e.g. 0)");
  }
  if (!torch::cuda::is_available()) {
    spdlog::warn("warning: -gpu {}: no CUDA device available to this LibTorch build, running on the CPU",
                 gpus);
    return torch::kCPU;
  }
  TORCH_CHECK(index >= 0 && index < static_cast<int>(torch::cuda::device_count()), "-gpu: device ",
              index, " does not exist (", torch::cuda::device_count(), " CUDA devices)");
  return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
}

}  // namespace

Invocation parse_command_line(Trainer trainer, const std::vector<std::string>& raw_args) {
  const bool pg = trainer == Trainer::kPrecisionGating;
  const std::vector<std::string> args = rewrite_spellings(raw_args, spellings(trainer));
  CLI::App app(pg ? "Train and evaluate quantized and precision-gated ResNets (PG, ICLR 2020)."
                  : "Train and evaluate channel-gated ResNets (CG, NeurIPS 2019).",
               pg ? "pg-cifar10" : "cg-cifar10");
  app.get_formatter()->column_width(34);
  Invocation inv;
  CommonFlags common;
  common.epochs = (pg ? train::pg_recipe(0, 0) : train::cg_recipe(0, 0, 0)).epochs;
  add_common_flags(app, inv, common);
  PgFlags pg_flags;
  CgFlags cg_flags;
  if (pg) {
    configure_pg(app, pg_flags);
  } else {
    configure_cg(app, cg_flags);
  }
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  try {
    app.parse(static_cast<int>(argv.size()), argv.data());
  } catch (const CLI::CallForHelp&) {
    throw HelpRequested(app.help());
  }
  if (pg) {
    finish_pg(inv, pg_flags);
    finish_common(inv, common, train::pg_recipe(pg_flags.sigma, pg_flags.gtarget));
  } else {
    finish_cg(inv, cg_flags);
    finish_common(inv, common, train::cg_recipe(cg_flags.lr, cg_flags.wt_decay, cg_flags.gtarget));
  }
  // Which model settings the user gave, for checking them against a checkpoint.
  const std::vector<std::pair<std::string, std::string>> model_flags =
      pg ? std::vector<std::pair<std::string, std::string>>{
               {"--wbits", "wbits"}, {"--abits", "abits"}, {"--ispact", "pact"}, {"--ispg", "kind"},
               {"--pbits", "pred_bits"}, {"--sparse_bp", "sparse_bp"}, {"--depth", "depth"}}
         : std::vector<std::pair<std::string, std::string>>{
               {"--partitions", "partitions"}, {"--ginit", "ginit"}, {"--alpha", "cg_alpha"},
               {"--use_group", "use_group"}, {"--sparse_bp", "sparse_bp"}, {"--use_cg", "kind"},
               {"--use_shuffle", "shuffle"}, {"--use_postact", "kind"}, {"--depth", "depth"}};
  for (const auto& [flag, field] : model_flags) {
    if (app.count(flag) == 0) continue;
    // Named in messages as the user may have typed it, e.g. "-pg/--ispg", "-w/--wbits".
    std::string names = app.get_option(flag)->get_name(false, true);
    std::replace(names.begin(), names.end(), ',', '/');
    for (const auto& spelling : spellings(trainer)) {
      if (spelling.long_flag == flag) names = spelling.original + "/" + names;
    }
    inv.job.explicit_settings[field] = names;
  }
  if (app.count("--dataset") > 0) inv.job.explicit_settings["dataset"] = "--dataset";
  models::validate(inv.job.model);
  return inv;
}

int run_program(Trainer trainer, int argc, char** argv) {
  spdlog::set_pattern("%v");
  const std::string program = trainer == Trainer::kPrecisionGating ? "pg-cifar10" : "cg-cifar10";
  const std::vector<std::string> args(argv, argv + argc);
  Invocation inv;
  try {
    inv = parse_command_line(trainer, args);
  } catch (const HelpRequested& help) {
    std::cout << help.what();
    return 0;
  } catch (const CLI::ParseError& e) {
    std::cerr << program << ": error: " << e.what() << " (see --help)\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << program << ": error: " << error_text(e) << "\n";
    return 2;
  }
  if (inv.quiet) inv.job.progress = train::ProgressStyle::kQuiet;
  train::configure_runtime(inv.threads);
  try {
    inv.job.device = choose_device(inv.gpus);
    train::run_job(inv.job);
  } catch (const std::exception& e) {
    std::cerr << program << ": error: " << error_text(e) << "\n";
    return 1;
  }
  return 0;
}

}  // namespace dnn_gating::cli
