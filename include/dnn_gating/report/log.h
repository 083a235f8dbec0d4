#pragma once
/// Where a job's messages go: progress and information through spdlog's
/// default logger, the final report through its own logger, so that a quiet
/// run (warnings and errors only) still prints the report.

#include <spdlog/spdlog.h>

namespace dnn_gating::train {

/// The logger of the final report (accuracy lines, gate table, cost figures).
spdlog::logger& report_log();

/// Plain messages ("%v"); with `quiet`, the default logger passes only
/// warnings and errors while the report logger still prints the report.
void configure_logging(bool quiet);

}  // namespace dnn_gating::train
