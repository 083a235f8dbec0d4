// gating-report: summarises a trainer's --metrics file and draws or converts
// it after the fact (the run need not have asked for --plot or --metrics-csv).
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>

#include "dnn_gating/report/metrics.h"
#include "dnn_gating/report/plot.h"
#include "dnn_gating/report/report.h"

namespace {
namespace fs = std::filesystem;
using dnn_gating::train::EpochRecord;
using dnn_gating::train::FinalRecord;
using dnn_gating::train::MetricsLog;

/// What the command line asked for.
struct ReportFlags {
  std::string metrics;  ///< the JSON-lines file to read
  std::string plot;     ///< SVG to write, "" for none
  std::string csv;      ///< CSV to write, "" for none
};

std::string cell(const std::optional<double>& value, int decimals) {
  return value ? fmt::format("{:.{}f}", *value, decimals) : std::string("-");
}

void log_epochs(const MetricsLog& log) {
  if (log.epochs.empty()) {
    spdlog::info("no epoch records");
    return;
  }
  bool pg = false, cg = false;
  for (const auto& r : log.epochs) {
    pg = pg || r.pg_average_bits.has_value();
    cg = cg || r.cg_flop_reduction.has_value();
  }
  // One cost column: a model is either precision- or channel-gated.
  const char* cost_header = pg ? "avg bits" : cg ? "FLOP red." : "";
  spdlog::info("{:>5} {:>9} {:>8} {:>8} {:>7} {:>10} {:>9} {:>8} {:>8}", "epoch", "lr", "loss",
               "train %", "test %", "sparsity %", cost_header, "seconds", "img/s");
  for (const auto& r : log.epochs) {
    const std::optional<double> cost = pg ? r.pg_average_bits : r.cg_flop_reduction;
    spdlog::info("{:>5} {:>9.3g} {:>8.4f} {:>8.2f} {:>7} {:>10} {:>9} {:>8.1f} {:>8.0f}", r.epoch,
                 r.lr, r.train_loss, r.train_accuracy, cell(r.test_accuracy, 2),
                 cell(r.sparsity, 2), (pg || cg) ? cell(cost, 3) : "", r.seconds,
                 r.images_per_second);
  }
}

void log_final(const std::optional<FinalRecord>& final_record) {
  if (!final_record) {
    spdlog::info("no final record (the run did not finish)");
    return;
  }
  const FinalRecord& f = *final_record;
  spdlog::info("");
  spdlog::info("{}, {} epochs:", f.program, f.epochs);
  // The trainers' own report lines, which log parsers look for.
  for (const auto& line : dnn_gating::train::accuracy_lines(
           f.test_images, f.test_accuracy, f.sparsity, f.confusion, f.class_names)) {
    spdlog::info("{}", line);
  }
  if (f.pg_average_bits) spdlog::info("PG average activation bits: {:.3f}", *f.pg_average_bits);
  if (f.cg_flop_reduction) spdlog::info("CG FLOP reduction: {:.3f}x", *f.cg_flop_reduction);
  if (!f.layer_on_fraction.empty()) {
    spdlog::info("{:<16} {:>7}", "gated layer", "on %");
    for (const auto& [name, fraction] : f.layer_on_fraction) {
      spdlog::info("{:<16} {:>7.2f}", name, 100.0 * fraction);
    }
  }
  if (!f.checkpoint.empty()) spdlog::info("Checkpoint: " + f.checkpoint);
}

// Writing over the input would destroy the history this program reads.
void check_not_input(const std::string& output, const std::string& flag, const std::string& input) {
  if (!output.empty() && fs::weakly_canonical(output) == fs::weakly_canonical(input)) {
    throw std::runtime_error(flag + " " + output + ": that is the metrics file being read");
  }
}

void run(const ReportFlags& flags) {
  check_not_input(flags.plot, "--plot", flags.metrics);
  check_not_input(flags.csv, "--csv", flags.metrics);
  const MetricsLog log = dnn_gating::train::read_metrics(flags.metrics);
  log_epochs(log);
  log_final(log.final_record);
  if (!flags.csv.empty()) {
    // The trainer's own writer, so the file is the one --metrics-csv would have made.
    dnn_gating::train::MetricsWriter writer("", flags.csv);
    for (const auto& r : log.epochs) writer.write_epoch(r);
    spdlog::info("Wrote " + flags.csv);
  }
  if (!flags.plot.empty()) {
    const std::string name = fs::path(flags.metrics).filename().string();
    const std::string title = log.final_record ? log.final_record->program + ": " + name : name;
    dnn_gating::train::write_training_plot(log.epochs, flags.plot, title);
    spdlog::info("Wrote " + flags.plot);
  }
}

}  // namespace

int main(int argc, char** argv) {
  spdlog::set_pattern("%v");
  const std::string program = "gating-report";
  CLI::App app(
      "Summarise a pg-cifar10/cg-cifar10 --metrics file; optionally plot it or convert it to CSV.",
      program);
  ReportFlags flags;
  app.add_option("metrics", flags.metrics, "JSON-lines metrics file written by --metrics")
      ->required();
  app.add_option("--plot", flags.plot, "Write the training curves to this SVG file");
  app.add_option("--csv", flags.csv, "Write the per-epoch figures to this CSV file");
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success&) {
    std::cout << app.help();
    return 0;
  } catch (const CLI::ParseError& e) {
    std::cerr << program << ": error: " << e.what() << " (see --help)\n";
    return 2;
  }
  try {
    run(flags);
  } catch (const std::exception& e) {
    std::cerr << program << ": error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
