// Writes the seed corpora of the fuzz targets: small valid files of every
// reader, made with the library's own writers, named seed-*. Usage:
//   cmake --build build --target fuzz-seeds && build/tests/fuzz-seeds tests/fuzz/corpus
// Each file is read back through its target and must be accepted.
#include <torch/torch.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <iostream>

#include "dnn_gating/io/checkpoint.h"
#include "dnn_gating/io/job_checkpoint.h"
#include "dnn_gating/io/pytorch_state_dict.h"
#include "dnn_gating/report/metrics.h"
#include "dnn_gating/report/png.h"
#include "jpeg_writer.h"
#include "targets.h"

namespace fs = std::filesystem;
namespace dg = dnn_gating;

namespace {

using Bytes = std::vector<uint8_t>;

Bytes read(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), {});
}

void write(const fs::path& file, const Bytes& bytes) {
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
}

// Big-endian 32-bit, as IDX headers are.
void put32(Bytes& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<uint8_t>(v >> shift));
}

Bytes idx_images(int count) {
  Bytes out;
  put32(out, 0x00000803);
  put32(out, count);
  put32(out, 28);
  put32(out, 28);
  for (int i = 0; i < count * 28 * 28; ++i) out.push_back(static_cast<uint8_t>(i * 7));
  return out;
}

Bytes idx_labels(int count) {
  Bytes out;
  put32(out, 0x00000801);
  put32(out, count);
  for (int i = 0; i < count; ++i) out.push_back(static_cast<uint8_t>(i % 10));
  return out;
}

// The bytes of a .gz file of `plain`, as gzip writes it.
Bytes gzipped(const Bytes& plain, const fs::path& scratch) {
  gzFile f = gzopen(scratch.c_str(), "wb9");
  gzwrite(f, plain.data(), static_cast<unsigned>(plain.size()));
  gzclose(f);
  Bytes out = read(scratch);
  fs::remove(scratch);
  return out;
}

struct Small : torch::nn::Module {
  Small() {
    register_module("fc", torch::nn::Linear(3, 2));
    register_module("bn", torch::nn::BatchNorm2d(2));
  }
};

