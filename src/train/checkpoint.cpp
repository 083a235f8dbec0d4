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

std::map<std::string, torch::Tensor> tensor_dict(const c10::IValue& value,
                                                 const std::string& path) {
  TORCH_CHECK(value.isGenericDict(), path, ": not a checkpoint (expected a dict of tensors)");
  std::map<std::string, torch::Tensor> out;
  for (const auto& entry : value.toGenericDict()) {
    TORCH_CHECK(entry.key().isString() && entry.value().isTensor(), path,
                ": not a checkpoint (state dict entries must be name -> tensor)");
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
  TORCH_CHECK(in.good(), path, ": cannot open the checkpoint (no such file?)");
  const std::vector<char> bytes((std::istreambuf_iterator<char>(in)),
                                std::istreambuf_iterator<char>());
  TORCH_CHECK(!bytes.empty(), path, ": the checkpoint file is empty");
  c10::IValue value;
  try {
    value = torch::pickle_load(bytes);
  } catch (const c10::Error&) {
    TORCH_CHECK(false, path, ": not a readable checkpoint (corrupt or not saved by torch)");
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
  TORCH_CHECK(missing.empty(), path, ": checkpoint does not fit this model: missing ",
              list_keys(missing), " (was it trained with other flags?)");
  TORCH_CHECK(unexpected.empty(), path, ": checkpoint does not fit this model: unexpected ",
              list_keys(unexpected), " (was it trained with other flags?)");
  TORCH_CHECK(mismatched.empty(), path, ": checkpoint does not fit this model: shape of ",
              list_keys(mismatched));
  torch::NoGradGuard no_grad;
  for (auto& [key, tensor] : state) tensor.copy_(checkpoint.state.at(key));
}

}  // namespace dnn_gating::train
