#include "dnn_gating/cli/flags.h"

namespace dnn_gating::cli {

std::vector<std::string> rewrite_spellings(const std::vector<std::string>& args,
                                           const std::vector<Spelling>& spellings) {
  std::vector<std::string> out;
  out.reserve(args.size());
  bool positional_only = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (i == 0 || positional_only) {
      out.push_back(arg);
      continue;
    }
    if (arg == "--") positional_only = true;
    std::string rewritten = arg;
    for (const auto& s : spellings) {
      if (arg == s.original) {
        rewritten = s.long_flag;
      } else if (arg.rfind(s.original + "=", 0) == 0) {
        rewritten = s.long_flag + arg.substr(s.original.size());
      }
    }
    out.push_back(rewritten);
  }
  return out;
}

}  // namespace dnn_gating::cli
