#include "dnn_gating/cli/trainer_cli.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <functional>
#include <iostream>
#include <optional>
#include <sstream>

#include "dnn_gating/cli/flags.h"
#include "dnn_gating/report/log.h"
#include "dnn_gating/setting_error.h"
#include "dnn_gating/train/interrupt.h"
#include "dnn_gating/train/recipe.h"
#include "dnn_gating/train/runtime.h"

namespace dnn_gating::cli {
namespace {

// ---- the flag table ----

// A number with a lower bound, named in the message ("--lr: must be above 0, got -1").
CLI::Validator at_least(double bound, bool inclusive) {
  return CLI::Validator(
      [bound, inclusive](std::string& input) -> std::string {
        double value = 0;
        size_t used = 0;
        try {
          value = std::stod(input, &used);
        } catch (const std::exception&) {
        }
        const bool ok = used == input.size() && (inclusive ? value >= bound : value > bound);
        if (ok) return "";
        return std::string("must be ") + (inclusive ? "at least " : "above ") +
               fmt::format("{:g}", bound) + ", got '" + input + "'";
      },
      inclusive ? ">=" + fmt::format("{:g}", bound) : ">" + fmt::format("{:g}", bound));
}

// Where the flags of one command line land before they become a job.
struct Values {
  Invocation inv;
  int64_t epochs = 0;
  int64_t depth = 20;
  std::string milestones;
  std::string data_dir;
  // pg-cifar10
  int64_t wbits = 0, abits = 0, pbits = 4;
  bool pact = false, pg = false;
  double sigma = 0.001;
  // cg-cifar10
  double lr = 0.1, wt_decay = 1e-4, ginit = 0.0, alpha = 2.0;
  int64_t partitions = 4;
  bool use_group = false, use_cg = false, shuffle = false, postact = false;
  // both
  double gtarget = 0.0;
  bool sparse_bp = false;
  std::string skipping = "fastest";
  std::string integer = "always";
  std::string map_images;
  std::string arch = "resnet20";
  bool imagenet_stem = false;
};

// One row of a trainer's table: its spellings, help and setting, and how it
// registers itself with CLI11 (bound to a field of Values).
struct Flag {
  FlagInfo info;
  std::function<CLI::Option*(CLI::App&, const std::string& names, const std::string& help)> add;
};

template <typename T>
Flag option(std::vector<std::string> names, T& target, std::string help, std::string setting = "",
            std::optional<CLI::Validator> check = std::nullopt, bool show_default = true) {
  return {
      {std::move(names), std::move(help), std::move(setting)},
      [&target, check, show_default](CLI::App& app, const std::string& n, const std::string& h) {
        CLI::Option* o = app.add_option(n, target, h);
        if (check) o->check(*check);
        if (show_default) o->capture_default_str();
        return o;
      }};
}

Flag flag(std::vector<std::string> names, bool& target, std::string help,
          std::string setting = "") {
  return {{std::move(names), std::move(help), std::move(setting)},
          [&target](CLI::App& app, const std::string& n, const std::string& h) {
            return app.add_flag(n, target, h);
          }};
}

std::vector<Flag> trainer_flags(Trainer trainer, Values& v) {
  if (trainer == Trainer::kPrecisionGating) {
    return {
        option({"-w", "--wbits"}, v.wbits, "Weight bits (0: floating point)", "wbits"),
        option({"-a", "--abits"}, v.abits, "Activation bits (0: floating point)", "abits"),
        flag({"-pact", "--ispact"}, v.pact, "PACT clipped activations", "pact"),
        flag({"-pg", "--ispg"}, v.pg, "Precision gating (needs -a above -pb)", "conv"),
        option({"-pb", "--pbits"}, v.pbits, "Prediction (MSB) bits, below -a", "pred_bits"),
        option({"-gtar", "--gtarget"}, v.gtarget, "Gating target of the thresholds", "gtarget"),
        option({"-sg", "--sigma"}, v.sigma, "Weight of the gating loss", "gating_weight"),
        flag({"-spbp", "--sparse_bp"}, v.sparse_bp, "Back-propagate through open gates only",
             "sparse_bp"),
    };
  }
  return {
      option({"-lr", "--lr"}, v.lr, "Initial learning rate", "lr", at_least(0, false)),
      option({"-wd", "--wt_decay"}, v.wt_decay,
             "Weight decay (not on thresholds and 1-D parameters)", "weight_decay",
             at_least(0, true)),
      option({"-pt", "--partitions"}, v.partitions, "The base path sees 1/pt of the input channels",
             "partitions"),
      option({"-gi", "--ginit"}, v.ginit, "Initial gate threshold", "ginit"),
      option({"-a", "--alpha"}, v.alpha, "Sigmoid steepness of the gate", "cg_alpha",
             at_least(0, false)),
      flag({"-group", "--use_group"}, v.use_group, "Block-diagonal (grouped) base path",
           "use_group"),
      option({"-gtar", "-gt", "--gtarget"}, v.gtarget, "Gating target of the thresholds",
             "gtarget"),
      flag({"-spbp", "--sparse_bp"}, v.sparse_bp, "Back-propagate through open gates only",
           "sparse_bp"),
      flag({"-cg", "--use_cg"}, v.use_cg, "Channel gating (without it: plain convs)", "conv"),
      flag({"-shuffle", "--use_shuffle"}, v.shuffle, "Channel-shuffle the gated convs' inputs",
           "shuffle"),
      flag({"-postact", "--use_postact"}, v.postact, "Post-activated ResNet", "layout"),
  };
}

std::vector<Flag> common_flags(Values& v) {
  train::JobConfig& job = v.inv.job;
  return {
      flag({"-s", "--save"}, job.save, "Save the trained model to --save-dir", "save"),
      flag({"-t", "--test"}, job.test_only, "Only evaluate (the checkpoint given with -p)"),
      option({"-p", "--path"}, job.load_path,
             "Checkpoint to evaluate (-t) or to start training from", "", CLI::ExistingFile, false),
      option({"-gpu", "--which_gpus"}, v.inv.gpus, "CUDA device(s), e.g. 0; without CUDA the CPU",
             "", std::nullopt, false),
      option({"--epochs"}, v.epochs, "Training epochs", "epochs", CLI::Range(1, 100000)),
      option({"--milestones"}, v.milestones,
             "Epochs at which the learning rate drops 10x, comma list (default: the original's "
             "fractions of --epochs)",
             "milestones", std::nullopt, false),
      option({"--batch-size"}, job.batch_size, "Images per batch", "batch_size",
             CLI::Range(1, 65536)),
      flag({"--sync-bn"}, job.sync_bn,
           "BatchNorm statistics over the whole batch of a data-parallel run (default: each "
           "process's own)",
           "sync_bn"),
      option({"--teacher"}, job.distillation.teacher,
             "Distil from this model's soft targets: a checkpoint of ours, or a PyTorch state dict "
             "of a float network (see --teacher-arch)",
             "teacher", CLI::ExistingFile, false),
      option({"--teacher-arch"}, job.distillation.teacher_arch,
             "Network of a --teacher given as a plain state dict: resnet20, resnet18 or vgg16 "
             "(default: the student's --arch)",
             "teacher_arch", CLI::IsMember({"resnet20", "resnet18", "vgg16"}), false),
      option({"--kd-temperature"}, job.distillation.temperature, "Distillation temperature T",
             "kd_temperature", at_least(0, false)),
      option({"--kd-alpha"}, job.distillation.alpha,
             "Weight A of the distillation term: A T^2 KL(teacher || student) + (1 - A) cross "
             "entropy",
             "kd_alpha", CLI::Range(0.0, 1.0)),
      option({"--arch"}, v.arch,
             "Network: resnet20 (the CIFAR ResNets, see --depth), resnet18 or vgg16 (torchvision's "
             "layouts)",
             "arch", CLI::IsMember({"resnet20", "resnet18", "vgg16"})),
      flag({"--imagenet-stem"}, v.imagenet_stem,
           "resnet18: torchvision's 7x7 stride-2 stem and max-pool; vgg16: its 7x7 pool and three "
           "linear layers (default: the CIFAR forms)",
           "imagenet_stem"),
      option({"--depth"}, v.depth, "ResNet depth: 6n+2 (20, 32, 44, 56, 110)", "depth"),
      option({"--dataset"}, job.dataset,
             "cifar10, fashion-mnist, or imagefolder (--data-dir DIR with DIR/train/<class>/ and "
             "DIR/val/<class>/ of JPEG or PNG files)",
             "dataset", CLI::IsMember({"cifar10", "fashion-mnist", "imagefolder"})),
      option({"--data-dir"}, v.data_dir,
             "Data directory (default: " + train::default_data_dir("cifar10") + " for cifar10, " +
                 train::default_data_dir("fashion-mnist") + " for fashion-mnist)",
             "data_dir", std::nullopt, false),
      option({"--train-limit"}, job.train_limit,
             "Use only the first N training images (0: all; of an image folder N spread over its "
             "classes)",
             "train_limit", at_least(0, true)),
      option({"--test-limit"}, job.test_limit,
             "Use only the first N test images (0: all; of an image folder N spread over its "
             "classes)",
             "test_limit", at_least(0, true)),
      option({"--image-size"}, job.image_size,
             "Image folders: side of the square images, training crops and evaluation centre "
             "crops (default 224)",
             "image_size", CLI::Range(8, 4096), false),
      option({"--bad-images"}, job.bad_images,
             "Image folders: a file that fails to decode stops the run (refuse) or is named and "
             "replaced by the next image (skip)",
             "bad_images", CLI::IsMember({"refuse", "skip"})),
      option({"--loader-threads"}, job.loader_threads,
             "Image folders: threads decoding images ahead of the step (default: every core, "
             "shared among the processes of a data-parallel run)",
             "loader_threads", CLI::Range(1, 256), false),
      option({"--save-dir"}, job.save_dir, "Where checkpoints are saved", "save_dir"),
      option({"--seed"}, job.seed, "Random seed (weights, order, augmentation)", "seed"),
      option({"--threads"}, v.inv.threads, "Intra-op threads (default: every core)", "",
             CLI::Range(1, 1024), false),
      option({"--skipping"}, v.skipping,
             "Evaluation of gated layers: fastest (measured per layer shape), never (every "
             "output, then the gate selects), always (only the open outputs)",
             "skipping", CLI::IsMember({"fastest", "never", "always"})),
      option({"--integer"}, v.integer,
             "Evaluation of quantized and PG layers in integer arithmetic: always (wherever "
             "exact), never (in float, as the original), fastest (timed per layer shape)",
             "integer", CLI::IsMember({"fastest", "never", "always"})),
      flag({"--quiet"}, v.inv.quiet, "Print only warnings, errors and the final report"),
      option({"--metrics"}, job.metrics_path, "Write per-epoch and final metrics as JSON lines",
             "metrics", std::nullopt, false),
      option({"--metrics-csv"}, job.metrics_csv_path, "Write the per-epoch scalars as CSV",
             "metrics_csv", std::nullopt, false),
      option({"--plot"}, job.plot_path, "Write the training curves as an SVG file", "plot",
             std::nullopt, false),
      option({"--maps"}, job.maps_dir,
             "With -t -p: write each gated layer's decisions for chosen test images as pictures, "
             "and every test image's cost, into this directory",
             "maps", std::nullopt, false),
      option({"--map-images"}, v.map_images,
             "With --maps: how many test images to draw, from the first (N, default 8, at most "
             "64), or which (a comma list of indices, e.g. 3,17,256; one image: 17,)",
             "map_images", std::nullopt, false),
      flag({"--timing"}, job.timing,
           "With -t -p: time the evaluation as the model is and with every gated layer computing "
           "every output (--skipping never), and print the saving against the counted one",
           "timing"),
      option({"--save-every"}, job.save_every,
             "Write a resumable checkpoint to --save-dir every N epochs (0: only on Ctrl-C)",
             "save_every", at_least(0, true)),
      option({"--export-pytorch"}, job.export_pytorch_path,
             "Also write the model as a state dict file Python's torch.load reads (with -t -p, "
             "or after training)",
             "", std::nullopt, false),
      option({"--resume"}, job.resume_path,
             "Continue the run a resumable checkpoint describes (no other flag needed)", "",
             CLI::ExistingFile, false),
  };
}

std::vector<Flag> all_flags(Trainer trainer, Values& v) {
  std::vector<Flag> flags = trainer_flags(trainer, v);
  for (auto& f : flags) f.info.trainer_specific = true;
  for (auto& f : common_flags(v)) flags.push_back(std::move(f));
  return flags;
}

// A spelling CLI11 reads itself: "-x" or "--long".
bool cli11_name(const std::string& name) { return name.rfind("--", 0) == 0 || name.size() == 2; }

std::string long_name(const FlagInfo& info) { return info.names.back(); }

// As users may have typed it: "-pg/--ispg".
std::string display_name(const FlagInfo& info) {
  std::string out;
  for (const auto& n : info.names) out += (out.empty() ? "" : "/") + n;
  return out;
}

// ---- from flags to a job ----

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
    if (used != item.size() || value < 1 || value > epochs) {
      throw std::invalid_argument("--milestones: '" + item + "' is not an epoch between 1 and " +
                                  std::to_string(epochs) +
                                  " (expected a comma list, e.g. 100,150)");
    }
    out.push_back(value);
  }
  return out;
}

