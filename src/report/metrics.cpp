#include "dnn_gating/report/metrics.h"

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <type_traits>

#include "dnn_gating/io/atomic_file.h"
#include "report/record_fields.h"

namespace dnn_gating::train {
namespace fs = std::filesystem;
// Ordered so that a line reads in the documented field order and the layers
// keep the model's order through a round trip.
using Json = nlohmann::ordered_json;

namespace {

// ---- writing ----

// Shortest text that reads back as the same double, so the CSV loses nothing.
std::string csv_number(double value) {
  char buffer[64];
  const auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
  return std::string(buffer, result.ptr);
}

std::string csv_number(const std::optional<double>& value) {
  return value ? csv_number(*value) : std::string();
}

Json layers_json(const std::vector<std::pair<std::string, double>>& layers) {
  Json out = Json::object();
  for (const auto& [name, fraction] : layers) out[name] = fraction;
  return out;
}

// Adds one field to a line: absent optionals are left out, and so are
// empty lists of fields that may be absent.
struct PutField {
  Json& j;
  template <typename T>
  void operator()(const char* key, const T& value, bool may_be_absent = false) const {
    if constexpr (std::is_same_v<T, std::optional<double>>) {
      if (value) j[key] = *value;
    } else if constexpr (std::is_same_v<T, std::vector<std::pair<std::string, double>>>) {
      if (!(may_be_absent && value.empty())) j[key] = layers_json(value);
    } else {
      j[key] = value;
    }
  }
};

Json epoch_json(const EpochRecord& r) {
  Json j;
  j["type"] = "epoch";
  for_each_epoch_field(r, PutField{j});
  return j;
}

Json final_json(const FinalRecord& r) {
  Json j;
  j["type"] = "final";
  for_each_final_field(r, PutField{j});
  return j;
}

std::string dump_line(const Json& j) {
  // A class or layer name that is not UTF-8 must not lose the whole record.
  return j.dump(-1, ' ', /*ensure_ascii=*/false, Json::error_handler_t::replace);
}

// ---- reading ----

// Where a record came from, for error messages.
struct Where {
  const std::string& path;
  int64_t line;
};

[[noreturn]] void fail(const Where& where, const std::string& what) {
  throw std::runtime_error(where.path + ", line " + std::to_string(where.line) + ": " + what);
}

const Json& required(const Json& record, const char* key, const Where& where) {
  const auto it = record.find(key);
  if (it == record.end()) fail(where, std::string("missing field \"") + key + "\"");
  return *it;
}

// null stands for a non-finite number (JSON has no NaN).
double as_number(const Json& value, const char* key, const Where& where) {
  if (value.is_null()) return std::numeric_limits<double>::quiet_NaN();
  if (!value.is_number()) {
    fail(where, std::string("field \"") + key + "\" must be a number, not " + value.type_name());
  }
  return value.get<double>();
}

double number(const Json& record, const char* key, const Where& where) {
  return as_number(required(record, key, where), key, where);
}

std::optional<double> optional_number(const Json& record, const char* key, const Where& where) {
  const auto it = record.find(key);
  if (it == record.end()) return std::nullopt;
  return as_number(*it, key, where);
}

int64_t as_integer(const Json& value, const std::string& key, const Where& where) {
  const bool too_big =
      value.is_number_unsigned() &&
      value.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  if (!value.is_number_integer() || too_big) {
    fail(where,
         "field \"" + key + "\" must be an integer, not " +
             (value.is_number() ? std::string("the number ") + value.dump() : value.type_name()));
  }
  return value.get<int64_t>();
}

int64_t integer(const Json& record, const char* key, const Where& where) {
  return as_integer(required(record, key, where), key, where);
}

std::string text(const Json& record, const char* key, const Where& where) {
  const Json& value = required(record, key, where);
  if (!value.is_string()) {
    fail(where, std::string("field \"") + key + "\" must be a string, not " + value.type_name());
  }
  return value.get<std::string>();
}

std::vector<std::pair<std::string, double>> layers(const Json& record, const Where& where) {
  std::vector<std::pair<std::string, double>> out;
  const auto it = record.find("layer_on_fraction");
  if (it == record.end()) return out;
  if (!it->is_object()) {
    fail(where,
         std::string("field \"layer_on_fraction\" must be an object of layer -> fraction, not ") +
             it->type_name());
  }
  for (const auto& [name, fraction] : it->items()) {
    out.emplace_back(name, as_number(fraction, "layer_on_fraction", where));
  }
  return out;
}

std::vector<std::vector<int64_t>> confusion(const Json& record, const Where& where) {
  std::vector<std::vector<int64_t>> out;
  const auto it = record.find("confusion");
  if (it == record.end()) return out;
  if (!it->is_array())
    fail(where, std::string("field \"confusion\" must be an array, not ") + it->type_name());
  for (const auto& row : *it) {
    if (!row.is_array()) {
      fail(where,
           std::string("field \"confusion\" must hold arrays of counts, not ") + row.type_name());
    }
    std::vector<int64_t> counts;
    for (const auto& count : row) counts.push_back(as_integer(count, "confusion", where));
    out.push_back(std::move(counts));
  }
  return out;
}

std::vector<std::string> class_names(const Json& record, const Where& where) {
  std::vector<std::string> out;
  const auto it = record.find("class_names");
  if (it == record.end()) return out;
  if (!it->is_array())
    fail(where, std::string("field \"class_names\" must be an array, not ") + it->type_name());
  for (const auto& name : *it) {
    if (!name.is_string()) {
      fail(where, std::string("field \"class_names\" must hold strings, not ") + name.type_name());
    }
    out.push_back(name.get<std::string>());
  }
  return out;
}

// Reads one field of a line into a record: numbers, integers and text are
// required unless they may be absent; optionals and lists may be absent.
struct GetField {
  const Json& j;
  const Where& where;
  template <typename T>
  void operator()(const char* key, T& value, bool may_be_absent = false) const {
    if constexpr (std::is_same_v<T, std::optional<double>>) {
      value = optional_number(j, key, where);
    } else if constexpr (std::is_same_v<T, std::vector<std::pair<std::string, double>>>) {
      value = layers(j, where);
    } else if constexpr (std::is_same_v<T, std::vector<std::vector<int64_t>>>) {
      value = confusion(j, where);
    } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
      value = class_names(j, where);
    } else if (may_be_absent && !j.contains(key)) {
      value = T();
    } else if constexpr (std::is_same_v<T, std::string>) {
      value = text(j, key, where);
    } else if constexpr (std::is_same_v<T, int64_t>) {
      value = integer(j, key, where);
    } else {
      static_assert(std::is_same_v<T, double>, "a field type the reader does not know");
      value = number(j, key, where);
    }
  }
};

EpochRecord read_epoch(const Json& j, const Where& where) {
  EpochRecord r;
  for_each_epoch_field(r, GetField{j, where});
  return r;
}

FinalRecord read_final(const Json& j, const Where& where) {
  FinalRecord r;
  for_each_final_field(r, GetField{j, where});
  return r;
}

// nlohmann's message starts "[json.exception.parse_error.101] parse error at
// line 1, column 7: ..."; the line and column within one record would only
// confuse next to the file's line number, so keep the explanation alone.
std::string parse_problem(const nlohmann::json::parse_error& e) {
  std::string what = e.what();
  const auto bracket = what.find("] ");
  if (bracket != std::string::npos) what = what.substr(bracket + 2);
  const auto colon = what.find(": ");
  if (what.rfind("parse error", 0) == 0 && colon != std::string::npos)
    what = what.substr(colon + 2);
  return "not valid JSON at column " + std::to_string(e.byte) + " (" + what + ")";
}

bool blank(const std::string& line) { return line.find_first_not_of(" \t\r") == std::string::npos; }

}  // namespace

