#include "dnn_gating/train/metrics.h"

#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "dnn_gating/train/plot.h"
#include "test_support.h"

namespace dnn_gating::train {
namespace {

namespace fs = std::filesystem;
using dnn_gating::testing::TempDir;

std::string read_text(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

void write_text(const fs::path& file, const std::string& text) {
  std::ofstream out(file, std::ios::binary);
  out << text;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

size_t count(const std::string& haystack, const std::string& needle) {
  size_t n = 0;
  for (size_t at = haystack.find(needle); at != std::string::npos; at = haystack.find(needle, at + 1)) ++n;
  return n;
}

/// Whether `text` contains `part`; on failure shows both.
::testing::AssertionResult has_substr(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "\"" << part << "\" not found in:\n" << text;
}

/// The message of the std::runtime_error that `f` throws ("" if none).
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

/// An epoch with every optional absent.
EpochRecord bare_epoch() {
  EpochRecord r;
  r.epoch = 1;
  r.lr = 0.1;
  r.train_loss = 2.25;
  r.train_accuracy = 31.5;
  r.seconds = 12.5;
  r.images_per_second = 4000;
  return r;
}

/// An evaluated PG epoch; numbers that need all 17 digits to read back exactly.
EpochRecord full_epoch() {
  EpochRecord r;
  r.epoch = 2;
  r.lr = 0.1 * 0.1;
  r.train_loss = 1.0 / 3.0;
  r.train_accuracy = 45.25;
  r.test_accuracy = 44.75;
  r.sparsity = 0.1 + 0.2;
  // Not in alphabetical order: the model's order must survive.
  r.layer_on_fraction = {{"layer3.0.conv2", 0.125}, {"layer1.0.conv1", 0.5}, {"layer2.1.conv1", 2.0 / 3.0}};
  r.pg_average_bits = 2.125;
  r.seconds = 12.25;
  r.images_per_second = 50000.0 / 12.25;
  return r;
}

FinalRecord full_final() {
  FinalRecord f;
  f.program = "pg-cifar10";
  f.epochs = 2;
  f.test_images = 20;
  f.test_accuracy = 45;
  f.sparsity = 91.25;
  f.pg_average_bits = 2.375;
  f.layer_on_fraction = {{"layer3.0.conv2", 0.25}, {"layer1.0.conv1", 0.75}};
  f.confusion = {{3, 1, 0}, {2, 5, 1}, {0, 0, 8}};
  f.class_names = {"plane", "car", "bird"};
  f.checkpoint = "save/model_resnet-20.pt";
  return f;
}

/// An evaluation-only CG final record: no PG figure, no checkpoint, no classes.
FinalRecord bare_final() {
  FinalRecord f;
  f.program = "cg-cifar10";
  f.test_images = 10000;
  f.test_accuracy = 91.5;
  f.sparsity = 60.25;
  f.cg_flop_reduction = 3.5;
  return f;
}

void expect_same(const EpochRecord& a, const EpochRecord& b) {
  EXPECT_EQ(a.epoch, b.epoch);
  EXPECT_EQ(a.lr, b.lr);
  EXPECT_EQ(a.train_loss, b.train_loss);
  EXPECT_EQ(a.train_accuracy, b.train_accuracy);
  EXPECT_EQ(a.test_accuracy, b.test_accuracy);
  EXPECT_EQ(a.sparsity, b.sparsity);
  EXPECT_EQ(a.layer_on_fraction, b.layer_on_fraction);
  EXPECT_EQ(a.pg_average_bits, b.pg_average_bits);
  EXPECT_EQ(a.cg_flop_reduction, b.cg_flop_reduction);
  EXPECT_EQ(a.seconds, b.seconds);
  EXPECT_EQ(a.images_per_second, b.images_per_second);
}

void expect_same(const FinalRecord& a, const FinalRecord& b) {
  EXPECT_EQ(a.program, b.program);
  EXPECT_EQ(a.epochs, b.epochs);
  EXPECT_EQ(a.test_images, b.test_images);
  EXPECT_EQ(a.test_accuracy, b.test_accuracy);
  EXPECT_EQ(a.sparsity, b.sparsity);
  EXPECT_EQ(a.pg_average_bits, b.pg_average_bits);
  EXPECT_EQ(a.cg_flop_reduction, b.cg_flop_reduction);
  EXPECT_EQ(a.layer_on_fraction, b.layer_on_fraction);
  EXPECT_EQ(a.confusion, b.confusion);
  EXPECT_EQ(a.class_names, b.class_names);
  EXPECT_EQ(a.checkpoint, b.checkpoint);
}

// ---------------------------------------------------------------- metrics

TEST(MetricsFiles, RoundTripWithEveryOptional) {
  TempDir dir;
  const std::string jsonl = (dir.path() / "run" / "metrics.jsonl").string();  // directory made on demand
  {
    MetricsWriter writer(jsonl, "");
    writer.write_epoch(bare_epoch());
    writer.write_epoch(full_epoch());
    writer.write_final(full_final());
  }
  const MetricsLog log = read_metrics(jsonl);
  ASSERT_EQ(log.epochs.size(), 2u);
  expect_same(log.epochs[0], bare_epoch());
  expect_same(log.epochs[1], full_epoch());
  ASSERT_TRUE(log.final_record.has_value());
  expect_same(*log.final_record, full_final());
}

TEST(MetricsFiles, RoundTripWithoutOptionals) {
  TempDir dir;
  const std::string jsonl = (dir.path() / "metrics.jsonl").string();
  {
    MetricsWriter writer(jsonl, "");
    writer.write_final(bare_final());
  }
  const MetricsLog log = read_metrics(jsonl);
  EXPECT_TRUE(log.epochs.empty());
  ASSERT_TRUE(log.final_record.has_value());
  expect_same(*log.final_record, bare_final());
  EXPECT_FALSE(log.final_record->pg_average_bits.has_value());
}

TEST(MetricsFiles, UnfinishedRunHasNoFinalRecord) {
  TempDir dir;
  const std::string jsonl = (dir.path() / "metrics.jsonl").string();
  MetricsWriter writer(jsonl, "");
  writer.write_epoch(bare_epoch());
  // Read while the writer is still open: the line is already on disk.
  const MetricsLog log = read_metrics(jsonl);
  ASSERT_EQ(log.epochs.size(), 1u);
  expect_same(log.epochs[0], bare_epoch());
  EXPECT_FALSE(log.final_record.has_value());
}

TEST(MetricsFiles, DivergedLossIsNullAndReadsBackAsNaN) {
  TempDir dir;
  const std::string jsonl = (dir.path() / "metrics.jsonl").string();
  const std::string csv = (dir.path() / "metrics.csv").string();
  EpochRecord diverged = bare_epoch();
  diverged.train_loss = std::numeric_limits<double>::quiet_NaN();
  diverged.sparsity = std::numeric_limits<double>::infinity();
  {
    MetricsWriter writer(jsonl, csv);
    writer.write_epoch(diverged);
  }
  EXPECT_TRUE(has_substr(read_text(jsonl), "\"train_loss\":null"));
  EXPECT_EQ(lines_of(read_text(csv)).at(1), "1,0.1,nan,31.5,,inf,,,12.5,4000");
  const MetricsLog log = read_metrics(jsonl);
  ASSERT_EQ(log.epochs.size(), 1u);
  EXPECT_TRUE(std::isnan(log.epochs[0].train_loss));
  ASSERT_TRUE(log.epochs[0].sparsity.has_value());
  EXPECT_TRUE(std::isnan(*log.epochs[0].sparsity));
}

TEST(MetricsFiles, JsonLinesAreObjectsWithTypeAndOmitAbsentOptionals) {
  TempDir dir;
  const std::string jsonl = (dir.path() / "metrics.jsonl").string();
  {
    MetricsWriter writer(jsonl, "");
    writer.write_epoch(bare_epoch());
    writer.write_epoch(full_epoch());
    writer.write_final(bare_final());
  }
  const std::string text = read_text(jsonl);
  const std::vector<std::string> lines = lines_of(text);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(text.back(), '\n');
  std::vector<std::string> types;
  for (const auto& line : lines) {
    const nlohmann::json j = nlohmann::json::parse(line);  // one whole JSON value per line
    ASSERT_TRUE(j.is_object()) << line;
    ASSERT_TRUE(j.contains("type")) << line;
    types.push_back(j["type"].get<std::string>());
    EXPECT_EQ(line.find("null"), std::string::npos) << line;
  }
  EXPECT_EQ(types, (std::vector<std::string>{"epoch", "epoch", "final"}));
  // Field order as documented, absent optionals left out, doubles shortest.
  EXPECT_EQ(lines[0], R"({"type":"epoch","epoch":1,"lr":0.1,"train_loss":2.25,"train_accuracy":31.5,)"
                      R"("seconds":12.5,"images_per_second":4000.0})");
  EXPECT_EQ(lines[2],
            R"({"type":"final","program":"cg-cifar10","epochs":0,"test_images":10000,"test_accuracy":91.5,)"
            R"("sparsity":60.25,"cg_flop_reduction":3.5,"layer_on_fraction":{},"confusion":[],)"
            R"("class_names":[],"checkpoint":""})");
  const nlohmann::json full = nlohmann::json::parse(lines[1]);
  EXPECT_EQ(full["test_accuracy"].get<double>(), 44.75);
  EXPECT_EQ(full["pg_average_bits"].get<double>(), 2.125);
  EXPECT_FALSE(full.contains("cg_flop_reduction"));
  EXPECT_EQ(full["layer_on_fraction"]["layer1.0.conv1"].get<double>(), 0.5);
  EXPECT_TRUE(has_substr(lines[1], R"("layer_on_fraction":{"layer3.0.conv2":0.125,"layer1.0.conv1":0.5,)"));
}

TEST(MetricsFiles, CsvHeaderAndRowsExact) {
  TempDir dir;
  const std::string csv = (dir.path() / "metrics.csv").string();
  {
    MetricsWriter writer("", csv);
    writer.write_epoch(bare_epoch());
    writer.write_epoch(full_epoch());
    writer.write_final(full_final());  // no CSV row: the CSV holds epochs only
  }
  EXPECT_EQ(read_text(csv),
            "epoch,lr,train_loss,train_accuracy,test_accuracy,sparsity,pg_average_bits,cg_flop_reduction,"
            "seconds,images_per_second\n"
            "1,0.1,2.25,31.5,,,,,12.5,4000\n"
            "2,0.010000000000000002,0.3333333333333333,45.25,44.75,0.30000000000000004,2.125,,12.25,"
            "4081.6326530612246\n");
  EXPECT_EQ(lines_of(read_text(csv)).at(0), kMetricsCsvHeader);
}

TEST(MetricsFiles, CsvCellsForCgRun) {
  TempDir dir;
  const std::string csv = (dir.path() / "metrics.csv").string();
  EpochRecord cg = bare_epoch();
  cg.epoch = 10;
  cg.lr = 0.001;
  cg.test_accuracy = 88;
  cg.sparsity = 75.5;
  cg.cg_flop_reduction = 3.25;
  {
    MetricsWriter writer("", csv);
    writer.write_epoch(cg);
  }
  EXPECT_EQ(lines_of(read_text(csv)).at(1), "10,0.001,2.25,31.5,88,75.5,,3.25,12.5,4000");
}

TEST(MetricsFiles, EmptyPathsWriteNothing) {
  TempDir dir;
  const std::string csv = (dir.path() / "only.csv").string();
  {
    MetricsWriter none("", "");
    none.write_epoch(full_epoch());
    none.write_final(full_final());
    MetricsWriter csv_only("", csv);
    csv_only.write_epoch(bare_epoch());
  }
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir.path()))
    names.push_back(entry.path().filename().string());
  EXPECT_EQ(names, std::vector<std::string>{"only.csv"});
  EXPECT_EQ(lines_of(read_text(csv)).size(), 2u);
}

TEST(MetricsFiles, WriterErrorsNameTheFile) {
  TempDir dir;
  // A directory cannot be replaced by a file.
  const std::string directory = dir.path().string();
  EXPECT_TRUE(has_substr(error_of([&] { MetricsWriter writer(directory, ""); }),
                         directory + ": cannot replace the metrics file"));
  // A parent that is a file cannot become a directory.
  write_text(dir.path() / "plain", "x");
  const std::string below_file = (dir.path() / "plain" / "m.csv").string();
  EXPECT_TRUE(
      has_substr(error_of([&] { MetricsWriter writer("", below_file); }), below_file + ": cannot create"));
}

TEST(MetricsFiles, MissingFileIsNamed) {
  TempDir dir;
  const std::string missing = (dir.path() / "absent.jsonl").string();
  EXPECT_EQ(error_of([&] { read_metrics(missing); }),
            missing + ": cannot open the metrics file (no such file?)");
}

TEST(MetricsFiles, BadLinesNameFileAndLine) {
  TempDir dir;
  const std::string good =
      R"({"type":"epoch","epoch":1,"lr":0.1,"train_loss":2.25,"train_accuracy":31.5,"seconds":1,"images_per_second":2})";
  const fs::path file = dir.path() / "bad.jsonl";
  const std::string path = file.string();
  const auto error_for = [&](const std::string& text) {
    write_text(file, text);
    return error_of([&] { read_metrics(path); });
  };
  EXPECT_TRUE(has_substr(error_for(good + "\n" + good + "\n{\"type\":\"epoch\", oops\n"),
                         path + ", line 3: not valid JSON at column 18 (syntax error"));
  // A run killed in the middle of a line.
  EXPECT_TRUE(has_substr(error_for(good + "\n" + good.substr(0, 40)), path + ", line 2: not valid JSON"));
  EXPECT_EQ(error_for("\n" + good + "\n[1, 2]\n"), path + ", line 3: expected a JSON object, not array");
  EXPECT_EQ(error_for(R"({"epoch":1})"), path + ", line 1: missing field \"type\"");
  EXPECT_EQ(error_for(good + "\n" + R"({"type":"epoch","epoch":2})"),
            path + ", line 2: missing field \"lr\"");
  EXPECT_EQ(error_for(R"({"type":"epoch","epoch":1,"lr":"fast"})"),
            path + ", line 1: field \"lr\" must be a number, not string");
  EXPECT_EQ(error_for(R"({"type":"epoch","epoch":1.5})"),
            path + ", line 1: field \"epoch\" must be an integer, not the number 1.5");
  EXPECT_EQ(error_for(R"({"type":"final","program":"pg-cifar10","epochs":1,"test_images":1,)"
                      R"("test_accuracy":1,"sparsity":1,"confusion":[[1,"2"]]})"),
            path + ", line 1: field \"confusion\" must be an integer, not string");
  const std::string final_line =
      R"({"type":"final","program":"p","epochs":1,"test_images":1,"test_accuracy":1,"sparsity":1})";
  EXPECT_EQ(error_for(good + "\n" + final_line + "\n\n" + final_line + "\n"),
            path + ", line 4: a second final record (the first is on line 2)");
}

TEST(MetricsFiles, SkipsBlankLinesAndOtherRecordTypes) {
  TempDir dir;
  const fs::path file = dir.path() / "m.jsonl";
  write_text(
      file,
      "\n{\"type\":\"config\",\"anything\":[1,2]}\r\n"
      R"({"type":"epoch","epoch":3,"lr":0.5,"train_loss":1,"train_accuracy":2,"seconds":3,"images_per_second":4})"
      "\r\n   \n");
  const MetricsLog log = read_metrics(file.string());
  ASSERT_EQ(log.epochs.size(), 1u);
  EXPECT_EQ(log.epochs[0].epoch, 3);
  EXPECT_EQ(log.epochs[0].lr, 0.5);
  EXPECT_EQ(log.epochs[0].images_per_second, 4);
  EXPECT_FALSE(log.final_record.has_value());
}

// ---------------------------------------------------------------- plot

bool valid_entities(const std::string& text) {
  for (size_t at = text.find('&'); at != std::string::npos; at = text.find('&', at + 1)) {
    const size_t end = text.find(';', at);
    if (end == std::string::npos) return false;
    const std::string name = text.substr(at + 1, end - at - 1);
    static const std::set<std::string> kNamed{"amp", "lt", "gt", "quot", "apos"};
    const bool numeric =
        name.size() > 1 && name[0] == '#' && name.find_first_not_of("0123456789", 1) == std::string::npos;
    if (!numeric && kNamed.count(name) == 0) return false;
  }
  return true;
}

/// "" if `doc` is well-formed XML with an <svg> root (the subset an SVG
/// writer produces: a declaration, comments, elements, quoted attributes,
/// text), else what is wrong. No DTDs, CDATA or processing instructions.
std::string xml_problem(const std::string& doc) {
  std::vector<std::string> open;
  bool root_seen = false;
  size_t i = 0;
  const auto is_name_char = [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == ':' || c == '.';
  };
  if (doc.rfind("<?xml ", 0) == 0) i = doc.find("?>") + 2;
  while (i < doc.size()) {
    if (doc[i] != '<') {
      const size_t end = std::min(doc.find('<', i), doc.size());
      const std::string text = doc.substr(i, end - i);
      if (open.empty() && text.find_first_not_of(" \t\r\n") != std::string::npos)
        return "text outside the root";
      if (!valid_entities(text)) return "bad entity in text: " + text;
      i = end;
      continue;
    }
    if (doc.compare(i, 4, "<!--") == 0) {
      const size_t end = doc.find("-->", i);
      if (end == std::string::npos) return "unterminated comment";
      i = end + 3;
      continue;
    }
    if (doc.compare(i, 2, "</") == 0) {
      const size_t end = doc.find('>', i);
      if (end == std::string::npos) return "unterminated end tag";
      const std::string name = doc.substr(i + 2, end - i - 2);
      if (open.empty() || open.back() != name) return "</" + name + "> does not close the open element";
      open.pop_back();
      i = end + 1;
      continue;
    }
    size_t j = i + 1;
    while (j < doc.size() && is_name_char(doc[j])) ++j;
    const std::string name = doc.substr(i + 1, j - i - 1);
    if (name.empty()) return "bad tag at offset " + std::to_string(i);
    if (open.empty()) {
      if (root_seen) return "a second root element <" + name + ">";
      if (name != "svg") return "the root is <" + name + ">, not <svg>";
      root_seen = true;
    }
    std::set<std::string> attributes;
    while (true) {
      const size_t before = j;
      while (j < doc.size() && std::isspace(static_cast<unsigned char>(doc[j]))) ++j;
      if (j >= doc.size()) return "unterminated <" + name;
      if (doc.compare(j, 2, "/>") == 0) {
        j += 2;
        break;
      }
      if (doc[j] == '>') {
        open.push_back(name);
        ++j;
        break;
      }
      if (j == before) return "no space before an attribute of <" + name + ">";
      const size_t name_start = j;
      while (j < doc.size() && is_name_char(doc[j])) ++j;
      const std::string attribute = doc.substr(name_start, j - name_start);
      if (attribute.empty() || j + 1 >= doc.size() || doc[j] != '=' ||
          (doc[j + 1] != '"' && doc[j + 1] != '\'')) {
        return "bad attribute in <" + name + ">";
      }
      if (!attributes.insert(attribute).second) return "attribute " + attribute + " twice in <" + name + ">";
      const char quote = doc[j + 1];
      const size_t value_end = doc.find(quote, j + 2);
      if (value_end == std::string::npos) return "unterminated attribute " + attribute;
      const std::string value = doc.substr(j + 2, value_end - j - 2);
      if (value.find('<') != std::string::npos || !valid_entities(value)) {
        return "bad character in attribute " + attribute + " of <" + name + ">";
      }
      j = value_end + 1;
    }
    i = j;
  }
  if (!open.empty()) return "<" + open.back() + "> is never closed";
  if (!root_seen) return "no root element";
  return "";
}

/// The (x, y) points of the polyline with this id; empty if there is none.
std::vector<std::pair<double, double>> polyline_points(const std::string& svg, const std::string& id) {
  std::vector<std::pair<double, double>> out;
  const size_t at = svg.find("<polyline id=\"" + id + "\"");
  if (at == std::string::npos) return out;
  const size_t start = svg.find("points=\"", at) + 8;
  std::istringstream points(svg.substr(start, svg.find('"', start) - start));
  double x, y;
  char comma;
  while (points >> x >> comma >> y) out.emplace_back(x, y);
  return out;
}

/// Epochs 1..3 with train accuracy 0, 50, 100, losses 2, 1, 0.5, test
/// accuracy on 2 and 3, PG sparsity and bits on 2 and 3.
std::vector<EpochRecord> pg_run() {
  std::vector<EpochRecord> epochs(3);
  const double loss[] = {2.0, 1.0, 0.5};
  for (int i = 0; i < 3; ++i) {
    epochs[i].epoch = i + 1;
    epochs[i].lr = 0.1;
    epochs[i].train_loss = loss[i];
    epochs[i].train_accuracy = 50.0 * i;
    epochs[i].seconds = 1;
  }
  epochs[1].test_accuracy = 40;
  epochs[2].test_accuracy = 100;
  epochs[1].sparsity = 80;
  epochs[2].sparsity = 90;
  epochs[1].pg_average_bits = 3.0;
  epochs[2].pg_average_bits = 2.5;
  return epochs;
}

TEST(XmlCheck, RejectsBrokenDocuments) {
  EXPECT_EQ(xml_problem("<svg><g></g><line x=\"1\"/></svg>"), "");
  EXPECT_NE(xml_problem("<svg><g></svg>"), "");
  EXPECT_NE(xml_problem("<svg><g>"), "");
  EXPECT_NE(xml_problem("<svg><text>a & b</text></svg>"), "");
  EXPECT_NE(xml_problem("<svg><text a=\"x<y\">t</text></svg>"), "");
  EXPECT_NE(xml_problem("<svg a=\"1\" a=\"2\"/>"), "");
  EXPECT_NE(xml_problem("<svg/><svg/>"), "");
}

TEST(TrainingPlot, PgRunHasFiveCurvesOnSharedAxes) {
  const std::string svg = training_plot_svg(pg_run(), "pg-cifar10: metrics.jsonl");
  ASSERT_EQ(xml_problem(svg), "");
  EXPECT_EQ(
      svg.rfind("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\"", 0),
      0u);
  EXPECT_EQ(svg.find("href"), std::string::npos);  // nothing external
  EXPECT_EQ(count(svg, "<polyline"), 5u);
  EXPECT_EQ(count(svg, "<circle"), 0u);
  for (const char* id : {"train_loss", "train_accuracy", "test_accuracy", "sparsity", "pg_average_bits"}) {
    EXPECT_EQ(count(svg, std::string("<polyline id=\"") + id + "\""), 1u) << id;
  }
  EXPECT_EQ(count(svg, "cg_flop_reduction"), 0u);
  for (const char* label : {">train loss<", ">train accuracy %<", ">test accuracy %<", ">sparsity %<",
                            ">PG average bits<", ">accuracy (%)<", ">average bits<", ">epoch<"}) {
    EXPECT_TRUE(has_substr(svg, label));
  }

  const auto train = polyline_points(svg, "train_accuracy");
  const auto test = polyline_points(svg, "test_accuracy");
  const auto loss = polyline_points(svg, "train_loss");
  ASSERT_EQ(train.size(), 3u);
  ASSERT_EQ(test.size(), 2u);
  ASSERT_EQ(loss.size(), 3u);
  // Epochs evenly spaced; accuracy linear on its axis.
  EXPECT_NEAR(train[1].first - train[0].first, train[2].first - train[1].first, 0.011);
  EXPECT_GT(train[1].first, train[0].first);
  EXPECT_NEAR(train[1].second, (train[0].second + train[2].second) / 2, 0.011);
  EXPECT_LT(train[2].second, train[0].second);  // 100 % above 0 %
  // Test accuracy shares the epoch and accuracy axes: 100 % at epoch 3 lies on train's.
  EXPECT_EQ(test[1], train[2]);
  EXPECT_EQ(test[0].first, train[1].first);
  EXPECT_NEAR(test[0].second, train[0].second + 0.4 * (train[2].second - train[0].second), 0.011);
  // The loss axis runs 0..2 (step 0.5): 2 at the top, 1 halfway, like 100 % and 50 %.
  EXPECT_EQ(loss[0].second, train[2].second);
  EXPECT_EQ(loss[1].second, train[1].second);
  EXPECT_NEAR(loss[2].second, train[0].second + 0.25 * (train[2].second - train[0].second), 0.011);
  for (const char* tick : {">0.0<", ">0.5<", ">1.0<", ">1.5<", ">2.0<", ">0<", ">20<", ">100<"}) {
    EXPECT_TRUE(has_substr(svg, tick));
  }

  // Bottom panel: sparsity 80, 90 on 0..100; bits 3.0, 2.5 on 0..3 (step 1).
  const auto sparsity = polyline_points(svg, "sparsity");
  const auto bits = polyline_points(svg, "pg_average_bits");
  ASSERT_EQ(sparsity.size(), 2u);
  ASSERT_EQ(bits.size(), 2u);
  EXPECT_EQ(sparsity[0].first, train[1].first);
  const double height = train[0].second - train[2].second;  // both panels are as tall
  const double bottom = sparsity[0].second + 0.8 * height;
  EXPECT_NEAR(sparsity[1].second, bottom - 0.9 * height, 0.011);
  EXPECT_NEAR(bits[0].second, bottom - height, 0.011);
  EXPECT_NEAR(bits[1].second, bottom - 2.5 / 3.0 * height, 0.011);
}

TEST(TrainingPlot, CgRunDrawsFlopReduction) {
  std::vector<EpochRecord> epochs = pg_run();
  for (auto& r : epochs) {
    r.cg_flop_reduction = r.pg_average_bits;
    r.pg_average_bits.reset();
  }
  const std::string svg = training_plot_svg(epochs, "cg");
  ASSERT_EQ(xml_problem(svg), "");
  EXPECT_EQ(count(svg, "<polyline"), 5u);
  EXPECT_EQ(count(svg, "<polyline id=\"cg_flop_reduction\""), 1u);
  EXPECT_EQ(count(svg, "pg_average_bits"), 0u);
  EXPECT_TRUE(has_substr(svg, ">CG FLOP reduction (x)<"));
  EXPECT_TRUE(has_substr(svg, ">FLOP reduction (x)<"));
}

TEST(TrainingPlot, AccuracyOnlyRunHasThreeCurves) {
  std::vector<EpochRecord> epochs = pg_run();
  for (auto& r : epochs) {
    r.sparsity.reset();
    r.pg_average_bits.reset();
  }
  const std::string svg = training_plot_svg(epochs, "dense");
  ASSERT_EQ(xml_problem(svg), "");
  EXPECT_EQ(count(svg, "<polyline"), 3u);
  EXPECT_EQ(polyline_points(svg, "sparsity").size(), 0u);
  EXPECT_TRUE(has_substr(svg, ">no sparsity or cost figures recorded<"));
  EXPECT_EQ(count(svg, "average bits"), 0u);  // no cost axis without a cost curve

  for (auto& r : epochs) r.test_accuracy.reset();
  EXPECT_EQ(count(training_plot_svg(epochs, "no eval"), "<polyline"), 2u);
}

TEST(TrainingPlot, SinglePointCurveGetsAMarker) {
  std::vector<EpochRecord> epochs = pg_run();
  epochs[1].test_accuracy.reset();
  const std::string svg = training_plot_svg(epochs, "t");
  ASSERT_EQ(xml_problem(svg), "");
  EXPECT_EQ(count(svg, "<polyline"), 5u);
  const auto test = polyline_points(svg, "test_accuracy");
  ASSERT_EQ(test.size(), 1u);
  ASSERT_EQ(count(svg, "<circle"), 1u);
  std::ostringstream marker;
  marker << std::fixed << std::setprecision(2) << "<circle cx=\"" << test[0].first << "\" cy=\""
         << test[0].second << "\"";
  EXPECT_TRUE(has_substr(svg, marker.str()));

  // A one-epoch run: every curve is a single point.
  const std::string one = training_plot_svg({epochs[2]}, "one");
  ASSERT_EQ(xml_problem(one), "");
  EXPECT_EQ(count(one, "<polyline"), 5u);
  EXPECT_EQ(count(one, "<circle"), 5u);
}

TEST(TrainingPlot, NonFiniteValuesAreLeftOut) {
  std::vector<EpochRecord> epochs = pg_run();
  epochs[1].train_loss = std::numeric_limits<double>::quiet_NaN();
  epochs[2].train_loss = std::numeric_limits<double>::infinity();
  const std::string svg = training_plot_svg(epochs, "diverged");
  ASSERT_EQ(xml_problem(svg), "");
  EXPECT_EQ(polyline_points(svg, "train_loss").size(), 1u);
  EXPECT_EQ(svg.find("nan"), std::string::npos);
  EXPECT_EQ(svg.find("inf"), std::string::npos);
}

TEST(TrainingPlot, NoEpochsStillMakesAValidPicture) {
  const std::string svg = training_plot_svg({}, "empty");
  ASSERT_EQ(xml_problem(svg), "");
  EXPECT_EQ(count(svg, "<polyline"), 0u);
  EXPECT_TRUE(has_substr(svg, ">no epochs recorded<"));
}

TEST(TrainingPlot, TitleIsEscaped) {
  const std::string svg = training_plot_svg(pg_run(), "a<b & \"c\" 'd'\x01");
  ASSERT_EQ(xml_problem(svg), "");
  EXPECT_TRUE(has_substr(svg, ">a&lt;b &amp; &quot;c&quot; &apos;d&apos; </text>"));
}

TEST(TrainingPlot, WritesTheFileThroughATemporary) {
  TempDir dir;
  const fs::path svg = dir.path() / "plots" / "run.svg";
  write_training_plot(pg_run(), svg.string(), "run");
  EXPECT_EQ(read_text(svg), training_plot_svg(pg_run(), "run"));
  // Overwrites, and leaves nothing beside it.
  write_training_plot({}, svg.string(), "again");
  EXPECT_EQ(read_text(svg), training_plot_svg({}, "again"));
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(svg.parent_path()))
    names.push_back(entry.path().filename().string());
  EXPECT_EQ(names, std::vector<std::string>{"run.svg"});