// --map-images: a count N (1 to 64), or a comma list of image indices.
void parse_map_images(const std::string& text, train::JobConfig& job) {
  const std::string expected =
      " (expected a number of images from 1 to 64, or a comma list of test image indices, e.g. "
      "3,17,256)";
  const auto number = [&](const std::string& item) {
    size_t used = 0;
    int64_t value = -1;
    try {
      value = std::stoll(item, &used);
    } catch (const std::exception&) {
    }
    if (item.empty() || used != item.size() || value < 0 || item[0] == '+' || item[0] == '-') {
      throw std::invalid_argument("--map-images: '" + item + "' is not an image index" + expected);
    }
    return value;
  };
  if (text.find(',') == std::string::npos) {
    const int64_t count = number(text);
    if (count < 1 || count > 64) {
      throw std::invalid_argument("--map-images: " + text + " images is out of range" + expected);
    }
    job.map_image_count = count;
    return;
  }
  std::stringstream stream(text);
  std::string item;
  std::vector<int64_t> indices;
  while (std::getline(stream, item, ',')) {
    const int64_t index = number(item);
    if (std::find(indices.begin(), indices.end(), index) != indices.end()) {
      throw std::invalid_argument("--map-images: image " + item + " is named twice" + expected);
    }
    indices.push_back(index);
  }
  if (indices.size() > 64) {
    throw std::invalid_argument("--map-images: " + std::to_string(indices.size()) +
                                " images is out of range" + expected);
  }
  job.map_images = indices;
}

