// The metrics files: JSON lines and CSV written and read back.
#include "dnn_gating/report/metrics.h"

#include <cmath>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "record_fixtures.h"
#include "test_support.h"

namespace dnn_gating::train {
namespace {

using namespace fixtures;
using dnn_gating::testing::TempDir;

TEST(MetricsFiles, RoundTripWithEveryOptional) {
  TempDir dir;
  const std::string jsonl =
      (dir.path() / "run" / "metrics.jsonl").string();  // directory made on demand
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
  EXPECT_EQ(lines[0],
            R"({"type":"epoch","epoch":1,"lr":0.1,"train_loss":2.25,"train_accuracy":31.5,)"
            R"("seconds":12.5,"images_per_second":4000.0})");
  EXPECT_EQ(
      lines[2],
      R"({"type":"final","program":"cg-cifar10","epochs":0,"test_images":10000,"test_accuracy":91.5,)"
      R"("sparsity":60.25,"cg_flop_reduction":3.5,"layer_on_fraction":{},"confusion":[],)"
      R"("class_names":[],"checkpoint":""})");
  const nlohmann::json full = nlohmann::json::parse(lines[1]);
  EXPECT_EQ(full["test_accuracy"].get<double>(), 44.75);
  EXPECT_EQ(full["pg_average_bits"].get<double>(), 2.125);
  EXPECT_FALSE(full.contains("cg_flop_reduction"));
  EXPECT_EQ(full["layer_on_fraction"]["layer1.0.conv1"].get<double>(), 0.5);
  EXPECT_TRUE(
      has_substr(lines[1], R"("layer_on_fraction":{"layer3.0.conv2":0.125,"layer1.0.conv1":0.5,)"));
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
  EXPECT_EQ(
      read_text(csv),
      "epoch,lr,train_loss,train_accuracy,test_accuracy,sparsity,pg_average_bits,cg_flop_reduction,"
      "seconds,images_per_second\n"
      "1,0.1,2.25,31.5,,,,,12.5,4000\n"
      "2,0.010000000000000002,0.3333333333333333,45.25,44.75,0.30000000000000004,2.125,,12.25,"
      "4081.6326530612246\n");
  EXPECT_EQ(lines_of(read_text(csv)).at(0), metrics_csv_header());
  EXPECT_EQ(metrics_csv_header(),
            "epoch,lr,train_loss,train_accuracy,test_accuracy,sparsity,pg_average_bits,"
            "cg_flop_reduction,seconds,images_per_second");
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
  EXPECT_TRUE(has_substr(error_of([&] { MetricsWriter writer("", below_file); }),
                         below_file + ": cannot create"));
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
  EXPECT_TRUE(
      has_substr(error_for(good + "\n" + good.substr(0, 40)), path + ", line 2: not valid JSON"));
  EXPECT_EQ(error_for("\n" + good + "\n[1, 2]\n"),
            path + ", line 3: expected a JSON object, not array");
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

}  // namespace
}  // namespace dnn_gating::train
