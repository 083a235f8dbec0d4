#pragma once
/// Command lines of the two trainers: the original flags with their original
/// spellings and defaults, plus this project's additions.

#include "dnn_gating/train/trainer.h"

#include <stdexcept>
#include <string>
#include <vector>

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
  /// Only warnings and errors.
  bool quiet = false;
};

/// Thrown by parse_command_line for --help; what() is the help text.
struct HelpRequested : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Parses `args` (program name first) as the trainer would. Throws
/// HelpRequested for --help, CLI::ParseError for bad flags, and c10::Error
/// for settings that parse but make no sense together.
Invocation parse_command_line(Trainer trainer, const std::vector<std::string>& args);

/// The whole program: parse, configure logging, threads and device, run the
/// job; returns the exit code. User mistakes print one line, no trace.
int run_program(Trainer trainer, int argc, char** argv);

}  // namespace dnn_gating::cli