void build_job(Trainer trainer, Values& v) {
  train::JobConfig& job = v.inv.job;
  const bool pg = trainer == Trainer::kPrecisionGating;
  job.program = pg ? "pg-cifar10" : "cg-cifar10";
  using models::BlockLayout;
  using models::ConvKind;
  if (pg) {
    job.model = models::ResNetOptions(v.pg ? ConvKind::kPrecisionGated : ConvKind::kQuantized)
                    .wbits(v.wbits)
                    .abits(v.abits)
                    .pact(v.pact)
                    .pred_bits(v.pbits)
                    .sparse_bp(v.sparse_bp);
  } else {
    job.model =
        models::ResNetOptions(v.use_cg ? ConvKind::kChannelGated : ConvKind::kFloat,
                              v.postact ? BlockLayout::kPostActivated : BlockLayout::kStandard)
            .partitions(v.partitions)
            .ginit(v.ginit)
            .cg_alpha(v.alpha)
            .use_group(v.use_group)
            .shuffle(v.shuffle)
            .sparse_bp(v.sparse_bp);
  }
  job.model.depth(v.depth)
      .skipping(layers::skipping_from_string(v.skipping))
      .integer(layers::integer_from_string(v.integer))
      .arch(models::arch_from_string(v.arch))
      .imagenet_stem(v.imagenet_stem);
  if (job.model.imagenet_stem() && job.model.arch() == models::Arch::kResNet) {
    throw std::invalid_argument("--imagenet-stem is a form of --arch resnet18 or vgg16");
  }
  const train::Recipe recipe =
      pg ? train::pg_recipe(v.sigma, v.gtarget) : train::cg_recipe(v.lr, v.wt_decay, v.gtarget);
  job.sgd = recipe.sgd;
  job.gating_loss = recipe.gating_loss;
  job.epochs = v.epochs;
  job.milestones = v.milestones.empty() ? recipe.milestones(job.epochs)
                                        : parse_milestones(v.milestones, job.epochs);
  job.data_dir = v.data_dir;
  if (job.test_only && job.load_path.empty()) {
    throw std::invalid_argument(
        "-t/--test evaluates a saved model: give its checkpoint with -p FILE");
  }
  if (!job.maps_dir.empty() && !job.test_only) {
    throw std::invalid_argument(
        "--maps draws what the gates of a saved model decide: use it with -t -p FILE");
  }
  if (job.timing && !job.test_only) {
    throw std::invalid_argument(
        "--timing times the evaluation of a saved model: use it with -t -p FILE");
  }
  if (!v.map_images.empty()) {
    if (job.maps_dir.empty()) {
      throw std::invalid_argument("--map-images chooses the images of --maps DIR: give --maps");
    }
    parse_map_images(v.map_images, job);
  }
}

