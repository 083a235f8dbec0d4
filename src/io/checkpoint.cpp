#include "dnn_gating/io/checkpoint.h"

#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/serialization/import_read.h>
#include <torch/serialize.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#include "dnn_gating/io/atomic_file.h"
#include "dnn_gating/io/pytorch_state_dict.h"
#include "io/bounded_read_adapter.h"
#include "io/pickle_check.h"
#include "io/zip_check.h"

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
  check_zip_records(bytes, path);
  if (is_pytorch_state_dict(bytes)) {  // written by Python's torch.save: no description
    Checkpoint checkpoint;
    checkpoint.state = parse_pytorch_state_dict(bytes, path);
    return checkpoint;
  }
  // As torch::pickle_load reads it, over reads clamped to the file and with
  // the pickle's claimed lengths checked before LibTorch's unpickler
  // allocates them.
  c10::IValue value;
  std::string pickle;
  try {
    caffe2::serialize::PyTorchStreamReader reader(std::make_shared<BoundedReadAdapter>(bytes));
    if (!reader.hasRecord("data.pkl")) fail(path, "not a checkpoint: no data.pkl in the archive");
    auto [data, size] = reader.getRecord("data.pkl");
    pickle.assign(static_cast<const char*>(data.get()), size);
    check_pickle_lengths(pickle, path);
    value = torch::jit::readArchiveAndTensors("data", "", "", c10::nullopt, c10::nullopt,
                                              c10::nullopt, reader);
  } catch (const c10::Error&) {
    fail(path, "not a readable checkpoint (corrupt or not saved by torch)");
  } catch (const std::runtime_error&) {
    throw;  // ours, naming the file and what is wrong
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
  // A plain state dict (as the original's files are) does not say what
  // model it holds: the flags describe it.
  const std::string hint = checkpoint.meta.empty()
                               ? " (the file does not describe its model, so the flags do: give "
                                 "the flags it was trained with)"
                               : " (was it trained with other flags?)";
  std::string problems;
  if (!missing.empty()) problems += "missing " + list_keys(missing);
  if (!unexpected.empty()) {
    problems += (problems.empty() ? "" : "; ") + std::string("unexpected ") + list_keys(unexpected);
  }
  if (!mismatched.empty()) {
    problems += (problems.empty() ? "" : "; ") + std::string("shape of ") + list_keys(mismatched);
  }
  if (!problems.empty()) fail(path, "checkpoint does not fit this model: " + problems + hint);
  torch::NoGradGuard no_grad;
  for (auto& [key, tensor] : state) tensor.copy_(checkpoint.state.at(key));
}

}  // namespace dnn_gating::train
