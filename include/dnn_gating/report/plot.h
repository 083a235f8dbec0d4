#pragma once
/// Training curves of a run as one standalone SVG file (no scripts, fonts or
/// other external resources), for a browser or a report.
///
/// Two panels share the epoch axis. The top one shows the train loss (left
/// axis) and the train and test accuracy (right axis, 0-100 %); the bottom
/// one the update-phase sparsity (left axis, 0-100 %) and the cost figure
/// (right axis): PG average bits if any epoch has them, else CG FLOP
/// reduction. Each curve with at least one finite point is one `<polyline>`
/// whose id is its field name (`train_loss`, `train_accuracy`,
/// `test_accuracy`, `sparsity`, `pg_average_bits` or `cg_flop_reduction`);
/// a curve of a single point also gets a circle so that it shows. Non-finite
/// values are left out.

#include <string>
#include <vector>

#include "dnn_gating/report/metrics.h"

namespace dnn_gating::train {

/// The SVG document of `epochs`' curves under `title` (any text; escaped).
std::string training_plot_svg(const std::vector<EpochRecord>& epochs, const std::string& title);

/// Writes training_plot_svg() to `svg_path`, creating its directory: to a
/// temporary file beside it, renamed over `svg_path` once complete, so a
/// viewer never sees half a plot. Errors (std::runtime_error) name the file.
void write_training_plot(const std::vector<EpochRecord>& epochs, const std::string& svg_path,
                         const std::string& title);

}  // namespace dnn_gating::train
