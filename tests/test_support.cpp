#include "test_support.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <random>
#include <regex>
#include <sstream>
#include <thread>

namespace dnn_gating::testing {
namespace fs = std::filesystem;

const torch::Tensor& GoldenCase::at(const std::string& name) const {
  auto it = tensors.find(name);
  if (it == tensors.end()) throw std::runtime_error("golden case has no tensor '" + name + "'");
  return it->second;
}

std::map<std::string, torch::Tensor> GoldenCase::with_prefix(const std::string& prefix) const {
  std::map<std::string, torch::Tensor> out;
  for (const auto& [name, tensor] : tensors) {
    if (name.rfind(prefix, 0) != 0) continue;
    std::string key = name.substr(prefix.size());
    for (size_t pos; (pos = key.find("__")) != std::string::npos;) key.replace(pos, 2, ".");
    out[key] = tensor;
  }
  return out;
}

bool load_golden(const std::string& name, GoldenCase& out) {
  const char* dir = std::getenv("DNN_GATING_GOLDEN_DIR");
  const fs::path file =
      fs::path(dir != nullptr && *dir != '\0' ? dir : DG_GOLDEN_DIR) / (name + ".pt");
  if (!fs::exists(file)) return false;
  torch::jit::Module module = torch::jit::load(file.string());
  for (const auto& buffer : module.named_buffers()) out.tensors[buffer.name] = buffer.value;
  out.config = module.attr("config").toStringRef();
  return true;
}

bool select_test_device(torch::Device& device, std::string& why) {
  const char* name = std::getenv("DNN_GATING_TEST_DEVICE");
  if (name == nullptr || *name == '\0') {
    device = torch::kCPU;
    return true;
  }
  try {
    device = torch::Device(name);
  } catch (const c10::Error&) {
    why = std::string("DNN_GATING_TEST_DEVICE='") + name + "' is not a device (e.g. cuda:0)";
    return false;
  }
  if (device.is_cuda()) {
    if (!torch::cuda::is_available()) {
      why = std::string("DNN_GATING_TEST_DEVICE=") + name +
            ": no CUDA device available to this "
            "LibTorch build";
      return false;
    }
    if (device.has_index() && device.index() >= static_cast<int>(torch::cuda::device_count())) {
      why = std::string("DNN_GATING_TEST_DEVICE=") + name + ": only " +
            std::to_string(torch::cuda::device_count()) + " CUDA devices";
      return false;
    }
    auto& context = at::globalContext();
    context.setBenchmarkCuDNN(false);
    context.setDeterministicCuDNN(true);
    context.setAllowTF32CuDNN(false);
    context.setAllowTF32CuBLAS(false);
    // Warns (once per operation) where an operation has no deterministic
    // CUDA implementation, rather than failing the case.
    context.setDeterministicAlgorithms(true, /*warn_only=*/true);
  }
  return true;
}

Tolerance float32_layer_tolerance(const torch::Device& device) {
  return device.is_cpu() ? Tolerance{1e-5, 1e-6} : Tolerance{1e-4, 1e-5};
}

::testing::AssertionResult all_close(const torch::Tensor& actual, const torch::Tensor& expected,
                                     double rtol, double atol) {
  if (actual.sizes() != expected.sizes()) {
    return ::testing::AssertionFailure()
           << "shape " << actual.sizes() << " != expected " << expected.sizes();
  }
  torch::Tensor a = actual.detach().to(torch::kCPU, torch::kDouble);
  torch::Tensor e = expected.detach().to(torch::kCPU, torch::kDouble);
  if (torch::allclose(a, e, rtol, atol)) return ::testing::AssertionSuccess();
  torch::Tensor excess = (a - e).abs() - (e.abs() * rtol + atol);
  const int64_t worst = excess.flatten().argmax().item<int64_t>();
  return ::testing::AssertionFailure()
         << "not allclose(rtol=" << rtol << ", atol=" << atol
         << "): " << (excess > 0).sum().item<int64_t>() << " of " << a.numel()
         << " elements differ; worst at flat index " << worst << ": "
         << a.flatten()[worst].item<double>() << " vs " << e.flatten()[worst].item<double>();
}

void load_state(torch::nn::Module& module, const std::map<std::string, torch::Tensor>& state) {
  torch::NoGradGuard no_grad;
  auto params = module.named_parameters();
  auto buffers = module.named_buffers();
  for (const auto& [key, value] : state) {
    torch::Tensor* target = params.find(key);
    if (target == nullptr) target = buffers.find(key);
    if (target == nullptr)
      throw std::runtime_error("module has no parameter or buffer '" + key + "'");
    if (target->sizes() != value.sizes()) {
      throw std::runtime_error("shape mismatch for '" + key + "'");
    }
    target->copy_(value);
  }
}

TempDir::TempDir() {
  static std::mt19937_64 rng{std::random_device{}()};
  path_ = fs::path(DG_BINARY_DIR) / "test-tmp" / ("t" + std::to_string(rng()));
  fs::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ignored;
  fs::remove_all(path_, ignored);
}

RunResult run_command(const std::string& command) {
  std::string output;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return {-1, "popen failed"};
  std::array<char, 4096> buffer{};
  size_t n;
  while ((n = fread(buffer.data(), 1, buffer.size(), pipe)) > 0) output.append(buffer.data(), n);
  const int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

std::vector<std::string> matching_lines(const std::string& text, const std::string& pattern) {
  std::vector<std::string> out;
  const std::regex re(pattern);
  std::istringstream lines(text);
  std::smatch match;
  for (std::string line; std::getline(lines, line);) {
    if (std::regex_search(line, match, re)) out.push_back(match.str());
  }
  return out;
}

Background::Background(const std::string& command, const fs::path& output) {
  const std::string shell = "exec " + command + " > '" + output.string() + "' 2>&1";
  pid_ = fork();
  if (pid_ == 0) {
    execl("/bin/sh", "sh", "-c", shell.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
}

Background::~Background() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
}

void Background::signal(int signal_number) const {
  if (pid_ > 0) kill(pid_, signal_number);
}

int Background::wait(double seconds) {
  int status = 0;
  const bool ended =
      wait_until([&] { return pid_ > 0 && waitpid(pid_, &status, WNOHANG) == pid_; }, seconds);
  if (!ended) return -1;
  pid_ = -1;
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : -1;
}

bool wait_until(const std::function<bool()>& done, double seconds) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

void write_cifar_file(const fs::path& file, int64_t records, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::ofstream out(file, std::ios::binary);
  std::vector<char> record(3073);
  for (int64_t i = 0; i < records; ++i) {
    const int label = static_cast<int>(rng() % 10);
    record[0] = static_cast<char>(label);
    // Class-dependent colour so a model can learn something in one epoch.
    for (int c = 0; c < 3; ++c) {
      const int base = (label * (c + 3) * 37) % 256;
      for (int p = 0; p < 1024; ++p) {
        record[1 + c * 1024 + p] = static_cast<char>((base + static_cast<int>(rng() % 48)) % 256);
      }
    }
    out.write(record.data(), static_cast<std::streamsize>(record.size()));
  }
}

void write_cifar_dir(const fs::path& dir, int64_t per_file) {
  fs::create_directories(dir);
  for (int b = 1; b <= 5; ++b) {
    write_cifar_file(dir / ("data_batch_" + std::to_string(b) + ".bin"), per_file, b);
  }
  write_cifar_file(dir / "test_batch.bin", per_file, 99);
}

torch::nn::BatchNorm2d evaluation_batch_norm(int64_t channels) {
  torch::nn::BatchNorm2d bn(channels);
  torch::NoGradGuard no_grad;
  bn->running_mean.normal_(0, 0.3);
  bn->running_var.uniform_(0.5, 2);
  bn->weight.normal_(1, 0.2);
  bn->bias.normal_(0, 0.2);
  bn->eval();
  return bn;
}

}  // namespace dnn_gating::testing
