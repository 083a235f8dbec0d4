#include "dnn_gating/layers/gated_layer.h"

#include <array>
#include <stdexcept>

#include "dnn_gating/setting_error.h"
#include "kernels/gates.h"
#include "kernels/isa.h"
#include "kernels/sparse_conv.h"

namespace dnn_gating::layers {
namespace {

constexpr std::array<std::pair<Skipping, const char*>, 3> kSkippingNames{{
    {Skipping::kFastest, "fastest"},
    {Skipping::kNever, "never"},
    {Skipping::kAlways, "always"},
}};

}  // namespace

void GatedLayer::compute_with_threshold(torch::Tensor threshold) {
  TORCH_CHECK(threshold.sizes() == threshold_.sizes(), "a gated layer's threshold must have shape ",
              threshold_.sizes(), ", got ", threshold.sizes());
  threshold_ = std::move(threshold);
}

std::string to_string(Skipping skipping) {
  for (const auto& [value, name] : kSkippingNames) {
    if (value == skipping) return name;
  }
  return "fastest";
}

std::ostream& operator<<(std::ostream& out, Skipping skipping) {
  return out << to_string(skipping);
}

Skipping skipping_from_string(const std::string& name) {
  for (const auto& [value, known] : kSkippingNames) {
    if (name == known) return value;
  }
  throw SettingError("skipping", "{skipping} must be fastest, never or always, got '" + name + "'");
}

std::string kernel_level() { return kernels::isa::name(kernels::isa::level()); }

void GatedLayer::record_gate(const torch::Tensor& mask, const torch::Tensor& weight) {
  if (mask.device().is_cpu()) {
    record_gate(mask.gt(0).sum().item<int64_t>(), mask.sizes(), weight);
    return;
  }
  // On a device the count is a tensor there: summing it into the running
  // total is one more queued kernel, not a synchronising read per layer.
  const torch::Tensor on = mask.detach().gt(0).sum();
  last_ = {c10::multiply_integers(mask.sizes()), 0};
  pending_last_on_ = on;
  total_.num_out += last_.num_out;
  pending_total_on_ = pending_total_on_.defined() ? pending_total_on_ + on : on;
  record_macs(layers::dense_macs_per_image(weight, mask.sizes()));
}

void GatedLayer::record_gate(int64_t num_on, torch::IntArrayRef shape,
                             const torch::Tensor& weight) {
  last_ = {c10::multiply_integers(shape), num_on};
  pending_last_on_ = torch::Tensor();
  total_ += last_;
  record_macs(layers::dense_macs_per_image(weight, shape));
}

const GateCounts& GatedLayer::last_counts() const {
  if (pending_last_on_.defined()) {
    last_.num_on = pending_last_on_.item<int64_t>();
    pending_last_on_ = torch::Tensor();
  }
  return last_;
}

const GateCounts& GatedLayer::total_counts() const {
  if (pending_total_on_.defined()) {
    total_.num_on += pending_total_on_.item<int64_t>();
    pending_total_on_ = torch::Tensor();
  }
  return total_;
}

void GatedLayer::reset_counts() {
  total_ = GateCounts{};
  pending_total_on_ = torch::Tensor();
}

void GatedLayer::keep_decisions(bool keep) {
  keep_decisions_ = keep;
  last_decisions_ = torch::Tensor();
}

void GatedLayer::record_decisions(const torch::Tensor& decisions) {
  if (!keep_decisions_) return;
  last_decisions_ = decisions.scalar_type() == torch::kByte
                        ? decisions.detach()
                        : decisions.detach().ne(0).to(torch::kByte);
}

void GatedLayer::record_decisions_of(const torch::Tensor& gate_input, double alpha) {
  if (!keep_decisions_) return;
  last_decisions_ =
      kernels::gates::open_outputs(gate_input.detach(), threshold_.detach(), alpha).mask();
}

torch::Tensor GatedLayer::decisions_buffer(torch::IntArrayRef shape) {
  if (!keep_decisions_) return {};
  return torch::empty(
      shape, torch::TensorOptions(torch::kByte).memory_format(at::MemoryFormat::ChannelsLast));
}

double GatedLayer::previous_on_fraction(torch::IntArrayRef shape) const {
  const GateCounts& last = last_counts();
  return last.num_out > 0 && last.num_out == c10::multiply_integers(shape) ? last.on_fraction()
                                                                           : -1.0;
}

std::vector<std::pair<std::string, GatedLayer*>> gated_layers(torch::nn::Module& root) {
  std::vector<std::pair<std::string, GatedLayer*>> out;
  for (const auto& item : root.named_modules(/*name_prefix=*/"", /*include_self=*/true)) {
    if (auto* gated = dynamic_cast<GatedLayer*>(item.value().get())) {
      out.emplace_back(item.key(), gated);
    }
  }
  return out;
}

GateCounts total_counts(torch::nn::Module& root) {
  GateCounts sum;
  for (const auto& [name, layer] : gated_layers(root)) sum += layer->total_counts();
  return sum;
}

void reset_counts(torch::nn::Module& root) {
  for (const auto& [name, layer] : gated_layers(root)) layer->reset_counts();
}

void keep_decisions(torch::nn::Module& root, bool keep) {
  for (const auto& [name, layer] : gated_layers(root)) layer->keep_decisions(keep);
}

void set_skipping(torch::nn::Module& root, Skipping skipping) {
  for (const auto& [name, layer] : gated_layers(root)) layer->set_skipping(skipping);
}

}  // namespace dnn_gating::layers
