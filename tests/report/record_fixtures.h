#pragma once
// Records and file helpers shared by the metrics, plot and gating-report tests.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "dnn_gating/report/metrics.h"
#include "test_support.h"

namespace dnn_gating::train::fixtures {

namespace fs = std::filesystem;

inline std::string read_text(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

inline void write_text(const fs::path& file, const std::string& text) {
  std::ofstream out(file, std::ios::binary);
  out << text;
}

inline std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

inline size_t count(const std::string& haystack, const std::string& needle) {
  size_t n = 0;
  for (size_t at = haystack.find(needle); at != std::string::npos;
       at = haystack.find(needle, at + 1))
    ++n;
  return n;
}

/// Whether `text` contains `part`; on failure shows both.
inline ::testing::AssertionResult has_substr(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "\"" << part << "\" not found in:\n" << text;
}

using dnn_gating::testing::error_of;

/// An epoch with every optional absent.
inline EpochRecord bare_epoch() {
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
inline EpochRecord full_epoch() {
  EpochRecord r;
  r.epoch = 2;
  r.lr = 0.1 * 0.1;
  r.train_loss = 1.0 / 3.0;
  r.train_accuracy = 45.25;
  r.test_accuracy = 44.75;
  r.sparsity = 0.1 + 0.2;
  // Not in alphabetical order: the model's order must survive.
  r.layer_on_fraction = {
      {"layer3.0.conv2", 0.125}, {"layer1.0.conv1", 0.5}, {"layer2.1.conv1", 2.0 / 3.0}};
  r.pg_average_bits = 2.125;
  r.seconds = 12.25;
  r.images_per_second = 50000.0 / 12.25;
  return r;
}

inline FinalRecord full_final() {
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
inline FinalRecord bare_final() {
  FinalRecord f;
  f.program = "cg-cifar10";
  f.test_images = 10000;
  f.test_accuracy = 91.5;
  f.sparsity = 60.25;
  f.cg_flop_reduction = 3.5;
  return f;
}

inline void expect_same(const EpochRecord& a, const EpochRecord& b) {
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

inline void expect_same(const FinalRecord& a, const FinalRecord& b) {
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

/// Epochs 1..3 with train accuracy 0, 50, 100, losses 2, 1, 0.5, test
/// accuracy on 2 and 3, PG sparsity and bits on 2 and 3.
inline std::vector<EpochRecord> pg_run() {
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

}  // namespace dnn_gating::train::fixtures
