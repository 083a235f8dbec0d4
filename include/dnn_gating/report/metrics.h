#pragma once
/// Machine-readable history of a training run: one JSON line per epoch plus
/// one for the final evaluation (`--metrics`), and the per-epoch scalars as
/// CSV (`--metrics-csv`) for spreadsheets and pandas.
///
/// JSON keys are the field names of EpochRecord and FinalRecord
/// (job/records.h). An absent optional is left out of
/// its line (never written as null); a non-finite number (a diverged loss) is
/// written as null and reads back as NaN.

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "dnn_gating/job/records.h"

namespace dnn_gating::train {

/// The CSV header line, without the newline: the scalar fields of
/// EpochRecord in their order ("epoch,lr,train_loss,...,images_per_second").
std::string metrics_csv_header();

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
