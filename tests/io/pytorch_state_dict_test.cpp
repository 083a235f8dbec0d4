// State dicts in Python's torch.save layout: files built here byte by byte
// as Python writes them (no Python needed), read back; malformed variants
// refused; our own export read back identically.
#include "dnn_gating/io/pytorch_state_dict.h"

#include <caffe2/serialize/inline_container.h>

#include <fstream>

#include "dnn_gating/io/checkpoint.h"
#include "dnn_gating/models/resnet.h"
#include "test_support.h"

namespace dg = dnn_gating;
namespace fs = std::filesystem;

namespace {

// Pickle bytes as Python 3's pickler writes them at protocol 2, memo included.
struct PythonPickle {
  std::string bytes = "\x80\x02";
  int memo = 0;

  PythonPickle& op(const std::string& code) {
    bytes += code;
    return *this;
  }
  PythonPickle& put() {  // BINPUT
    bytes += 'q';
    bytes += static_cast<char>(memo++);
    return *this;
  }
  PythonPickle& get(int index) {  // BINGET
    bytes += 'h';
    bytes += static_cast<char>(index);
    return *this;
  }
  PythonPickle& text(const std::string& s) {  // BINUNICODE
    bytes += 'X';
    for (int i = 0; i < 4; ++i) bytes += static_cast<char>((s.size() >> (8 * i)) & 0xff);
    bytes += s;
    return put();
  }
  PythonPickle& small(int v) {  // BININT1
    bytes += 'K';
    bytes += static_cast<char>(v);
    return *this;
  }
  PythonPickle& global(const std::string& module, const std::string& name) {
    bytes += "c" + module + "\n" + name + "\n";
    return put();
  }
};

// One tensor entry: key -> _rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict()).
// Memo 0 is collections.OrderedDict and memo 3 is _rebuild_tensor_v2 once written.
void tensor_entry(PythonPickle& p, const std::string& key, const std::string& storage_type,
                  const std::string& storage_key, int numel, int offset,
                  const std::vector<int>& size, const std::vector<int>& stride, bool first) {
  p.text(key);
  if (first) {
    p.global("torch._utils", "_rebuild_tensor_v2");
  } else {
    p.get(3);
  }
  p.op("(").op("(").text("storage").global("torch", storage_type).text(storage_key).text("cpu");
  p.small(numel).op("t").put().op("Q").small(offset);
  p.op("(");
  for (int s : size) p.small(s);
  p.op("t").put().op("(");
  for (int s : stride) p.small(s);
  p.op("t").put().op("\x89").get(0).op(")").op("R").put().op("t").put().op("R").put();
}

std::vector<char> zip_of(const std::string& pickle,
                         const std::vector<std::pair<std::string, std::string>>& records,
                         const std::string& archive = "archive") {
  std::vector<char> out;
  caffe2::serialize::PyTorchStreamWriter writer([&](const void* data, size_t n) {
    out.insert(out.end(), static_cast<const char*>(data), static_cast<const char*>(data) + n);
    return n;
  });
  writer.writeRecord("data.pkl", pickle.data(), pickle.size());
  for (const auto& [name, data] : records) writer.writeRecord(name, data.data(), data.size());
  writer.writeEndOfFile();
  (void)archive;
  return out;
}

template <typename T>
std::string raw(const std::vector<T>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
}

// A DataParallel state dict (keys "module.*") with a transposed (non-
// contiguous) weight, two tensors sharing one storage at an offset, an int64
// num_batches_tracked, a float16 and a float64 tensor, and _metadata.
std::string python_pickle(const std::string& last_opcode_override = "") {
  PythonPickle p;
  p.global("collections", "OrderedDict").op(")").op("R").put().op("(");
  tensor_entry(p, "module.conv.weight", "FloatStorage", "0", 6, 0, {3, 2}, {1, 3}, true);
  tensor_entry(p, "module.bn.weight", "FloatStorage", "1", 8, 0, {4}, {1}, false);
  tensor_entry(p, "module.bn.bias", "FloatStorage", "1", 8, 4, {4}, {1}, false);
  tensor_entry(p, "module.bn.num_batches_tracked", "LongStorage", "2", 1, 0, {}, {}, false);
  tensor_entry(p, "module.half", "HalfStorage", "3", 2, 0, {2}, {1}, false);
  tensor_entry(p, "module.double", "DoubleStorage", "4", 2, 0, {2}, {1}, false);
  p.op("u").op("}").put().text("_metadata").get(0).op(")").op("R").put().op("(");
  p.text("").op("}").put().text("version").small(1).op("s");
  p.text("bn").op("}").put().text("version").small(2).op("s");
  p.op("u").op("s").op("b");
  p.op(last_opcode_override.empty() ? "." : last_opcode_override);
  return p.bytes;
}

std::vector<std::pair<std::string, std::string>> python_storages() {
  return {{"data/0", raw(std::vector<float>{0, 1, 2, 3, 4, 5})},
          {"data/1", raw(std::vector<float>{10, 11, 12, 13, 20, 21, 22, 23})},
          {"data/2", raw(std::vector<int64_t>{7})},
          {"data/3", raw(std::vector<uint16_t>{0x3c00, 0xc000})},  // 1.0, -2.0 in float16
          {"data/4", raw(std::vector<double>{0.1, -0.25})}};
}

std::string error_of(const std::vector<char>& bytes) {
  try {
    dg::train::parse_pytorch_state_dict(bytes, "model.pt");
  } catch (const std::exception& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace

TEST(PytorchStateDict, ReadsPythonsLayout) {
  const auto bytes = zip_of(python_pickle(), python_storages());
  EXPECT_TRUE(dg::train::is_pytorch_state_dict(bytes));
  const auto state = dg::train::parse_pytorch_state_dict(bytes, "model.pt");
  ASSERT_EQ(state.size(), 6u);
  // module. stripped; the transposed view read as [[0, 3], [1, 4], [2, 5]].
  EXPECT_TRUE(
      torch::equal(state.at("conv.weight"), torch::tensor({{0.f, 3.f}, {1.f, 4.f}, {2.f, 5.f}})));
  EXPECT_TRUE(torch::equal(state.at("bn.weight"), torch::tensor({10.f, 11.f, 12.f, 13.f})));
  EXPECT_TRUE(torch::equal(state.at("bn.bias"), torch::tensor({20.f, 21.f, 22.f, 23.f})));
  EXPECT_EQ(state.at("bn.num_batches_tracked").scalar_type(), torch::kLong);
  EXPECT_EQ(state.at("bn.num_batches_tracked").dim(), 0);
  EXPECT_EQ(state.at("bn.num_batches_tracked").item<int64_t>(), 7);
  EXPECT_TRUE(torch::equal(state.at("half"), torch::tensor({1.0, -2.0}).to(torch::kHalf)));
  EXPECT_TRUE(torch::equal(state.at("double"), torch::tensor({0.1, -0.25}, torch::kDouble)));
}

TEST(PytorchStateDict, RefusesMalformedFilesNamingTheProblem) {
  const auto storages = python_storages();
  EXPECT_NE(error_of(zip_of(python_pickle("i"), storages)).find("pickle opcode 0x69"),
            std::string::npos);
  std::string os_system = python_pickle();
  os_system.replace(os_system.find("collections\nOrderedDict"), 23, "os\nsystem");
  EXPECT_NE(error_of(zip_of(os_system, storages)).find("global os.system"), std::string::npos);
  auto short_storages = storages;
  short_storages[1].second.resize(12);  // 3 floats for a storage of 8
  EXPECT_NE(error_of(zip_of(python_pickle(), short_storages))
                .find("storage 1 holds 12 bytes, fewer than its 8 Float elements need"),
            std::string::npos);
  // A size field set to a huge value: refused before any allocation.
  std::string huge = python_pickle();
  const std::string size_tuple = std::string("(K\x03K\x02t", 6);
  huge.replace(huge.find(size_tuple), size_tuple.size(),
               std::string("(J\xff\xff\xff\x7fK\x02t", 9));
  EXPECT_NE(error_of(zip_of(huge, storages)).find("does not fit its storage"), std::string::npos);
  // A missing storage record, and a truncated archive.
  EXPECT_NE(error_of(zip_of(python_pickle(), {storages.begin(), storages.begin() + 2}))
                .find("has no record data/2"),
            std::string::npos);
  auto truncated = zip_of(python_pickle(), storages);
  truncated.resize(truncated.size() / 2);
  EXPECT_NE(error_of(truncated).find("model.pt: "), std::string::npos);
}

TEST(PytorchStateDict, ExportReadsBackIdenticallyWithMetadata) {
  torch::manual_seed(0);
  dg::models::ResNet model(dg::models::ResNetOptions(dg::models::ConvKind::kChannelGated)
                               .depth(8)
                               .partitions(2)
                               .use_group(true));
  const auto bytes = dg::train::pytorch_state_dict_bytes(*model);
  EXPECT_TRUE(dg::train::is_pytorch_state_dict(bytes));
  const std::string text(bytes.begin(), bytes.end());
  for (const char* part : {"archive/data.pkl", "archive/version", "archive/data/0", "_metadata",
                           "torch._utils\n_rebuild_tensor_v2\n", "torch\nLongStorage\n"}) {
    EXPECT_NE(text.find(part), std::string::npos) << part;
  }
  const auto state = dg::train::parse_pytorch_state_dict(bytes, "export.pt");
  const auto params = model->named_parameters();
  const auto buffers = model->named_buffers();
  EXPECT_EQ(state.size(), params.size() + buffers.size());
  for (const auto& [key, tensor] : state) {
    const torch::Tensor* original = params.find(key);
    if (original == nullptr) original = buffers.find(key);
    ASSERT_NE(original, nullptr) << key;
    EXPECT_EQ(tensor.scalar_type(), original->scalar_type()) << key;
    EXPECT_TRUE(torch::equal(tensor, *original)) << key;
  }
  // read_checkpoint recognises the format by its content, whatever the name.
  dg::testing::TempDir dir;
  const fs::path file = dir.path() / "weights.bin";
  dg::train::write_pytorch_state_dict(file.string(), *model);
  const auto checkpoint = dg::train::read_checkpoint(file.string());
  EXPECT_TRUE(checkpoint.meta.empty());
  EXPECT_EQ(checkpoint.state.size(), state.size());
}
