#include "dnn_gating/report/log.h"

namespace dnn_gating::train {

spdlog::logger& report_log() {
  // Shares the default logger's sinks, at its own level.
  static const std::shared_ptr<spdlog::logger> report = [] {
    auto logger = spdlog::default_logger()->clone("report");
    logger->set_level(spdlog::level::info);
    return logger;
  }();
  return *report;
}

void configure_logging(bool quiet) {
  spdlog::set_pattern("%v");
  report_log().set_pattern("%v");
  spdlog::default_logger()->set_level(quiet ? spdlog::level::warn : spdlog::level::info);
}

}  // namespace dnn_gating::train
