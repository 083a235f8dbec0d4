#pragma once
/// A configuration the library refuses, naming the setting (an options
/// field such as `wbits` or `partitions`) so that a program can tell its
/// user which of its own flags or fields to change.

#include <stdexcept>
#include <string>
#include <utility>

namespace dnn_gating {

/// Thrown for a setting outside its valid range or inconsistent with another.
class SettingError : public std::invalid_argument {
 public:
  /// `message` is a whole sentence that names `setting`, e.g.
  /// "wbits must be between 0 (full precision) and 16, got -1".
  SettingError(std::string setting, const std::string& message)
      : std::invalid_argument(message), setting_(std::move(setting)) {}
  /// The setting's name, as in the options struct.
  const std::string& setting() const { return setting_; }

 private:
  std::string setting_;
};

/// Throws SettingError(setting, message) unless `ok`.
inline void check_setting(bool ok, const std::string& setting, const std::string& message) {
  if (!ok) throw SettingError(setting, message);
}

}  // namespace dnn_gating
