#pragma once
/// The model configuration as JSON text, for self-describing checkpoints.

#include <string>
#include <vector>

#include "dnn_gating/models/resnet.h"

namespace dnn_gating::train {

/// JSON object of every ResNetOptions field (kind as its name).
std::string model_to_json(const models::ResNetOptions& options);

/// Rebuilds options from `model_to_json` output; fields absent keep defaults.
models::ResNetOptions model_from_json(const std::string& json);

/// Names of the fields that differ between two configurations (empty if equal).
std::vector<std::string> differing_fields(const models::ResNetOptions& a,
                                          const models::ResNetOptions& b);

}  // namespace dnn_gating::train
