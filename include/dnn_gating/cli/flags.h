#pragma once
/// The original trainers' argparse spellings (`-pg`, `-gtar 1`, `-spbp`) are
/// single-dash names of several letters, which CLI11 reads as bundled short
/// flags (`-pg` would become `-p g`). Each such spelling is rewritten to its
/// long flag before parsing.

#include <string>
#include <vector>

namespace dnn_gating::cli {

/// An original single-dash spelling and the long flag it stands for.
struct Spelling {
  std::string original;   ///< e.g. "-pg"
  std::string long_flag;  ///< e.g. "--ispg"
};

/// Arguments with every exact original spelling (and `-spelling=value`)
/// rewritten to its long flag; everything else (values, `--` and after) is
/// kept as it is. The program name is kept first.
std::vector<std::string> rewrite_spellings(const std::vector<std::string>& args,
                                           const std::vector<Spelling>& spellings);

}  // namespace dnn_gating::cli
