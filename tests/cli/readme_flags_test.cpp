// The README's flag tables list exactly the flags of the trainers' tables,
// with every spelling, in the same order.
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <sstream>

#include "dnn_gating/cli/trainer_cli.h"

namespace dg = dnn_gating;
using dg::cli::Trainer;
using Rows = std::vector<std::vector<std::string>>;

namespace {

// The flag spellings of each row of the table under `heading`: the
// backticked words that start with '-' in the first cell.
Rows readme_table(const std::string& heading) {
  std::ifstream in(std::string(DG_SOURCE_DIR) + "/README.md");
  std::string line;
  while (std::getline(in, line) && line != heading) {
  }
  Rows rows;
  const std::regex flag_word("`(-[^`]*)`");
  while (std::getline(in, line)) {
    if (line.rfind("|", 0) != 0) {
      if (!rows.empty() || line.rfind("#", 0) == 0) break;
      continue;
    }
    const std::string first_cell = line.substr(1, line.find('|', 1) - 1);
    std::vector<std::string> names;
    for (std::sregex_iterator it(first_cell.begin(), first_cell.end(), flag_word), end; it != end;
         ++it) {
      names.push_back((*it)[1]);
    }
    if (!names.empty()) rows.push_back(names);
  }
  return rows;
}

Rows table_rows(Trainer trainer, bool trainer_specific) {
  Rows rows;
  for (const auto& flag : dg::cli::flag_table(trainer)) {
    if (flag.trainer_specific == trainer_specific) rows.push_back(flag.names);
  }
  return rows;
}

std::string show(const Rows& rows) {
  std::ostringstream out;
  for (const auto& row : rows) {
    for (const auto& name : row) out << name << ' ';
    out << "| ";
  }
  return out.str();
}

}  // namespace

TEST(ReadmeFlagTables, MatchTheTrainersFlagTables) {
  const Rows pg = readme_table("### `pg-cifar10` flags");
  const Rows cg = readme_table("### `cg-cifar10` flags");
  const Rows both = readme_table("### Flags of both trainers");
  ASSERT_FALSE(pg.empty() || cg.empty() || both.empty()) << "README tables not found";
  EXPECT_EQ(pg, table_rows(Trainer::kPrecisionGating, true)) << show(pg);
  EXPECT_EQ(cg, table_rows(Trainer::kChannelGating, true)) << show(cg);
  EXPECT_EQ(both, table_rows(Trainer::kPrecisionGating, false)) << show(both);
  EXPECT_EQ(both, table_rows(Trainer::kChannelGating, false)) << show(both);
}
