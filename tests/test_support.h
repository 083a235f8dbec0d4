#pragma once
// Shared test helpers: golden-vector loading, temporary directories, running
// the trainer executables.

#include <gtest/gtest.h>
#include <torch/script.h>
#include <torch/torch.h>

#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace dnn_gating::testing {

/// One recorded case of ../shared/golden: every tensor by name and the JSON config.
struct GoldenCase {
  std::map<std::string, torch::Tensor> tensors;
  std::string config;

  /// The tensor `name` (a `.` in a state-dict key is written `__`); fails the test if absent.
  const torch::Tensor& at(const std::string& name) const;
  bool has(const std::string& name) const { return tensors.count(name) > 0; }
  /// The tensors whose names start with `prefix`, keyed by the state-dict key
  /// after it (with `__` turned back into `.`).
  std::map<std::string, torch::Tensor> with_prefix(const std::string& prefix) const;
};

/// Loads `name`.pt from the golden directory: DNN_GATING_GOLDEN_DIR when
/// set, else ../shared/golden beside the source tree. Returns false (and the
/// test should return) when the directory is absent: skipped on a user's
/// machine, failed when the CI environment variable is set.
bool load_golden(const std::string& name, GoldenCase& out);

/// The device the golden layer and model cases run on: DNN_GATING_TEST_DEVICE
/// (e.g. `cuda:0`), the CPU when unset. Returns false with the reason in `why`
/// when that device is not available here (the test should skip). On CUDA it
/// makes cuDNN choose deterministic algorithms without benchmarking and turns
/// TF32 off, so that float32 convolutions round as float32 does on the CPU.
bool select_test_device(torch::Device& device, std::string& why);

#define DG_TEST_DEVICE_OR_SKIP(var)                                              \
  torch::Device var = torch::kCPU;                                               \
  if (std::string why_; !::dnn_gating::testing::select_test_device(var, why_)) { \
    GTEST_SKIP() << why_;                                                        \
  }

/// Tolerances of a float32 comparison with the original's recorded values.
struct Tolerance {
  double rtol;
  double atol;
};
/// Float32 layer cases (convolutions and their gradients): rtol 1e-5, atol
/// 1e-6 on the CPU; rtol 1e-4, atol 1e-5 on CUDA, where cuDNN sums the
/// convolutions' products (up to a few thousand per output or weight
/// gradient) in another order than the CPU that recorded them.
Tolerance float32_layer_tolerance(const torch::Device& device);

#define DG_LOAD_GOLDEN_OR_SKIP(name, var)                                             \
  ::dnn_gating::testing::GoldenCase var;                                              \
  if (!::dnn_gating::testing::load_golden(name, var)) {                               \
    if (std::getenv("CI") != nullptr) {                                               \
      FAIL() << "golden vectors missing (CI is set): " << (name);                     \
    }                                                                                 \
    GTEST_SKIP() << "golden vectors not found (../shared/golden absent): " << (name); \
  }

/// The message of the exception `f` throws ("" and a test failure if none).
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected an exception";
  return "";
}

/// Asserts allclose and reports the largest difference on failure; the
/// tensors may be on different devices (they are compared on the CPU).
::testing::AssertionResult all_close(const torch::Tensor& actual, const torch::Tensor& expected,
                                     double rtol, double atol);

/// Copies the named tensors into a module's parameters and buffers (by state-dict key).
void load_state(torch::nn::Module& module, const std::map<std::string, torch::Tensor>& state);

/// A BatchNorm in evaluation mode whose statistics and affine parameters
/// are random, not the initial ones (so that folding it is tested).
torch::nn::BatchNorm2d evaluation_batch_norm(int64_t channels);

/// A fresh directory under the build tree, removed at destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

/// Result of running a program: exit code and everything it printed (stdout+stderr).
struct RunResult {
  int exit_code;
  std::string output;
};
RunResult run_command(const std::string& command);

/// A path in single quotes, for a shell command line.
inline std::string quote(const std::filesystem::path& p) { return "'" + p.string() + "'"; }

/// The lines of `text` that contain a match of `pattern` (ECMAScript regex),
/// each cut to its first match, in order.
std::vector<std::string> matching_lines(const std::string& text, const std::string& pattern);

/// A program running in the background (through /bin/sh, which it replaces),
/// its stdout and stderr going to `output`. Killed and reaped at destruction
/// if still running.
class Background {
 public:
  Background(const std::string& command, const std::filesystem::path& output);
  ~Background();
  Background(const Background&) = delete;
  Background& operator=(const Background&) = delete;
  /// Sends `signal_number` to the program.
  void signal(int signal_number) const;
  /// Waits at most `seconds` for the program to end; its exit code, 128 +
  /// the signal that killed it, or -1 if it did not end in time (it is then killed).
  int wait(double seconds);

 private:
  int pid_ = -1;
};

/// Waits at most `seconds`, polling, until `done()` holds; returns whether it did.
bool wait_until(const std::function<bool()>& done, double seconds);

/// Writes a CIFAR-10 binary file of `records` random images with labels
/// `label_of(i)`; returns its path.
void write_cifar_file(const std::filesystem::path& file, int64_t records, uint64_t seed);
/// A directory holding data_batch_1..5.bin and test_batch.bin of `per_file` records each.
void write_cifar_dir(const std::filesystem::path& dir, int64_t per_file);

}  // namespace dnn_gating::testing
