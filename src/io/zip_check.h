#pragma once
// A zip archive's directory checked before torch reads it (checkpoints and
// PyTorch state dicts alike).
#include <string>
#include <vector>

namespace dnn_gating::train {

/// Checks that every record of the zip archive `bytes` is stored
/// uncompressed (as torch.save and torch::pickle_save write them) and lies
/// inside the file, so that nothing the file claims can make a reader
/// allocate more than the file holds. Throws std::runtime_error naming `path`.
void check_zip_records(const std::vector<char>& bytes, const std::string& path);

}  // namespace dnn_gating::train
