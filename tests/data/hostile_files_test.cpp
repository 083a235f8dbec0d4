// Every reader meets hostile files: a few hundred seeded mutations of a good
// file each (bit flips, truncations, size fields set to huge values, random
// bytes, an empty file). Each is read or refused with an exception whose
// message names the file: never a crash, a hang, or an allocation the file
// cannot back (the test runs under a bounded time, and under the sanitizers).
#include <zlib.h>

#include <fstream>
#include <random>

#include "dnn_gating/data/cifar10.h"
#include "dnn_gating/data/fashion_mnist.h"
#include "dnn_gating/io/checkpoint.h"
#include "dnn_gating/io/pytorch_state_dict.h"
#include "dnn_gating/models/resnet.h"
#include "dnn_gating/report/metrics.h"
#include "test_support.h"

namespace dg = dnn_gating;
namespace fs = std::filesystem;
using Bytes = std::vector<uint8_t>;

namespace {

constexpr int kMutations = 200;

Bytes read_bytes(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_bytes(const fs::path& file, const Bytes& bytes) {
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
}

// Mutation `i` of `good`: the kinds take turns.
Bytes mutate(const Bytes& good, int i, std::mt19937_64& rng) {
  Bytes out = good;
  const auto at = [&](size_t n) { return n == 0 ? size_t{0} : static_cast<size_t>(rng() % n); };
  switch (i % 5) {
    case 0:  // a few bit flips
      for (int k = 0, n = 1 + static_cast<int>(rng() % 8); k < n && !out.empty(); ++k) {
        out[at(out.size())] ^= static_cast<uint8_t>(1u << (rng() % 8));
      }
      break;
    case 1:  // truncated
      out.resize(at(out.size()));
      break;
    case 2:  // a 32-bit field set to a huge value (little- or big-endian alike)
      if (out.size() >= 4) {
        const size_t p = at(out.size() - 3);
        for (int k = 0; k < 4; ++k) out[p + k] = 0xff;
        if (rng() % 2) out[p] = 0x7f;
      }
      break;
    case 3:  // random bytes of the same length
      for (auto& b : out) b = static_cast<uint8_t>(rng());
      break;
    default:  // empty, or one header's worth of the start
      out.resize(i % 10 == 4 ? 0 : std::min<size_t>(out.size(), 16));
  }
  return out;
}

// Reads every mutation of `file` with `read`; any exception must name the file.
void survive_mutations(const fs::path& file, const std::function<void()>& read, uint64_t seed) {
  const Bytes good = read_bytes(file);
  ASSERT_FALSE(good.empty());
  ASSERT_NO_THROW(read()) << "the good file must read";
  std::mt19937_64 rng(seed);
  int refused = 0;
  for (int i = 0; i < kMutations; ++i) {
    write_bytes(file, mutate(good, i, rng));
    try {
      read();
    } catch (const std::exception& e) {
      ++refused;
      const std::string message = e.what();
      EXPECT_NE(message.find(file.filename().string()), std::string::npos)
          << "mutation " << i << ": " << message;
      EXPECT_EQ(message.find('\n'), std::string::npos) << "one line: " << message;
    }
  }
  EXPECT_GT(refused, kMutations / 4) << "most mutations must be caught";
  write_bytes(file, good);
}

}  // namespace

TEST(HostileFiles, Cifar10Batches) {
  dg::testing::TempDir dir;
  dg::testing::write_cifar_dir(dir.path(), /*per_file=*/4);
  survive_mutations(
      dir.path() / "test_batch.bin",
      [&] { dg::data::read_cifar10(dir.path().string(), dg::data::Split::kTest); }, 1);
}

TEST(HostileFiles, FashionMnistIdxPlainAndGzipped) {
  dg::testing::TempDir dir;
  Bytes images{0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 28, 0, 0, 0, 28};
  for (int i = 0; i < 3 * 28 * 28; ++i) images.push_back(static_cast<uint8_t>(i));
  const Bytes labels{0, 0, 8, 1, 0, 0, 0, 3, 1, 2, 3};
  write_bytes(dir.path() / "t10k-images-idx3-ubyte", images);
  write_bytes(dir.path() / "t10k-labels-idx1-ubyte", labels);
  const auto read = [&] {
    dg::data::read_fashion_mnist(dir.path().string(), dg::data::Split::kTest);
  };
  survive_mutations(dir.path() / "t10k-images-idx3-ubyte", read, 2);
  survive_mutations(dir.path() / "t10k-labels-idx1-ubyte", read, 3);

  // The same through gzip: mutations of the compressed bytes.
  fs::remove(dir.path() / "t10k-images-idx3-ubyte");
  const fs::path gz = dir.path() / "t10k-images-idx3-ubyte.gz";
  gzFile out = gzopen(gz.c_str(), "wb");
  ASSERT_NE(out, nullptr);
  gzwrite(out, images.data(), static_cast<unsigned>(images.size()));
  gzclose(out);
  survive_mutations(gz, read, 4);

  // A gzip bomb: a small file that decompresses to 300 MiB of zeros.
  out = gzopen(gz.c_str(), "wb9");
  const Bytes zeros(1 << 20, 0);
  for (int i = 0; i < 300; ++i) gzwrite(out, zeros.data(), static_cast<unsigned>(zeros.size()));
  gzclose(out);
  EXPECT_LT(fs::file_size(gz), 1u << 20);
  try {
    read();
    FAIL() << "a gzip bomb was read";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("holds more than 256 MiB"), std::string::npos) << e.what();
  }
}

TEST(HostileFiles, Checkpoints) {
  dg::testing::TempDir dir;
  torch::manual_seed(0);
  dg::models::ResNet model(dg::models::ResNetOptions(dg::models::ConvKind::kPrecisionGated)
                               .depth(8)
                               .wbits(8)
                               .abits(3)
                               .pred_bits(2));
  const fs::path file = dir.path() / "model.pt";
  dg::train::save_checkpoint(file.string(), *model, "{}");
  survive_mutations(
      file, [&] { dg::train::read_checkpoint(file.string()); }, 5);
}

TEST(HostileFiles, PytorchStateDicts) {
  dg::testing::TempDir dir;
  torch::manual_seed(0);
  dg::models::ResNet model(dg::models::ResNetOptions(dg::models::ConvKind::kChannelGated).depth(8));
  const fs::path file = dir.path() / "state_dict.pt";
  dg::train::write_pytorch_state_dict(file.string(), *model);
  survive_mutations(
      file, [&] { dg::train::read_pytorch_state_dict(file.string()); }, 7);
  survive_mutations(
      file, [&] { dg::train::read_checkpoint(file.string()); }, 8);
}

TEST(HostileFiles, MetricsFiles) {
  dg::testing::TempDir dir;
  const fs::path file = dir.path() / "metrics.jsonl";
  {
    dg::train::EpochRecord r;
    r.epoch = 1;
    r.test_accuracy = 50;
    r.layer_on_fraction = {{"layer1.0.conv1", 0.5}};
    dg::train::FinalRecord f;
    f.confusion = {{1, 2}, {3, 4}};
    f.class_names = {"a", "b"};
    dg::train::MetricsWriter writer(file.string(), "");
    writer.write_epoch(r);
    writer.write_final(f);
  }
  survive_mutations(
      file, [&] { dg::train::read_metrics(file.string()); }, 6);
}
