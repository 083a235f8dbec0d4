#pragma once
/// State dicts in the files Python's `torch.save(model.state_dict(), f)`
/// writes: the zip layout PyTorch has used since 1.6 (`PREFIX/data.pkl`, the
/// storages as `PREFIX/data/N`, `PREFIX/version`) around a pickle of a
/// `collections.OrderedDict` of tensors. Read with a small, strict unpickler
/// that knows exactly the opcodes and globals such files use and executes
/// nothing; written with the same opcodes, so that Python's `torch.load`
/// reads the file into the original model classes.

#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

namespace dnn_gating::train {

/// The tensors of a state dict file, by key, with a DataParallel `module.`
/// prefix removed. Tensors may be float32, float64, float16, bfloat16 or
/// integer; views of one storage (at an offset, non-contiguous) are read as
/// such. Throws std::runtime_error naming `path` and what is wrong: a damaged
/// archive, an opcode or global the format does not use, a storage shorter
/// than its tensor.
std::map<std::string, torch::Tensor> read_pytorch_state_dict(const std::string& path);

/// The same from the file's bytes.
std::map<std::string, torch::Tensor> parse_pytorch_state_dict(const std::vector<char>& bytes,
                                                              const std::string& path);

/// Whether `bytes` look like a Python state dict file: a zip archive whose
/// pickle opens with a collections.OrderedDict.
bool is_pytorch_state_dict(const std::vector<char>& bytes);

/// The file of `model.state_dict()` as Python's torch.save writes it, with
/// the `_metadata` of every module (BatchNorm version 2, others 1).
std::vector<char> pytorch_state_dict_bytes(torch::nn::Module& model);

/// Writes pytorch_state_dict_bytes(model) to `path` (write_file_atomically).
void write_pytorch_state_dict(const std::string& path, torch::nn::Module& model);

}  // namespace dnn_gating::train
