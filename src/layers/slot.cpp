#include "dnn_gating/layers/slot.h"

#include <algorithm>
#include <mutex>
#include <utility>
#include <vector>

#include "layers/slots.h"

namespace dnn_gating::layers {
namespace {

// Every slot's handle, found by the module it holds. Handles that died (their
// slots destroyed) are dropped when the next slot is made.
struct Registry {
  std::mutex mutex;
  std::vector<std::weak_ptr<torch::nn::AnyModule>> cells;
};

Registry& registry() {
  static Registry r;
  return r;
}

bool holds(const std::shared_ptr<torch::nn::AnyModule>& cell, const torch::nn::Module& module) {
  return cell && !cell->is_empty() && cell->ptr().get() == &module;
}

}  // namespace

Slot::Slot(torch::nn::AnyModule module)
    : cell_(std::make_shared<torch::nn::AnyModule>(std::move(module))) {
  Registry& r = registry();
  const std::lock_guard<std::mutex> lock(r.mutex);
  r.cells.erase(std::remove_if(r.cells.begin(), r.cells.end(),
                               [](const auto& cell) { return cell.expired(); }),
                r.cells.end());
  r.cells.push_back(cell_);
}

bool held_by_slot(const torch::nn::Module& module) {
  Registry& r = registry();
  const std::lock_guard<std::mutex> lock(r.mutex);
  for (const auto& weak : r.cells) {
    if (holds(weak.lock(), module)) return true;
  }
  return false;
}

void rebind_slots(const torch::nn::Module& old_module, const torch::nn::AnyModule& replacement) {
  Registry& r = registry();
  const std::lock_guard<std::mutex> lock(r.mutex);
  for (const auto& weak : r.cells) {
    if (const auto cell = weak.lock(); holds(cell, old_module)) *cell = replacement;
  }
}

}  // namespace dnn_gating::layers
