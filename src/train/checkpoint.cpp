#include "dnn_gating/train/checkpoint.h"

#include <torch/serialize.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#include "dnn_gating/train/atomic_file.h"

namespace dnn_gating::train {
namespace fs = std::filesystem;

namespace {

std::map<std::string, torch::Tensor> state_of(torch::nn::Module& model) {
  std::map<std::string, torch::Tensor> state;
  for (const auto& p : model.named_parameters()) state[p.key()] = p.value();
  for (const auto& b : model.named_buffers()) state[b.key()] = b.value();
  return state;
}

std::string list_keys(const std::vector<std::string>& keys) {
  std::ostringstream out;
  for (size_t i = 0; i < keys.size() && i < 3; ++i) out << (i ? ", " : "") << keys[i];
  if (keys.size() > 3) out << " and " << keys.size() - 3 << " more";
  return out.str();
}

// One line naming the file: what the programs print for a bad checkpoint.
[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw std::runtime_error(path + ": " + what);
}

uint32_t little_endian(const std::vector<char>& bytes, size_t at, int width) {
  uint32_t value = 0;
  for (int i = width - 1; i >= 0; --i) value = (value << 8) | static_cast<uint8_t>(bytes[at + i]);
  return value;
}

// The zip archive's directory, checked before torch reads it: every record
// stored uncompressed (as torch.save writes them) and lying inside the file,
// so that nothing the file claims can make the reader allocate more than the
// file holds.
void check_archive(const std::vector<char>& bytes, const std::string& path) {
  const std::string not_torch = "not a readable checkpoint (corrupt or not saved by torch)";
  constexpr size_t kEndRecord = 22;
  if (bytes.size() < kEndRecord) fail(path, not_torch);
  size_t end = bytes.size() - kEndRecord;
  const size_t lowest = bytes.size() > kEndRecord + 65535 ? bytes.size() - kEndRecord - 65535 : 0;
  while (little_endian(bytes, end, 4) != 0x06054b50) {
    if (end == lowest) fail(path, not_torch);
    --end;
  }
  const uint32_t entries = little_endian(bytes, end + 10, 2);
  const uint64_t directory_size = little_endian(bytes, end + 12, 4);
  const uint64_t directory = little_endian(bytes, end + 16, 4);
  if (directory + directory_size > end)
    fail(path, not_torch + ": its directory lies outside the file");
  size_t at = directory;
  for (uint32_t i = 0; i < entries; ++i) {
    if (at + 46 > directory + directory_size || little_endian(bytes, at, 4) != 0x02014b50) {
      fail(path, not_torch + ": broken directory entry " + std::to_string(i));
    }
    const uint32_t method = little_endian(bytes, at + 10, 2);
    const uint64_t packed = little_endian(bytes, at + 20, 4);
    const uint64_t size = little_endian(bytes, at + 24, 4);
    const uint64_t local = little_endian(bytes, at + 42, 4);
    if (method != 0 || packed != size || local + size > bytes.size()) {
      fail(path, not_torch + ": record " + std::to_string(i) + " claims " + std::to_string(size) +
                     " bytes that the file does not hold");
    }
    at += 46 + little_endian(bytes, at + 28, 2) + little_endian(bytes, at + 30, 2) +
          little_endian(bytes, at + 32, 2);
  }
}

std::map<std::string, torch::Tensor> tensor_dict(const c10::IValue& value,
                                                 const std::string& path) {
  if (!value.isGenericDict()) fail(path, "not a checkpoint (expected a dict of tensors)");
  std::map<std::string, torch::Tensor> out;
  for (const auto& entry : value.toGenericDict()) {
    if (!entry.key().isString() || !entry.value().isTensor()) {
      fail(path, "not a checkpoint (state dict entries must be name -> tensor)");
    }
    out[entry.key().toStringRef()] = entry.value().toTensor();
  }
  return out;
}

}  // namespace

void save_checkpoint(const std::string& path, torch::nn::Module& model, const std::string& meta,
                     const TrainingState* training) {
  auto tensors = [](const std::map<std::string, torch::Tensor>& from) {
    c10::Dict<std::string, torch::Tensor> out;
    for (const auto& [key, tensor] : from) out.insert(key, tensor.detach().cpu());
    return out;
  };
  c10::impl::GenericDict top(c10::StringType::get(), c10::AnyType::get());
  top.insert("state_dict", tensors(state_of(model)));
  top.insert("meta", meta);
  if (training != nullptr) {
    top.insert("momentum", tensors(training->momentum));
    top.insert("rng", training->rng.defined() ? training->rng.cpu() : torch::Tensor());
  }
  const std::vector<char> bytes = torch::pickle_save(top);
  write_file_atomically(path, std::string_view(bytes.data(), bytes.size()), "checkpoint");
}

Checkpoint read_checkpoint(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in.good()) fail(path, "cannot open the checkpoint (no such file?)");
  const std::vector<char> bytes((std::istreambuf_iterator<char>(in)),
                                std::istreambuf_iterator<char>());
  if (bytes.empty()) fail(path, "the checkpoint file is empty");
  check_archive(bytes, path);
  c10::IValue value;
  try {
    value = torch::pickle_load(bytes);
  } catch (const std::exception&) {
    fail(path, "not a readable checkpoint (corrupt or not saved by torch)");
  }
  Checkpoint checkpoint;
  if (value.isGenericDict()) {
    auto dict = value.toGenericDict();
    if (dict.contains("state_dict")) {
      checkpoint.state = tensor_dict(dict.at("state_dict"), path);
      if (dict.contains("meta") && dict.at("meta").isString()) {
        checkpoint.meta = dict.at("meta").toStringRef();
      }
      if (dict.contains("momentum")) {
        TrainingState training;
        training.momentum = tensor_dict(dict.at("momentum"), path);
        if (dict.contains("rng") && dict.at("rng").isTensor())
          training.rng = dict.at("rng").toTensor();
        checkpoint.training = std::move(training);
      }
      return checkpoint;
    }
  }
  checkpoint.state = tensor_dict(value, path);
  return checkpoint;
}

void load_state(torch::nn::Module& model, const Checkpoint& checkpoint, const std::string& path) {
  auto state = state_of(model);
  std::vector<std::string> missing, unexpected, mismatched;
  for (const auto& [key, tensor] : state) {
    auto it = checkpoint.state.find(key);
    if (it == checkpoint.state.end()) {
      missing.push_back(key);
    } else if (it->second.sizes() != tensor.sizes()) {
      std::ostringstream s;
      s << key << " " << it->second.sizes() << " vs model " << tensor.sizes();
      mismatched.push_back(s.str());
    }
  }
  for (const auto& entry : checkpoint.state) {
    if (state.count(entry.first) == 0) unexpected.push_back(entry.first);
  }
  if (!missing.empty()) {
    fail(path, "checkpoint does not fit this model: missing " + list_keys(missing) +
                   " (was it trained with other flags?)");
  }
  if (!unexpected.empty()) {
    fail(path, "checkpoint does not fit this model: unexpected " + list_keys(unexpected) +
                   " (was it trained with other flags?)");
  }
  if (!mismatched.empty()) {
    fail(path, "checkpoint does not fit this model: shape of " + list_keys(mismatched));
  }
  torch::NoGradGuard no_grad;
  for (auto& [key, tensor] : state) tensor.copy_(checkpoint.state.at(key));
}

}  // namespace dnn_gating::train
