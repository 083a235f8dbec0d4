#include "dnn_gating/train/optimizer.h"

#include <unordered_set>

#include "dnn_gating/layers/gated_layer.h"
#include "torch_compat.h"

namespace dnn_gating::train {

std::unique_ptr<torch::optim::SGD> make_sgd(torch::nn::Module& model, const SgdSettings& settings) {
  auto base = torch::optim::SGDOptions(settings.lr).momentum(settings.momentum);
  if (!settings.exempt_thresholds_and_1d) {
    std::vector<torch::Tensor> params;
    for (const auto& p : model.parameters()) {
      if (p.requires_grad()) params.push_back(p);
    }
    return std::make_unique<torch::optim::SGD>(params, base.weight_decay(settings.weight_decay));
  }
  std::unordered_set<const c10::TensorImpl*> thresholds;
  for (const auto& [name, layer] : layers::gated_layers(model)) {
    thresholds.insert(layer->threshold().unsafeGetTensorImpl());
  }
  std::vector<torch::Tensor> decayed, exempt;
  for (const auto& p : model.parameters()) {
    if (!p.requires_grad()) continue;
    const bool no_decay = thresholds.count(p.unsafeGetTensorImpl()) > 0 || p.dim() <= 1;
    (no_decay ? exempt : decayed).push_back(p);
  }
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decayed,
                      std::make_unique<torch::optim::SGDOptions>(
                          torch::optim::SGDOptions(base).weight_decay(settings.weight_decay)));
  groups.emplace_back(exempt, std::make_unique<torch::optim::SGDOptions>(
                                  torch::optim::SGDOptions(base).weight_decay(0.0)));
  return std::make_unique<torch::optim::SGD>(std::move(groups), base);
}

namespace {

// How torch::optim keys the state of a parameter.
compat::OptimizerStateKey state_key(const torch::Tensor& parameter) {
  return compat::optimizer_state_key(parameter);
}

}  // namespace

std::map<std::string, torch::Tensor> momentum_buffers(torch::optim::SGD& optimizer,
                                                      torch::nn::Module& model) {
  std::map<std::string, torch::Tensor> out;
  auto& state = optimizer.state();
  for (const auto& p : model.named_parameters()) {
    const auto it = state.find(state_key(p.value()));
    if (it == state.end()) continue;
    const auto& sgd_state = static_cast<const torch::optim::SGDParamState&>(*it->second);
    if (sgd_state.momentum_buffer().defined()) out[p.key()] = sgd_state.momentum_buffer();
  }
  return out;
}

void restore_momentum_buffers(torch::optim::SGD& optimizer, torch::nn::Module& model,
                              const std::map<std::string, torch::Tensor>& buffers) {
  auto params = model.named_parameters();
  for (const auto& [name, buffer] : buffers) {
    const torch::Tensor* p = params.find(name);
    TORCH_CHECK(p != nullptr, "momentum buffer of '", name, "', which the model does not have");
    TORCH_CHECK(p->sizes() == buffer.sizes(), "momentum buffer of '", name, "' has shape ",
                buffer.sizes(), ", the parameter ", p->sizes());
    auto state = std::make_unique<torch::optim::SGDParamState>();
    state->momentum_buffer(buffer.to(p->options()).clone());
    optimizer.state()[state_key(*p)] = std::move(state);
  }
}

double scheduled_lr(double base_lr, const std::vector<int64_t>& milestones, int64_t epoch,
                    double gamma) {
  double lr = base_lr;
  for (int64_t m : milestones) {
    if (epoch >= m) lr *= gamma;
  }
  return lr;
}

void set_lr(torch::optim::SGD& optimizer, double lr) {
  for (auto& group : optimizer.param_groups()) {
    static_cast<torch::optim::SGDOptions&>(group.options()).lr(lr);
  }
}

}  // namespace dnn_gating::train
