#include "dnn_gating/io/model_meta.h"

#include <nlohmann/json.hpp>

#include "io/json_settings.h"

namespace dnn_gating::train {
namespace {

using models::ResNetOptions;
using json = nlohmann::json;

// One table of fields serves writing, reading and comparing.
template <typename Visitor>
void for_each_field(ResNetOptions& o, Visitor&& visit) {
  visit("depth", o.depth());
  visit("in_channels", o.in_channels());
  visit("num_classes", o.num_classes());
  visit("wbits", o.wbits());
  visit("abits", o.abits());
  visit("pact", o.pact());
  visit("pred_bits", o.pred_bits());
  visit("sparse_bp", o.sparse_bp());
  visit("pg_alpha", o.pg_alpha());
  visit("partitions", o.partitions());
  visit("ginit", o.ginit());
  visit("cg_alpha", o.cg_alpha());
  visit("use_group", o.use_group());
  visit("shuffle", o.shuffle());
  visit("imagenet_stem", o.imagenet_stem());
}

json to_json_object(ResNetOptions o) {
  json j;
  j["arch"] = models::to_string(o.arch());
  j["conv"] = models::to_string(o.conv());
  j["layout"] = models::to_string(o.layout());
  for_each_field(o, [&](const char* name, auto& value) { j[name] = value; });
  return j;
}

}  // namespace

std::string model_to_json(const ResNetOptions& options) { return to_json_object(options).dump(); }

ResNetOptions model_from_json(const std::string& text) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    TORCH_CHECK(false, "model description is not valid JSON: ", e.what());
  }
  ResNetOptions o;
  if (j.contains("kind")) {  // written before the convolution and layout were two fields
    const auto [conv, layout] = models::model_from_name(j.at("kind").get<std::string>());
    o.conv(conv).layout(layout);
  }
  if (j.contains("arch")) o.arch(models::arch_from_string(j.at("arch").get<std::string>()));
  if (j.contains("conv")) o.conv(models::conv_kind_from_string(j.at("conv").get<std::string>()));
  if (j.contains("layout")) {
    o.layout(models::block_layout_from_string(j.at("layout").get<std::string>()));
  }
  for_each_field(o, [&](const char* name, auto& value) {
    if (j.contains(name)) value = j.at(name).get<std::decay_t<decltype(value)>>();
  });
  return o;
}

std::vector<std::string> differing_fields(const ResNetOptions& a, const ResNetOptions& b) {
  return differing_keys(to_json_object(a), to_json_object(b));
}

}  // namespace dnn_gating::train
