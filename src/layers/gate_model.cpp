#include "dnn_gating/layers/gate_model.h"

#include <map>
#include <optional>
#include <utility>

#include "dnn_gating/layers/quantized_conv.h"
#include "dnn_gating/quant/pact.h"
#include "dnn_gating/setting_error.h"
#include "layers/slots.h"

namespace dnn_gating::layers {
namespace {

// A module of the tree with the parent that holds it.
struct Child {
  std::string name;   // full name in the model
  std::string local;  // its name in the parent
  torch::nn::Module* parent = nullptr;
  std::shared_ptr<torch::nn::Module> module;
};

// Every module of the tree once (a module registered under several names is
// listed, and looked into, at the first), and every name of each.
void collect(torch::nn::Module& parent, const std::string& prefix, std::vector<Child>& out,
             std::map<const torch::nn::Module*, std::vector<std::string>>& names) {
  for (const auto& item : parent.named_children()) {
    const std::string name = prefix.empty() ? item.key() : prefix + "." + item.key();
    std::vector<std::string>& known = names[item.value().get()];
    known.push_back(name);
    if (known.size() > 1) continue;
    out.push_back({name, item.key(), &parent, item.value()});
    collect(*item.value(), name, out, names);
  }
}

// A float convolution: what it is, its weight and its bias (undefined if none).
struct FloatConv {
  ConvSite site;
  torch::Tensor weight, bias;
  std::optional<std::array<int64_t, 2>> padding;  // none: not zero padding gate() can express
};

std::array<int64_t, 2> pair(torch::ExpandingArray<2> a) { return {(*a)[0], (*a)[1]}; }

std::optional<FloatConv> float_conv(const Child& child) {
  FloatConv c;
  if (const auto conv = std::dynamic_pointer_cast<torch::nn::Conv2dImpl>(child.module)) {
    const auto& o = conv->options;
    c.site = {child.name,       o.in_channels(),    o.out_channels(), pair(o.kernel_size()),
              pair(o.stride()), pair(o.dilation()), o.groups(),       conv->bias.defined()};
    c.weight = conv->weight;
    c.bias = conv->bias;
    if (!c10::get_if<torch::enumtype::kZeros>(&o.padding_mode())) {
      c.padding = std::nullopt;
    } else if (const auto* p = c10::get_if<torch::ExpandingArray<2>>(&o.padding())) {
      c.padding = pair(*p);
    } else if (c10::get_if<torch::enumtype::kValid>(&o.padding())) {
      c.padding = std::array<int64_t, 2>{0, 0};
    } else if (c.site.stride == std::array<int64_t, 2>{1, 1} && c.site.kernel_size[0] % 2 == 1 &&
               c.site.kernel_size[1] % 2 == 1) {  // kSame at stride 1, odd kernel
      c.padding = std::array<int64_t, 2>{c.site.kernel_size[0] / 2, c.site.kernel_size[1] / 2};
    }
    return c;
  }
  if (const auto conv = std::dynamic_pointer_cast<QuantizedConv2dImpl>(child.module)) {
    const auto& o = conv->options;
    if (o.wbits() != 0 || o.abits() != 0) return std::nullopt;
    c.site = {child.name, o.in_channels(), o.out_channels(), pair(o.kernel_size()),
              pair(o.stride())};
    c.weight = conv->weight;
    c.padding = pair(o.padding());
    return c;
  }
  return std::nullopt;
}

// Why `child` cannot be replaced, or "" if it can.
std::string unreplaceable(
    const Child& child, const std::map<const torch::nn::Module*, std::vector<std::string>>& names) {
  const std::vector<std::string>& all = names.at(child.module.get());
  if (all.size() > 1) {
    return "it is also registered as '" + all[1] + "'; gate() replaces a module held in one place";
  }
  if (dynamic_cast<torch::nn::SequentialImpl*>(child.parent) != nullptr) return "";
  if (held_by_slot(*child.module)) return "";
  return "its parent calls it directly; hold it in a torch::nn::Sequential or a "
         "dnn_gating::layers::Slot so that it can be replaced";
}

// The BatchNorm2d right after `child` in its Sequential, or null.
std::shared_ptr<torch::nn::BatchNorm2dImpl> batch_norm_after(const Child& child) {
  if (dynamic_cast<torch::nn::SequentialImpl*>(child.parent) == nullptr) return nullptr;
  const auto children = child.parent->named_children();
  for (size_t i = 0; i + 1 < children.size(); ++i) {
    if (children[i].key() == child.local) {
      return std::dynamic_pointer_cast<torch::nn::BatchNorm2dImpl>(children[i + 1].value());
    }
  }
  return nullptr;
}

[[noreturn]] void refuse(const std::string& setting, const std::string& layer,
                         const std::string& why) {
  throw SettingError(setting, "cannot gate layer '" + layer + "': " + why);
}

// `rebuilt` with the same entries as `sequential`, those in `replacements`
// swapped, assigned into the Sequential itself so that every holder of it
// sees the change.
void rebuild(torch::nn::SequentialImpl& sequential,
             const std::map<const torch::nn::Module*, torch::nn::AnyModule>& replacements) {
  const auto names = sequential.named_children().keys();
  torch::nn::SequentialImpl rebuilt;
  rebuilt.train(sequential.is_training());  // its own flag: it has no children yet
  size_t i = 0;
  for (const torch::nn::AnyModule& entry : sequential) {
    const auto found = replacements.find(entry.ptr().get());
    rebuilt.push_back(names.at(i++), found == replacements.end() ? entry : found->second);
  }
  sequential = std::move(rebuilt);
}

}  // namespace

bool papers_choice(const ConvSite& site) {
  return !site.first && site.kernel_size != std::array<int64_t, 2>{1, 1} && site.groups == 1 &&
         site.dilation == std::array<int64_t, 2>{1, 1};
}

std::vector<Replaced> gate(torch::nn::Module& model, const GateSpec& spec) {
  const ConvKind kind = spec.conv.kind();
  check_setting(kind != ConvKind::kFloat, "kind",
                "{kind} must be quantized, pg or cg: a float model has nothing to gate");
  check_setting(!spec.pact() || kind != ConvKind::kChannelGated, "pact",
                "{pact} clips quantized activations: it needs {kind} quantized or pg, not cg");
  std::vector<Child> children;
  std::map<const torch::nn::Module*, std::vector<std::string>> names;
  collect(model, "", children, names);

  // Decide everything before changing anything.
  struct Plan {
    Child child;
    torch::nn::AnyModule replacement;
    torch::Tensor bias;
    std::shared_ptr<torch::nn::BatchNorm2dImpl> bias_into;
  };
  std::vector<Plan> plans;
  bool first = true;
  for (const Child& child : children) {
    std::optional<FloatConv> conv = float_conv(child);
    if (!conv) continue;
    conv->site.first = first;
    first = false;
    if (!spec.select()(conv->site)) continue;
    const ConvSite& s = conv->site;
    if (const std::string why = unreplaceable(child, names); !why.empty())
      refuse("select", s.name, why);
    if (s.groups != 1 || s.dilation != std::array<int64_t, 2>{1, 1}) {
      refuse("select", s.name,
             "the gated convolutions are neither grouped nor dilated (groups " +
                 std::to_string(s.groups) + ", dilation " + std::to_string(s.dilation[0]) + ")");
    }
    if (!conv->padding) {
      refuse("select", s.name, "only zero padding of a fixed size can be gated");
    }
    check_setting(kind != ConvKind::kChannelGated || s.in_channels % spec.conv.partitions() == 0,
                  "partitions",
                  "cannot gate layer '" + s.name + "': its " + std::to_string(s.in_channels) +
                      " input channels are not divisible by {partitions} " +
                      std::to_string(spec.conv.partitions()));
    Plan plan{child, {}, conv->bias, nullptr};
    if (conv->bias.defined()) {
      plan.bias_into = batch_norm_after(child);
      // Batch statistics alone cancel a bias exactly: only running ones change.
      if (plan.bias_into && !plan.bias_into->running_mean.defined()) plan.bias = torch::Tensor();
      if (!plan.bias_into) {
        refuse("select", s.name,
               "the gated convolutions have no bias; follow it with a BatchNorm2d in the same "
               "Sequential (the bias is folded into it) or build it without one");
      }
    }
    ConvOptions options = spec.conv;
    options.in_channels(s.in_channels)
        .out_channels(s.out_channels)
        .kernel_size({s.kernel_size[0], s.kernel_size[1]})
        .stride({s.stride[0], s.stride[1]})
        .padding({(*conv->padding)[0], (*conv->padding)[1]});
    plan.replacement = make_conv(options);
    torch::nn::Module& made = *plan.replacement.ptr();
    {
      torch::NoGradGuard no_grad;
      // The device of the weights, and their precision for floating-point
      // tensors only (counters stay integers).
      made.to(conv->weight.device());
      for (auto& p : made.named_parameters()) {
        if (p.value().is_floating_point()) p.value().set_data(p.value().to(conv->weight.dtype()));
      }
      for (auto& b : made.named_buffers()) {
        if (b.value().is_floating_point()) b.value().set_data(b.value().to(conv->weight.dtype()));
      }
      made.named_parameters(/*recurse=*/false)["weight"].copy_(conv->weight);
    }
    made.train(child.module->is_training());
    plans.push_back(std::move(plan));
  }
  if (spec.pact()) {
    const std::vector<torch::Tensor> parameters = model.parameters();
    for (const Child& child : children) {
      if (!std::dynamic_pointer_cast<torch::nn::ReLUImpl>(child.module)) continue;
      if (!unreplaceable(child, names).empty()) continue;  // a ReLU its parent calls directly stays
      quant::PactReLU pact;
      if (!parameters.empty())
        pact->to(parameters.front().device(), parameters.front().scalar_type());
      pact->train(child.module->is_training());
      plans.push_back({child, torch::nn::AnyModule(pact), {}, nullptr});
    }
  }

  // Apply: fold biases, then swap every module in its Sequential or slots.
  std::map<torch::nn::SequentialImpl*, std::map<const torch::nn::Module*, torch::nn::AnyModule>>
      in_sequentials;
  std::vector<Replaced> replaced;
  for (Plan& plan : plans) {
    if (plan.bias_into && plan.bias.defined()) {
      torch::NoGradGuard no_grad;
      plan.bias_into->running_mean.sub_(plan.bias.to(plan.bias_into->running_mean.dtype()));
    }
    const Child& child = plan.child;
    if (auto* sequential = dynamic_cast<torch::nn::SequentialImpl*>(child.parent)) {
      in_sequentials[sequential][child.module.get()] = plan.replacement;
    } else {
      child.parent->replace_module(child.local, plan.replacement.ptr());
    }
    rebind_slots(*child.module, plan.replacement);
    replaced.push_back({child.name, plan.replacement.ptr()});
  }
  for (auto& [sequential, replacements] : in_sequentials) rebuild(*sequential, replacements);
  return replaced;
}

}  // namespace dnn_gating::layers
