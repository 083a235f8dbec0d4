#include "dnn_gating/train/distributed_job.h"

#include <spdlog/spdlog.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "dnn_gating/report/log.h"
#include "dnn_gating/setting_error.h"

namespace dnn_gating::train {

JobConfig for_this_rank(const Distributed& dist, JobConfig config) {
  if (dist.world_size() == 1) return config;
  if (!config.device.is_cpu()) {
    throw std::invalid_argument(
        "data-parallel runs train on CPUs over Gloo; a CUDA device with WORLD_SIZE > 1 is not "
        "supported");
  }
  if (config.batch_size % dist.world_size() != 0) {
    throw SettingError("batch_size", "{batch_size} " + std::to_string(config.batch_size) +
                                         " is the global batch and must divide evenly among the " +
                                         std::to_string(dist.world_size()) + " processes");
  }
  if (dist.is_main()) {
    spdlog::info("Data parallel over {} processes: each takes {} images of every batch of {}",
                 dist.world_size(), config.batch_size / dist.world_size(), config.batch_size);
    return config;
  }
  config.save = false;
  config.save_every = 0;
  config.metrics_path.clear();
  config.metrics_csv_path.clear();
  config.plot_path.clear();
  config.export_pytorch_path.clear();
  config.progress = ProgressStyle::kQuiet;
  spdlog::default_logger()->set_level(spdlog::level::warn);
  report_log().set_level(spdlog::level::warn);
  return config;
}

void sum_over_ranks(const Distributed& dist, Evaluation& e) {
  if (dist.world_size() == 1) return;
  std::vector<int64_t> counts{e.images};
  for (const auto& row : e.confusion) counts.insert(counts.end(), row.begin(), row.end());
  for (const auto& layer : e.layers) {
    counts.push_back(layer.counts.num_out);
    counts.push_back(layer.counts.num_on);
  }
  torch::Tensor total = torch::tensor(counts, torch::kLong);
  dist.sum(total);
  const auto* c = total.data_ptr<int64_t>();
  size_t i = 0;
  e.images = c[i++];
  e.correct = 0;
  for (size_t t = 0; t < e.confusion.size(); ++t) {
    e.class_total[t] = 0;
    for (auto& cell : e.confusion[t]) {
      cell = c[i++];
      e.class_total[t] += cell;
    }
    e.class_correct[t] = e.confusion[t][t];
    e.correct += e.class_correct[t];
  }
  for (auto& layer : e.layers) {
    layer.counts.num_out = c[i++];
    layer.counts.num_on = c[i++];
    layer.dense_macs_per_image = dist.max(layer.dense_macs_per_image);
  }
  e.dense_macs = dist.max(e.dense_macs);
}

void sum_over_ranks(const Distributed& dist, ResumePoint& position) {
  torch::Tensor sums =
      torch::tensor({position.loss_sum, static_cast<double>(position.correct)}, torch::kDouble);
  dist.sum(sums);
  position.loss_sum = sums[0].item<double>();
  position.correct = static_cast<int64_t>(sums[1].item<double>());
}

void check_last_batch(const Distributed& dist, int64_t images, int64_t batch_size) {
  const int64_t last = images % batch_size;
  if (last == 0 || last >= dist.world_size()) return;
  throw SettingError("batch_size", "{batch_size} " + std::to_string(batch_size) +
                                       " leaves a last batch of " + std::to_string(last) +
                                       " training images, fewer than the " +
                                       std::to_string(dist.world_size()) +
                                       " processes; choose another {batch_size} or {train_limit}");
}

void check_ranks_agree(const Distributed& dist, torch::nn::Module& model) {
  if (dist.world_size() == 1) return;
  int64_t checksum = 0;
  auto add = [&](const torch::Tensor& t) {
    const torch::Tensor bytes =
        t.detach().contiguous().reshape(-1).view(torch::kByte).to(torch::kLong);
    checksum += (bytes * torch::arange(1, bytes.numel() + 1, torch::kLong)).sum().item<int64_t>();
  };
  for (const auto& p : model.parameters()) add(p);
  for (const auto& b : model.buffers()) add(b);
  if (dist.max(checksum) != -dist.max(-checksum)) {
    throw std::runtime_error("the ranks' parameters or buffers differ after training (rank " +
                             std::to_string(dist.rank()) + ")");
  }
  spdlog::info("Parameters and buffers identical on all {} ranks (checksum {})", dist.world_size(),
               checksum);
}

}  // namespace dnn_gating::train