  write_text(dir.path() / "plain", "x");
  const std::string below_file = (dir.path() / "plain" / "run.svg").string();
  EXPECT_TRUE(has_substr(error_of([&] { write_training_plot(pg_run(), below_file, "t"); }),
                         below_file + ": cannot create the directory"));
}

// ---------------------------------------------------------------- gating-report

/// The gating-report program beside the trainers; skipped when only the
/// test executable was built.
#define DG_REPORT_BINARY_OR_SKIP(var)                                    \
  const std::string var = std::string(DG_BINARY_DIR) + "/gating-report"; \
  if (!fs::exists(var)) GTEST_SKIP() << "gating-report not built (make gating-report)"

/// Runs the program with `arguments`. ctest sets OMP_NUM_THREADS to "", which
/// makes libgomp print a complaint into the output these tests read.
dnn_gating::testing::RunResult run_report(const std::string& binary, const std::string& arguments) {
  return dnn_gating::testing::run_command("env -u OMP_NUM_THREADS " + binary + " " + arguments);
}

TEST(GatingReport, SummarisesPlotsAndConverts) {
  DG_REPORT_BINARY_OR_SKIP(binary);
  TempDir dir;
  const std::string jsonl = (dir.path() / "metrics.jsonl").string();
  {
    MetricsWriter writer(jsonl, "");
    for (const auto& r : pg_run()) writer.write_epoch(r);
    writer.write_final(full_final());
  }
  const std::string svg = (dir.path() / "out" / "plot.svg").string();
  const std::string csv = (dir.path() / "out.csv").string();
  const auto run = run_report(binary, jsonl + " --plot " + svg + " --csv " + csv);
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_TRUE(has_substr(run.output, "pg-cifar10, 2 epochs:"));
  // The trainers' report lines, from the same function.
  EXPECT_TRUE(has_substr(run.output, "Accuracy of the network on the 20 test images: 45.0 %"));
  EXPECT_TRUE(has_substr(run.output, "Sparsity of the update phase: 91.2 %"));
  EXPECT_TRUE(has_substr(run.output, "PG average activation bits: 2.375"));
  EXPECT_TRUE(has_substr(run.output, "Accuracy of   car : 62.5 %"));
  EXPECT_TRUE(has_substr(run.output, "layer1.0.conv1     75.00"));
  EXPECT_TRUE(has_substr(run.output, "    3       0.1   0.5000   100.00  100.00      90.00     2.500"));
  EXPECT_EQ(xml_problem(read_text(svg)), "");
  EXPECT_EQ(read_text(svg), training_plot_svg(pg_run(), "pg-cifar10: metrics.jsonl"));
  EXPECT_EQ(lines_of(read_text(csv)).size(), 4u);
  EXPECT_EQ(lines_of(read_text(csv)).at(3), "3,0.1,0.5,100,100,90,2.5,,1,0");
}

TEST(GatingReport, ErrorsAreOneLineWithExitCode) {
  DG_REPORT_BINARY_OR_SKIP(binary);
  TempDir dir;
  const std::string missing = (dir.path() / "absent.jsonl").string();
  auto run = run_report(binary, missing);
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_EQ(run.output,
            "gating-report: error: " + missing + ": cannot open the metrics file (no such file?)\n");

  write_text(dir.path() / "m.jsonl", "{}\n");
  run = run_report(binary, (dir.path() / "m.jsonl").string() + " --csv " + (dir.path() / "m.jsonl").string());
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_TRUE(has_substr(run.output, "that is the metrics file being read"));
  EXPECT_EQ(read_text(dir.path() / "m.jsonl"), "{}\n");

  run = run_report(binary, "--bogus");
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_EQ(count(run.output, "\n"), 1u) << run.output;
  EXPECT_EQ(run.output.rfind("gating-report: error: ", 0), 0u) << run.output;
}

}  // namespace
}  // namespace dnn_gating::train
