#pragma once
/// Writing a file so that readers see either the old or the new contents,
/// never a partial one: checkpoints, metrics files and plots all go through
/// here, with one error policy.

#include <string>
#include <string_view>

namespace dnn_gating::train {

/// Writes `contents` to `path`: creates its directory, writes a temporary
/// file beside it (`path` + ".partial"), flushes it to the disk, then renames
/// it over `path`. On any failure the temporary is removed, `path` keeps its
/// old contents, and std::runtime_error names the path and the reason, e.g.
/// "runs/m.jsonl: cannot write the metrics file (No space left on device)".
/// `what` names the file's role in that message ("checkpoint", "plot", ...).
void write_file_atomically(const std::string& path, std::string_view contents,
                           const std::string& what);

/// Removes the temporary file of a write_file_atomically in progress, if
/// any. Async-signal-safe: a stop handler calls it before it ends the
/// process, so that no partial file is left.
void remove_file_in_progress();

}  // namespace dnn_gating::train