std::string metrics_csv_header() {
  std::string out;
  const EpochRecord columns;
  for_each_epoch_field(columns, [&](const char* key, const auto& value, bool = false) {
    if constexpr (kIsScalar<std::decay_t<decltype(value)>>) {
      out += (out.empty() ? "" : ",") + std::string(key);
    }
  });
  return out;
}

MetricsWriter::MetricsWriter(const std::string& jsonl_path, const std::string& csv_path,
                             const std::vector<EpochRecord>& earlier)
    : jsonl_path_(jsonl_path), csv_path_(csv_path) {
  csv_ = metrics_csv_header() + '\n';
  for (const auto& r : earlier) append_epoch(r);
  flush();  // creates both files now: an unwritable path fails before any training
}

void MetricsWriter::write_epoch(const EpochRecord& r) {
  append_epoch(r);
  flush();
}

void MetricsWriter::append_epoch(const EpochRecord& r) {
  jsonl_ += dump_line(epoch_json(r)) + '\n';
  std::string row;
  for_each_epoch_field(r, [&](const char*, const auto& value, bool = false) {
    using T = std::decay_t<decltype(value)>;
    if constexpr (std::is_same_v<T, int64_t>) {
      row += (row.empty() ? "" : ",") + std::to_string(value);
    } else if constexpr (kIsScalar<T>) {
      row += (row.empty() ? "" : ",") + csv_number(value);
    }
  });
  csv_ += row + '\n';
}

void MetricsWriter::write_final(const FinalRecord& r) {
  jsonl_ += dump_line(final_json(r)) + '\n';
  flush();
}

void MetricsWriter::flush() const {
  if (!jsonl_path_.empty()) write_file_atomically(jsonl_path_, jsonl_, "metrics file");
  if (!csv_path_.empty()) write_file_atomically(csv_path_, csv_, "metrics file");
}

MetricsLog read_metrics(const std::string& jsonl_path) {
  std::ifstream file(jsonl_path);
  if (!file.is_open()) {
    throw std::runtime_error(jsonl_path + ": cannot open the metrics file (no such file?)");
  }
  std::ostringstream text;
  text << file.rdbuf();
  if (file.bad()) throw std::runtime_error(jsonl_path + ": reading the metrics file failed");
  return parse_metrics(text.str(), jsonl_path);
}

MetricsLog parse_metrics(const std::string& contents, const std::string& jsonl_path) {
  std::istringstream in(contents);
  MetricsLog log;
  int64_t final_line = 0;
  std::string line;
  for (int64_t number = 1; std::getline(in, line); ++number) {
    if (blank(line)) continue;
    const Where where{jsonl_path, number};
    Json record;
    try {
      record = Json::parse(line);
    } catch (const nlohmann::json::parse_error& e) {
      fail(where, parse_problem(e));
    }
    if (!record.is_object())
      fail(where, std::string("expected a JSON object, not ") + record.type_name());
    const std::string type = text(record, "type", where);
    try {
      if (type == "epoch") {
        log.epochs.push_back(read_epoch(record, where));
      } else if (type == "final") {
        if (log.final_record) {
          fail(where,
               "a second final record (the first is on line " + std::to_string(final_line) + ")");
        }
        log.final_record = read_final(record, where);
        final_line = number;
      }
      // Other types are left to newer readers.
    } catch (const nlohmann::json::exception& e) {
      fail(where, e.what());  // the checks above should leave nothing for nlohmann to reject
    }
  }
  return log;
}

}  // namespace dnn_gating::train
