#pragma once
// Which modules are held by a layers::Slot, and rebinding those slots: what
// gate() needs to replace a module that its parent calls through a member.
#include <torch/torch.h>

namespace dnn_gating::layers {

/// Whether some live Slot holds `module`.
bool held_by_slot(const torch::nn::Module& module);

/// Makes every Slot that holds `old_module` hold `replacement` instead.
void rebind_slots(const torch::nn::Module& old_module, const torch::nn::AnyModule& replacement);

}  // namespace dnn_gating::layers
