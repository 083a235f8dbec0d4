#include "dnn_gating/train/distributed.h"

#include <cstdlib>
#include <map>
#include <stdexcept>
#include <string>
#ifndef DNN_GATING_NO_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#endif

namespace dnn_gating::train {
namespace {

// An environment variable as an integer in [low, high]; `fallback` when unset.
int64_t env_int(const char* name, int64_t fallback, int64_t low, int64_t high) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') return fallback;
  size_t used = 0;
  int64_t value = 0;
  try {
    value = std::stoll(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || text[used] != '\0' || value < low || value > high) {
    throw std::invalid_argument(std::string("environment variable ") + name + "='" + text +
                                "' is not an integer between " + std::to_string(low) + " and " +
                                std::to_string(high));
  }
  return value;
}

}  // namespace

#ifndef DNN_GATING_NO_GLOO
// Held as Gloo's own class: LibTorch 1.x derives it from c10d::ProcessGroup,
// 2.x from c10d::Backend, and both give it the collectives used here.
struct Distributed::Group {
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group;
};

Distributed::Distributed(const c10::intrusive_ptr<c10d::Store>& store, int rank, int world_size,
                         std::chrono::milliseconds timeout)
    : rank_(rank), world_size_(world_size) {
  auto options = c10d::ProcessGroupGloo::Options::create(timeout);
  options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
  options->threads = 2;
  group_ = std::make_shared<Group>();
  group_->group = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, world_size, options);
}

Distributed Distributed::from_environment(std::chrono::milliseconds timeout) {
  const int64_t world = env_int("WORLD_SIZE", 1, 1, 65536);
  if (world == 1) return Distributed();
  const int64_t rank = env_int("RANK", -1, 0, world - 1);
  if (rank < 0) throw std::invalid_argument("WORLD_SIZE is set but RANK is not");
  const char* address = std::getenv("MASTER_ADDR");
  if (address == nullptr || *address == '\0') {
    throw std::invalid_argument("WORLD_SIZE is set but MASTER_ADDR is not");
  }
  const int64_t port = env_int("MASTER_PORT", -1, 1, 65535);
  if (port < 0) throw std::invalid_argument("WORLD_SIZE is set but MASTER_PORT is not");
#ifdef DNN_GATING_NO_GLOO
  throw std::invalid_argument("WORLD_SIZE is " + std::to_string(world) +
                              ", but this build has no c10d Gloo process group (it was "
                              "configured without Gloo's headers): data-parallel runs need one");
#else
  c10d::TCPStoreOptions store_options;
  store_options.port = static_cast<uint16_t>(port);
  store_options.isServer = rank == 0;
  store_options.numWorkers = static_cast<size_t>(world);
  store_options.timeout = timeout;
  c10::intrusive_ptr<c10d::Store> store;
  try {
    store = c10::make_intrusive<c10d::TCPStore>(address, store_options);
    return Distributed(store, static_cast<int>(rank), static_cast<int>(world), timeout);
  } catch (const c10::Error& e) {
    throw std::runtime_error("rank " + std::to_string(rank) +
                             ": cannot join the process group at " + address + ":" +
                             std::to_string(port) + " (" + e.what_without_backtrace() + ")");
  }
#endif
}

void Distributed::broadcast_state(torch::nn::Module& model) const {
  if (world_size_ == 1) return;
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> tensors;
  for (const auto& p : model.parameters()) tensors.push_back(p);
  for (const auto& b : model.buffers()) tensors.push_back(b);
  for (auto& t : tensors) broadcast(t);
}

void Distributed::broadcast_buffers(torch::nn::Module& model) const {
  if (world_size_ == 1) return;
  torch::NoGradGuard no_grad;
  // The BatchNorm statistics (other buffers, such as CG masks, never
  // change), one message per dtype.
  std::map<torch::ScalarType, std::vector<torch::Tensor>> by_type;
  const auto add = [&](torch::nn::Module& module) {
    if (dynamic_cast<torch::nn::BatchNorm2dImpl*>(&module) == nullptr) return;
    for (const auto& b : module.buffers(/*recurse=*/false)) by_type[b.scalar_type()].push_back(b);
  };
  add(model);
  for (const auto& module : model.modules(/*include_self=*/false)) add(*module);
  for (auto& [type, buffers] : by_type) {
    std::vector<torch::Tensor> flat_parts;
    for (const auto& b : buffers) flat_parts.push_back(b.reshape(-1));
    torch::Tensor flat = torch::cat(flat_parts);
    broadcast(flat);
    int64_t offset = 0;
    for (auto& b : buffers) {
      b.copy_(flat.narrow(0, offset, b.numel()).view_as(b));
      offset += b.numel();
    }
  }
}

void Distributed::average_gradients(torch::nn::Module& model, double weight) const {
  if (world_size_ == 1) return;
  constexpr int64_t kBucketBytes = 25 << 20;
  std::vector<torch::Tensor> grads;
  for (const auto& p : model.parameters()) {
    if (p.grad().defined()) grads.push_back(p.grad());
  }
  size_t begin = 0;
  while (begin < grads.size()) {
    size_t end = begin;
    int64_t bytes = 0;
    while (end < grads.size() && (end == begin || bytes + grads[end].nbytes() <= kBucketBytes)) {
      bytes += static_cast<int64_t>(grads[end].nbytes());
      ++end;
    }
    std::vector<torch::Tensor> flat_parts;
    for (size_t i = begin; i < end; ++i) flat_parts.push_back(grads[i].reshape(-1));
    torch::Tensor bucket = torch::cat(flat_parts).mul_(weight);
    all_reduce(bucket, /*maximum=*/false);
    int64_t offset = 0;
    for (size_t i = begin; i < end; ++i) {
      const int64_t n = grads[i].numel();
      grads[i].copy_(bucket.narrow(0, offset, n).view_as(grads[i]));
      offset += n;
    }
    begin = end;
  }
}

void Distributed::sum(torch::Tensor& tensor) const {
  if (world_size_ > 1) all_reduce(tensor, /*maximum=*/false);
}

int64_t Distributed::max(int64_t value) const {
  if (world_size_ == 1) return value;
  torch::Tensor t = torch::tensor({value}, torch::kLong);
  all_reduce(t, /*maximum=*/true);
  return t.item<int64_t>();
}

void Distributed::all_reduce(torch::Tensor& tensor, bool maximum) const {
  c10d::AllreduceOptions options;
  options.reduceOp = maximum ? c10d::ReduceOp::MAX : c10d::ReduceOp::SUM;
  std::vector<torch::Tensor> one{tensor};
  group_->group->allreduce(one, options)->wait();
}

void Distributed::broadcast(torch::Tensor& tensor) const {
  std::vector<torch::Tensor> one{tensor};
  group_->group->broadcast(one)->wait();
}
#else
// Without Gloo a process is always alone (from_environment refuses
// WORLD_SIZE > 1), and every collective is the identity.
struct Distributed::Group {};

Distributed::Distributed(const c10::intrusive_ptr<c10d::Store>& store, int rank, int world_size,
                         std::chrono::milliseconds timeout) {
  throw std::invalid_argument("this build has no c10d Gloo process group");
}

void Distributed::all_reduce(torch::Tensor& tensor, bool maximum) const {}

void Distributed::broadcast(torch::Tensor& tensor) const {}
#endif

}  // namespace dnn_gating::train
