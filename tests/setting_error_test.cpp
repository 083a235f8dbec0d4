// A refused setting carries the names of the settings its message speaks of,
// so that a program can write them as its users know them.
#include "dnn_gating/setting_error.h"

#include <gtest/gtest.h>

namespace dg = dnn_gating;

TEST(SettingError, NamesItsSettingsAsTheyAreOrAsAProgramCallsThem) {
  const dg::SettingError error("pred_bits", "{pred_bits} must be below {abits}, got {pred_bits} 4");
  EXPECT_EQ(error.setting(), "pred_bits");
  EXPECT_STREQ(error.what(), "pred_bits must be below abits, got pred_bits 4");
  EXPECT_EQ(error.message([](const std::string& s) { return "--" + s; }),
            "--pred_bits must be below --abits, got --pred_bits 4");
}

TEST(SettingError, LeavesAnUnclosedBraceAsItIs) {
  const dg::SettingError error("x", "{x} is {not closed");
  EXPECT_STREQ(error.what(), "x is {not closed");
}

TEST(SettingError, CheckSettingThrowsOnlyWhenRefused) {
  EXPECT_NO_THROW(dg::check_setting(true, "depth", "{depth} is wrong"));
  try {
    dg::check_setting(false, "depth", "{depth} is wrong");
    FAIL() << "no SettingError";
  } catch (const dg::SettingError& e) {
    EXPECT_EQ(e.setting(), "depth");
    EXPECT_STREQ(e.what(), "depth is wrong");
  }
}
