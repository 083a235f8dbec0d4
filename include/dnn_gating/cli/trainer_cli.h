#pragma once
/// Command lines of the two trainers: the original flags with their original
/// spellings and defaults, plus this project's additions, all from one table
/// per trainer (parsing, the original spellings, help text, and which model
/// setting each flag sets).

#include <stdexcept>
#include <string>
#include <vector>

#include "dnn_gating/train/trainer.h"

namespace dnn_gating::cli {

/// Which original trainer a command line follows.
enum class Trainer {
  kPrecisionGating,  ///< pg-cifar10
  kChannelGating,    ///< cg-cifar10
};

/// A parsed command line: the job and how the process should run it.
struct Invocation {
  train::JobConfig job;
  /// Intra-op threads (0: every available core).
  int threads = 0;
  /// `-gpu` as given ("" when absent).
  std::string gpus;
  /// Only warnings, errors and the final report.
  bool quiet = false;
};

/// One flag of a trainer as its users see it.
struct FlagInfo {
  /// Every spelling, the original's first: {"-pg", "--ispg"}, {"-w", "--wbits"}, {"--epochs"}.
  std::vector<std::string> names;
  /// Help text.
  std::string help;
  /// The setting it sets (a ResNetOptions field, or "dataset"); "" for the others.
  std::string setting;
  /// True for the flags of one trainer only (false for those both trainers share).
  bool trainer_specific = false;
};

/// The flags of a trainer, from the table that parses them.
std::vector<FlagInfo> flag_table(Trainer trainer);

/// Thrown by parse_command_line for --help; what() is the help text.
struct HelpRequested : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Parses `args` (program name first) as the trainer would. Throws
/// HelpRequested for --help, CLI::ParseError for bad flags, and
/// std::invalid_argument (naming the flag) for settings that parse but make
/// no sense together.
Invocation parse_command_line(Trainer trainer, const std::vector<std::string>& args);

/// The whole program: parse, configure logging, threads and device, run the
/// job; returns the exit code. User mistakes print one line, no trace.
int run_program(Trainer trainer, int argc, char** argv);

}  // namespace dnn_gating::cli
