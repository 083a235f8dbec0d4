#pragma once
// Settings described as JSON objects (the model's, the job's): which differ.
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace dnn_gating::train {

/// The keys of `a` whose values differ in `b` (every key of `a` must be in `b`).
inline std::vector<std::string> differing_keys(const nlohmann::json& a, const nlohmann::json& b) {
  std::vector<std::string> out;
  for (const auto& item : a.items()) {
    if (item.value() != b.at(item.key())) out.push_back(item.key());
  }
  return out;
}

}  // namespace dnn_gating::train
