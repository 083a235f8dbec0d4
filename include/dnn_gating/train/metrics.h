#pragma once
/// Machine-readable history of a training run: one JSON line per epoch plus
/// one for the final evaluation (`--metrics`), and the per-epoch scalars as
/// CSV (`--metrics-csv`) for spreadsheets and pandas.
///
/// JSON keys are the field names below. An absent optional is left out of
/// its line (never written as null); a non-finite number (a diverged loss) is
/// written as null and reads back as NaN.

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace dnn_gating::train {

/// One epoch of a training run, as written to the metrics files.
struct EpochRecord {
  int64_t epoch = 0;                    ///< 1-based
  double lr = 0;                        ///< learning rate of the epoch's first step
  double train_loss = 0;                ///< mean over the epoch's batches (cross entropy + gating)
  double train_accuracy = 0;            ///< percent
  std::optional<double> test_accuracy;  ///< percent, only on epochs that evaluated
  std::optional<double> sparsity;       ///< update-phase sparsity, percent
  /// Gated layer -> fraction of its outputs that took the update phase
  /// (evaluated epochs; empty otherwise), in the model's layer order.
  std::vector<std::pair<std::string, double>> layer_on_fraction;
  std::optional<double> pg_average_bits;    ///< PG cost figure
  std::optional<double> cg_flop_reduction;  ///< CG cost figure (x)
  double seconds = 0;                       ///< wall time of the epoch
  double images_per_second = 0;             ///< training throughput of the epoch
};

/// The final record: the report of the final evaluation.
struct FinalRecord {
  std::string program;                      ///< "pg-cifar10" or "cg-cifar10"
  int64_t epochs = 0;                       ///< epochs trained (0 for an evaluation-only run)
  int64_t test_images = 0;                  ///< images the evaluation saw
  double test_accuracy = 0;                 ///< percent
  double sparsity = 0;                      ///< update-phase sparsity, percent
  std::optional<double> pg_average_bits;    ///< PG cost figure
  std::optional<double> cg_flop_reduction;  ///< CG cost figure (x)
  /// Gated layer -> on fraction, in the model's layer order.
  std::vector<std::pair<std::string, double>> layer_on_fraction;
  std::vector<std::vector<int64_t>> confusion;  ///< rows: true class, cols: predicted
  std::vector<std::string> class_names;         ///< names of the confusion matrix's classes
  std::string checkpoint;                       ///< "" if none
};

/// The CSV header line, without the newline.
inline constexpr char kMetricsCsvHeader[] =
    "epoch,lr,train_loss,train_accuracy,test_accuracy,sparsity,pg_average_bits,"
    "cg_flop_reduction,seconds,images_per_second";

/// Writes `--metrics FILE` (JSON lines: {"type":"epoch",...} per epoch and one
/// {"type":"final",...}) and `--metrics-csv FILE` (the header, then one row of
/// per-epoch scalars per epoch; an empty cell where an optional is absent;
/// numbers in their shortest form that reads back exactly).
///
/// Either path may be "" (that file is not written). Both files are created
/// (with their parent directories) or truncated by the constructor, and
/// rewritten atomically after every record (write_file_atomically): a run
/// that crashes later keeps its history, and no reader sees half a line.
/// Errors (std::runtime_error) name the file.
class MetricsWriter {
 public:
  /// Creates the files, starting with the records of `earlier` epochs (a
  /// resumed run's); throws if one cannot be written.
  MetricsWriter(const std::string& jsonl_path, const std::string& csv_path,
                const std::vector<EpochRecord>& earlier = {});

  /// Appends one epoch to both files.
  void write_epoch(const EpochRecord& record);

  /// Appends the final record to the JSON-lines file (the CSV holds epochs only).
  void write_final(const FinalRecord& record);

  /// The JSON-lines text written so far (whether or not it goes to a file).
  const std::string& jsonl() const { return jsonl_; }

 private:
  void append_epoch(const EpochRecord& record);
  void flush() const;

  std::string jsonl_path_;
  std::string csv_path_;
  std::string jsonl_;  ///< the JSON-lines file's contents so far
  std::string csv_;    ///< the CSV file's contents so far
};

/// What a JSON-lines metrics file holds.
struct MetricsLog {
  std::vector<EpochRecord> epochs;          ///< in file order
  std::optional<FinalRecord> final_record;  ///< absent if the run did not finish
};

/// Reads the epoch records (and the final record if present) of a JSON-lines
/// metrics file. Blank lines and records of other types are skipped; a line
/// that is not JSON, lacks a required field, has a field of the wrong type or
/// is a second final record is an error (std::runtime_error) that names the
/// file and the line number: `FILE, line N: what is wrong`.
MetricsLog read_metrics(const std::string& jsonl_path);

/// The same for JSON-lines text; errors name `source` as the file.
MetricsLog parse_metrics(const std::string& text, const std::string& source);

}  // namespace dnn_gating::train
