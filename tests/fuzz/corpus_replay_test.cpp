// Every file of the fuzz corpora (tests/fuzz/corpus/<target>/) through its
// target, as scripts/fuzz.sh runs them but without new fuzzing: the seeds
// (seed-*, valid files) must be accepted, every other file (an input that
// once broke a reader) refused or accepted without a defect. In the
// sanitizer build, AddressSanitizer and UBSan watch the readers.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "fuzz/targets.h"

namespace fs = std::filesystem;

TEST(FuzzCorpus, EveryFileReplaysCleanlyAndSeedsAreAccepted) {
  const fs::path corpus = DG_FUZZ_CORPUS_DIR;
  for (const auto& t : dnn_gating::fuzz::targets()) {
    const fs::path dir = corpus / t.name;
    ASSERT_TRUE(fs::is_directory(dir)) << dir;
    int seeds = 0;
    for (const auto& entry : fs::directory_iterator(dir)) {
      std::ifstream in(entry.path(), std::ios::binary);
      const std::vector<uint8_t> bytes(std::istreambuf_iterator<char>(in), {});
      const std::string why = dnn_gating::fuzz::run_one(t.run, bytes.data(), bytes.size());
      if (entry.path().filename().string().rfind("seed-", 0) == 0) {
        ++seeds;
        EXPECT_EQ(why, "") << entry.path() << " is a valid file";
      }
    }
    EXPECT_GT(seeds, 0) << "no seed in " << dir;
  }
}
