#include "targets.h"

#include <unistd.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "dnn_gating/data/cifar10.h"
#include "dnn_gating/data/fashion_mnist.h"
#include "dnn_gating/data/image_file.h"
#include "dnn_gating/io/checkpoint.h"
#include "dnn_gating/io/job_checkpoint.h"
#include "dnn_gating/io/pytorch_state_dict.h"
#include "dnn_gating/report/metrics.h"
#include "dnn_gating/report/png.h"

namespace dnn_gating::fuzz {
namespace {

namespace fs = std::filesystem;

// A directory of this process's own, made on first use, rewritten by each
// target that writes files into it and removed when the process exits.
struct Scratch {
  fs::path dir = fs::temp_directory_path() / ("dnn-gating-fuzz-" + std::to_string(::getpid()));
  Scratch() { fs::create_directories(dir); }
  ~Scratch() {
    std::error_code ignored;
    fs::remove_all(dir, ignored);
  }
};

const fs::path& scratch() {
  static const Scratch made;
  return made.dir;
}

void write(const fs::path& path, const uint8_t* data, size_t size) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

void write_gz(const fs::path& path, const uint8_t* data, size_t size) {
  gzFile f = gzopen(path.c_str(), "wb1");
  if (f == nullptr) throw std::runtime_error("cannot write " + path.string());
  if (size > 0) gzwrite(f, data, static_cast<unsigned>(size));
  gzclose(f);
}

// As `-p` reads a file: the sniffing, then the whole reader.
void state_dict(const uint8_t* data, size_t size) {
  const std::vector<char> bytes(data, data + size);
  train::is_pytorch_state_dict(bytes);
  train::parse_pytorch_state_dict(bytes, "fuzz.pt");
}

// A checkpoint as `--resume` reads it: the file (tensors, description,
// training state), its description taken over as the job's settings, and
// the metrics history it carries.
void checkpoint(const uint8_t* data, size_t size) {
  const fs::path file = scratch() / "resume.pt";
  write(file, data, size);
  train::JobConfig requested;
  requested.program = "cg-cifar10";
  requested.resume_path = file.string();
  const train::JobStart start = train::open_job_checkpoint(requested);
  train::parse_metrics(start.history, start.path);
}

void cifar10(const uint8_t* data, size_t size) {
  const fs::path dir = scratch() / "cifar";
  fs::remove_all(dir);
  fs::create_directories(dir);
  write(dir / "test_batch.bin", data, size);
  data::read_cifar10(dir.string(), data::Split::kTest);
}

void idx(const uint8_t* data, size_t size) {
  if (size < 3) return;
  const bool gzipped = (data[0] & 1) != 0;
  const bool train = (data[0] & 2) != 0;
  const bool as_is = (data[0] & 4) != 0;  // the bytes of .gz files themselves
  const size_t images = std::min<size_t>(data[1] | (data[2] << 8), size - 3);
  const fs::path dir = scratch() / "idx";
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string prefix = train ? "train" : "t10k";
  const auto put = gzipped && !as_is ? write_gz : write;
  const std::string gz = gzipped ? ".gz" : "";
  put(dir / (prefix + "-images-idx3-ubyte" + gz), data + 3, images);
  put(dir / (prefix + "-labels-idx1-ubyte" + gz), data + 3 + images, size - 3 - images);
  data::read_fashion_mnist(dir.string(), train ? data::Split::kTrain : data::Split::kTest);
}

void metrics(const uint8_t* data, size_t size) {
  train::parse_metrics(std::string(reinterpret_cast<const char*>(data), size), "fuzz.jsonl");
}

void png(const uint8_t* data, size_t size) {
  train::decode_png(std::string(reinterpret_cast<const char*>(data), size), "fuzz.png");
}

void image(const uint8_t* data, size_t size) {
  data::decode_image(std::string(reinterpret_cast<const char*>(data), size), "fuzz.jpg");
}

}  // namespace

const std::vector<NamedTarget>& targets() {
  static const std::vector<NamedTarget> all{{"pytorch_state_dict", state_dict},
                                            {"checkpoint", checkpoint},
                                            {"cifar10", cifar10},
                                            {"idx", idx},
                                            {"metrics", metrics},
                                            {"png", png},
                                            {"image", image}};
  return all;
}

std::string run_one(Target run, const uint8_t* data, size_t size) {
  try {
    run(data, size);
  } catch (const c10::Error& e) {
    return e.what_without_backtrace();
  } catch (const std::exception& e) {
    // A refusal: every reader's errors are exceptions.
    return e.what();
  }
  return "";
}

std::vector<uint8_t> idx_input(bool gzipped, bool train, const std::vector<uint8_t>& images,
                               const std::vector<uint8_t>& labels) {
  std::vector<uint8_t> out{static_cast<uint8_t>((gzipped ? 1 : 0) | (train ? 2 : 0)),
                           static_cast<uint8_t>(images.size() & 0xff),
                           static_cast<uint8_t>(images.size() >> 8)};
  out.insert(out.end(), images.begin(), images.end());
  out.insert(out.end(), labels.begin(), labels.end());
  return out;
}

}  // namespace dnn_gating::fuzz
