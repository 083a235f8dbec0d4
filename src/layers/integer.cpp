#include "dnn_gating/layers/integer.h"

#include <array>
#include <utility>

#include "dnn_gating/setting_error.h"
#include "kernels/int8_conv.h"

namespace dnn_gating::layers {
namespace {

constexpr std::array<std::pair<Integer, const char*>, 3> kIntegerNames{{
    {Integer::kFastest, "fastest"},
    {Integer::kNever, "never"},
    {Integer::kAlways, "always"},
}};

}  // namespace

std::string to_string(Integer integer) {
  for (const auto& [value, name] : kIntegerNames) {
    if (value == integer) return name;
  }
  return "fastest";
}

Integer integer_from_string(const std::string& name) {
  for (const auto& [value, known] : kIntegerNames) {
    if (name == known) return value;
  }
  throw SettingError("integer", "{integer} must be fastest, never or always, got '" + name + "'");
}

std::ostream& operator<<(std::ostream& out, Integer integer) { return out << to_string(integer); }

bool integer_available() { return kernels::int8_conv::available(); }

std::string integer_engine() { return kernels::int8_conv::isa(); }

bool integer_applies(Integer integer, int64_t wbits, int64_t abits) {
  return integer != Integer::kNever && integer_available() && wbits >= 2 && wbits <= 8 &&
         abits >= 2 && abits <= 8;
}

}  // namespace dnn_gating::layers
