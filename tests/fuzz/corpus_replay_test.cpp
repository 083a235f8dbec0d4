// Every file of the fuzz corpora (tests/fuzz/corpus/<target>/) through its
// target, as scripts/fuzz.sh runs them but without new fuzzing: the seeds
// (seed-*, valid files) must be accepted, and every regression input (an
// input that once broke a reader) refused with the message of the check
// that fixed it: an allocation failure (std::bad_alloc) would be a
// regression, not a refusal. In the sanitizer build, AddressSanitizer and
// UBSan watch the readers.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include "fuzz/targets.h"

namespace fs = std::filesystem;

namespace {

// What each regression input must be refused with (a part of the message).
const std::map<std::string, std::string>& regression_messages() {
  static const std::map<std::string, std::string> messages{
      {"regression-claimed-1.7GB-string", "its pickle claims 1698264147 bytes where 2145 remain"},
      {"regression-memo-index-1.6G", "its pickle stores memo entry 1601397609 after only 20"},
      {"regression-read-before-buffer",
       "not a readable PyTorch archive (damaged or truncated zip)"},
  };
  return messages;
}

}  // namespace

TEST(FuzzCorpus, EveryFileReplaysCleanlyAndSeedsAreAccepted) {
  const fs::path corpus = DG_FUZZ_CORPUS_DIR;
  int total_regressions = 0;
  for (const auto& t : dnn_gating::fuzz::targets()) {
    const fs::path dir = corpus / t.name;
    ASSERT_TRUE(fs::is_directory(dir)) << dir;
    int seeds = 0;
    int regressions = 0;
    for (const auto& entry : fs::directory_iterator(dir)) {
      std::ifstream in(entry.path(), std::ios::binary);
      const std::vector<uint8_t> bytes(std::istreambuf_iterator<char>(in), {});
      const std::string why = dnn_gating::fuzz::run_one(t.run, bytes.data(), bytes.size());
      if (entry.path().filename().string().rfind("seed-", 0) == 0) {
        ++seeds;
        EXPECT_EQ(why, "") << entry.path() << " is a valid file";
      }
      const std::string name = entry.path().filename().string();
      if (name.rfind("regression-", 0) == 0) {
        ++regressions;
        const auto expected = regression_messages().find(name);
        ASSERT_NE(expected, regression_messages().end())
            << name << ": a regression input needs its expected message here";
        EXPECT_NE(why.find(expected->second), std::string::npos)
            << entry.path() << " was refused with '" << why << "', expected '" << expected->second
            << "'";
      }
    }
    EXPECT_GT(seeds, 0) << "no seed in " << dir;
    total_regressions += regressions;
  }
  EXPECT_EQ(total_regressions, static_cast<int>(regression_messages().size()))
      << "regression inputs replayed";
}
