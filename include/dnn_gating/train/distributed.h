#pragma once
/// Data-parallel training over torch.distributed's c10d, as
/// DistributedDataParallel does it: identical initial weights (broadcast from
/// rank 0), each rank a disjoint shard of every batch, gradients averaged by
/// all-reduce before the optimiser step, BatchNorm running statistics
/// rank 0's (or, with layers::SyncBatchNormGuard, batch statistics over
/// every process). Gloo
/// on CPUs over a TCPStore, joined the way torchrun and cluster launchers
/// describe a run: RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT.
/// A build configured without Gloo's headers runs alone only.

#include <torch/torch.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

namespace c10d {
class Store;
}  // namespace c10d

namespace dnn_gating::train {

/// A process's place in a data-parallel run; alone (rank 0 of 1) by default.
class Distributed {
 public:
  /// One process alone: every operation is the identity.
  Distributed() = default;
  /// Joins a Gloo process group over `store` as `rank` of `world_size`.
  Distributed(const c10::intrusive_ptr<c10d::Store>& store, int rank, int world_size,
              std::chrono::milliseconds timeout);

  /// Joins the run the environment describes (WORLD_SIZE > 1: a TCPStore at
  /// MASTER_ADDR:MASTER_PORT, served by rank 0); alone when WORLD_SIZE is
  /// unset or 1. Throws naming the variable that is missing or malformed, or
  /// the address that could not be reached within `timeout`.
  static Distributed from_environment(std::chrono::milliseconds timeout);

  int rank() const { return rank_; }
  int world_size() const { return world_size_; }
  /// Rank 0: the process that writes files and prints progress.
  bool is_main() const { return rank_ == 0; }

  /// Copies rank 0's parameters and buffers to every rank.
  void broadcast_state(torch::nn::Module& model) const;
  /// Copies rank 0's BatchNorm buffers (running statistics, batch counts)
  /// to every rank, as DistributedDataParallel does before each forward
  /// pass; the trainer also does at the end of every epoch, before it
  /// evaluates and saves.
  void broadcast_buffers(torch::nn::Module& model) const;
  /// Replaces every gradient by the sum over ranks of gradient x `weight`;
  /// with weight = the rank's share of the batch, that is the gradient of
  /// the whole batch. Gradients travel in buckets of at most 25 MiB.
  void average_gradients(torch::nn::Module& model, double weight) const;
  /// Sums a tensor over ranks, in place.
  void sum(torch::Tensor& tensor) const;
  /// The largest of `value` over ranks (e.g. a stop request).
  int64_t max(int64_t value) const;

 private:
  void all_reduce(torch::Tensor& tensor, bool maximum) const;
  void broadcast(torch::Tensor& tensor) const;  // rank 0's values, in place

  struct Group;  // the c10d process group (kept out of this header)
  std::shared_ptr<Group> group_;
  int rank_ = 0;
  int world_size_ = 1;
};

}  // namespace dnn_gating::train