// A refused setting as users typed it: every setting the library's message
// names, written as the flag that sets it (settings without one as they are).
std::string in_flag_names(const SettingError& error, const std::vector<FlagInfo>& flags) {
  return error.message([&](const std::string& setting) {
    for (const auto& f : flags) {
      if (f.setting == setting) return display_name(f);
    }
    return setting;
  });
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
    throw std::invalid_argument("-gpu: '" + gpus + "' is not a device number (expected e.g. 0)");
  }
  if (!torch::cuda::is_available()) {
    spdlog::warn(
        "warning: -gpu {}: no CUDA device available to this LibTorch build, running on the CPU",
        gpus);
    return torch::kCPU;
  }
  if (index < 0 || index >= static_cast<int>(torch::cuda::device_count())) {
    throw std::invalid_argument("-gpu: device " + std::to_string(index) + " does not exist (" +
                                std::to_string(torch::cuda::device_count()) + " CUDA devices)");
  }
  if (first != gpus) {
    spdlog::warn("warning: -gpu {}: a process trains on one device; using CUDA device {}", gpus,
                 index);
  }
  spdlog::info("Training and evaluating on CUDA device {} of {}", index,
               torch::cuda::device_count());
  return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
}

}  // namespace

std::vector<FlagInfo> flag_table(Trainer trainer) {
  Values unused;
  std::vector<FlagInfo> out;
  for (const auto& f : all_flags(trainer, unused)) out.push_back(f.info);
  return out;
}