std::string metrics_text() {
  dg::train::MetricsWriter writer("", "");
  dg::train::EpochRecord epoch;
  epoch.epoch = 1;
  epoch.lr = 0.1;
  epoch.train_loss = 2.25;
  epoch.train_accuracy = 31.5;
  epoch.test_accuracy = 30.25;
  epoch.sparsity = 40.5;
  epoch.layer_on_fraction = {{"layer1.0.conv1", 0.5}, {"layer2.0.conv1", 0.75}};
  epoch.cg_flop_reduction = 1.5;
  epoch.seconds = 12.5;
  epoch.images_per_second = 4000;
  writer.write_epoch(epoch);
  dg::train::FinalRecord final_record;
  final_record.program = "cg-cifar10";
  final_record.epochs = 1;
  final_record.test_images = 2;
  final_record.test_accuracy = 50;
  final_record.sparsity = 40.5;
  final_record.cg_flop_reduction = 1.5;
  final_record.layer_on_fraction = epoch.layer_on_fraction;
  final_record.confusion = {{1, 0}, {1, 0}};
  final_record.class_names = {"a", "b"};
  writer.write_final(final_record);
  return writer.jsonl();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: fuzz-seeds CORPUS_DIR (e.g. tests/fuzz/corpus)\n";
    return 2;
  }
  const fs::path corpus = argv[1];
  for (const auto& t : dg::fuzz::targets()) fs::create_directories(corpus / t.name);
  torch::manual_seed(0);
  const auto small = std::make_shared<Small>();

  const auto state = dg::train::pytorch_state_dict_bytes(*small);
  write(corpus / "pytorch_state_dict" / "seed-linear-batchnorm.pt",
        Bytes(state.begin(), state.end()));

  {
    dg::train::JobConfig config;
    config.program = "cg-cifar10";
    config.epochs = 3;
    const std::string meta =
        dg::train::resume_description(config, dg::train::ResumePoint{1, 2, 4.5, 3}, metrics_text());
    dg::train::TrainingState training;
    training.momentum["fc.weight"] = torch::zeros({2, 3});
    training.rng = torch::zeros({8}, torch::kByte);
    const fs::path file = corpus / "checkpoint" / "seed-resumable.pt";
    dg::train::save_checkpoint(file.string(), *small, meta, &training);
  }

  Bytes cifar;
  for (int i = 0; i < 2 * 3073; ++i)
    cifar.push_back(static_cast<uint8_t>(i % 3073 == 0 ? i % 10 : i));
  write(corpus / "cifar10" / "seed-two-images.bin", cifar);

  write(corpus / "idx" / "seed-test-plain",
        dg::fuzz::idx_input(false, false, idx_images(2), idx_labels(2)));
  write(corpus / "idx" / "seed-train-gzipped",
        dg::fuzz::idx_input(true, true, idx_images(1), idx_labels(1)));

  Bytes gz_files = dg::fuzz::idx_input(true, false, {}, {});
  gz_files[0] |= 4;  // the .gz files' own bytes
  const Bytes images = gzipped(idx_images(2), corpus / "images.gz");
  const Bytes labels = gzipped(idx_labels(2), corpus / "labels.gz");
  gz_files[1] = static_cast<uint8_t>(images.size() & 0xff);
  gz_files[2] = static_cast<uint8_t>(images.size() >> 8);
  gz_files.insert(gz_files.end(), images.begin(), images.end());
  gz_files.insert(gz_files.end(), labels.begin(), labels.end());
  write(corpus / "idx" / "seed-test-gz-files", gz_files);

  const std::string jsonl = metrics_text();
  write(corpus / "metrics" / "seed-one-epoch.jsonl", Bytes(jsonl.begin(), jsonl.end()));

  {
    dg::train::Picture picture(7, 5);
    for (int64_t y = 0; y < 5; ++y) {
      for (int64_t x = 0; x < 7; ++x)
        picture.set(x, y, {static_cast<uint8_t>(x * 30), static_cast<uint8_t>(y * 50), 128});
    }
    const std::string png = dg::train::encode_png(picture);
    write(corpus / "png" / "seed-rgb-7x5.png", Bytes(png.begin(), png.end()));
  }
  {
    // An image folder's files: JPEG in RGB, progressive grey and CMYK, and a PNG.
    Bytes rgb, grey, cmyk;
    for (int i = 0; i < 9 * 7; ++i) {
      rgb.insert(rgb.end(), {static_cast<uint8_t>(i * 4), static_cast<uint8_t>(255 - i * 3), 90});
      grey.push_back(static_cast<uint8_t>(i * 4));
      cmyk.insert(cmyk.end(),
                  {static_cast<uint8_t>(i * 4), 30, 200, static_cast<uint8_t>(250 - i)});
    }
    const auto put = [&](const std::string& name, const std::string& bytes) {
      write(corpus / "image" / name, Bytes(bytes.begin(), bytes.end()));
    };
    put("seed-rgb-9x7.jpg", dg::testing::encode_jpeg(rgb, 9, 7, 3));
    put("seed-grey-progressive-9x7.jpg", dg::testing::encode_jpeg(grey, 9, 7, 1, 80, true));
    put("seed-cmyk-9x7.jpg", dg::testing::encode_jpeg(cmyk, 9, 7, 4));
    put("seed-rgb-7x5.png", dg::train::encode_png(dg::train::Picture(7, 5)));
  }

  int refused = 0;
  for (const auto& t : dg::fuzz::targets()) {
    for (const auto& entry : fs::directory_iterator(corpus / t.name)) {
      if (entry.path().filename().string().rfind("seed-", 0) != 0) continue;
      const Bytes bytes = read(entry.path());
      const std::string why = dg::fuzz::run_one(t.run, bytes.data(), bytes.size());
      if (!why.empty()) {
        std::cerr << entry.path().string() << ": refused: " << why << "\n";
        ++refused;
      }
    }
  }
  return refused == 0 ? 0 : 1;
}
