#pragma once
/// A configuration the library refuses, naming the setting (an options
/// field such as `wbits` or `partitions`) so that a program can tell its
/// user which of its own flags or fields to change.

#include <functional>
#include <stdexcept>
#include <string>
#include <utility>

namespace dnn_gating {

/// Thrown for a setting outside its valid range or inconsistent with another.
class SettingError : public std::invalid_argument {
 public:
  /// How a program names a setting to its users (e.g. by its flag).
  using Namer = std::function<std::string(const std::string& setting)>;

  /// `message` is a whole sentence in which every setting it names is
  /// written in braces, e.g. "{pred_bits} must be below {abits}, got 4";
  /// what() is that sentence with the names as they are ("pred_bits must be
  /// below abits, got 4").
  SettingError(std::string setting, std::string message)
      : std::invalid_argument(render(message, [](const std::string& s) { return s; })),
        setting_(std::move(setting)),
        message_(std::move(message)) {}

  /// The setting refused, as in the options struct.
  const std::string& setting() const { return setting_; }

  /// The message with every setting it names written as `name` says.
  std::string message(const Namer& name) const { return render(message_, name); }

 private:
  static std::string render(const std::string& message, const Namer& name) {
    std::string out;
    size_t at = 0;
    for (size_t open = message.find('{'); open != std::string::npos; open = message.find('{', at)) {
      const size_t close = message.find('}', open);
      if (close == std::string::npos) break;
      out += message.substr(at, open - at) + name(message.substr(open + 1, close - open - 1));
      at = close + 1;
    }
    return out + message.substr(at);
  }

  std::string setting_;
  std::string message_;
};

/// Throws SettingError(setting, message) unless `ok`.
inline void check_setting(bool ok, const std::string& setting, const std::string& message) {
  if (!ok) throw SettingError(setting, message);
}

}  // namespace dnn_gating