Invocation parse_command_line(Trainer trainer, const std::vector<std::string>& raw_args) {
  const bool pg = trainer == Trainer::kPrecisionGating;
  Values v;
  v.epochs = (pg ? train::pg_recipe(0, 0) : train::cg_recipe(0, 0, 0)).epochs;
  const std::vector<Flag> flags = all_flags(trainer, v);

  CLI::App app(pg ? "Train and evaluate quantized and precision-gated ResNets (PG, ICLR 2020)."
                  : "Train and evaluate channel-gated ResNets (CG, NeurIPS 2019).",
               pg ? "pg-cifar10" : "cg-cifar10");
  app.get_formatter()->column_width(34);
  std::vector<Spelling> spellings;
  for (const auto& f : flags) {
    std::string names, originals;
    for (const auto& n : f.info.names) {
      if (cli11_name(n)) {
        names += (names.empty() ? "" : ",") + n;
      } else {
        spellings.push_back({n, long_name(f.info)});
        originals += (originals.empty() ? "" : ", ") + n;
      }
    }
    f.add(app, names, originals.empty() ? f.info.help : f.info.help + " (" + originals + ")");
  }
  const std::vector<std::string> args = rewrite_spellings(raw_args, spellings);
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  try {
    app.parse(static_cast<int>(argv.size()), argv.data());
  } catch (const CLI::CallForHelp&) {
    throw HelpRequested(app.help());
  }
  try {
    build_job(trainer, v);
    // Which settings the user gave, for checking them against a checkpoint.
    for (const auto& f : flags) {
      if (!f.info.setting.empty() && app.count(long_name(f.info)) > 0) {
        v.inv.job.explicit_settings[f.info.setting] = display_name(f.info);
      }
    }
    if (v.inv.job.model.arch() != models::Arch::kResNet &&
        v.inv.job.explicit_settings.count("depth") > 0) {
      throw std::invalid_argument(
          "--depth sets the depth of the CIFAR ResNets (--arch resnet20), not of --arch " + v.arch);
    }
    models::validate(v.inv.job.model);
  } catch (const SettingError& e) {
    throw std::invalid_argument(in_flag_names(e, flag_table(trainer)));
  }
  return v.inv;
}

int run_program(Trainer trainer, int argc, char** argv) {
  train::configure_logging(/*quiet=*/false);
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
  train::configure_logging(inv.quiet);
  if (inv.quiet) inv.job.progress = train::ProgressStyle::kQuiet;
  train::configure_runtime(inv.threads);
  train::install_stop_handlers();
  try {
    inv.job.device = choose_device(inv.gpus);
    train::run_job(inv.job);
  } catch (const train::Interrupted& interrupted) {
    return 128 + interrupted.signal;
  } catch (const SettingError& e) {
    std::cerr << program << ": error: " << in_flag_names(e, flag_table(trainer)) << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << program << ": error: " << error_text(e) << "\n";
    return 1;
  }
  return 0;
}

}  // namespace dnn_gating::cli
