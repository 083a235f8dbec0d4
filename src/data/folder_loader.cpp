#include "dnn_gating/data/folder_loader.h"

#include <algorithm>
#include <numeric>
#include <random>
#include <stdexcept>
#include <tuple>

#include "data/image_transforms.h"
#include "dnn_gating/data/image_file.h"
#include "dnn_gating/setting_error.h"

namespace dnn_gating::data {
namespace {

uint64_t splitmix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

}  // namespace

// One batch being prepared: its images, and per slot the image and the
// seed of its crop and flip (copied, so that workers never read the epoch's
// order while a new epoch draws it).
struct FolderLoader::Pending {
  Key key;
  torch::Tensor images, labels;
  std::vector<int64_t> image;
  std::vector<uint64_t> draw;
  int64_t remaining = 0;
  int64_t waiters = 0;  // callers waiting for it: never dropped while > 0
  std::string error;
};

bool FolderLoader::Key::operator<(const Key& o) const {
  return std::tie(generation, index, part, parts) <
         std::tie(o.generation, o.index, o.part, o.parts);
}

FolderLoader::FolderLoader(ImageFolder folder, LoaderOptions options, FolderOptions folder_options)
    : folder_(std::move(folder)), options_(options), folder_options_(std::move(folder_options)) {
  check_setting(options_.batch_size() >= 1, "batch_size",
                "{batch_size} must be at least 1, got " + std::to_string(options_.batch_size()));
  check_setting(
      folder_options_.image_size() >= 8 && folder_options_.image_size() <= 4096, "image_size",
      "{image_size} must be from 8 to 4096, got " + std::to_string(folder_options_.image_size()));
  if (folder_.size() == 0) throw std::runtime_error(folder_.root + ": no images");
  const int64_t threads =
      folder_options_.threads() > 0
          ? folder_options_.threads()
          : std::max<int64_t>(1, static_cast<int64_t>(std::thread::hardware_concurrency()));
  prefetch_ = folder_options_.prefetch() > 0 ? folder_options_.prefetch() : 2;
  start_epoch(0);
  for (int64_t i = 0; i < threads; ++i) workers_.emplace_back([this] { work(); });
}

FolderLoader::~FolderLoader() {
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  work_ready_.notify_all();
  for (auto& worker : workers_) worker.join();
}

int64_t FolderLoader::num_batches() const {
  return (size() + options_.batch_size() - 1) / options_.batch_size();
}

void FolderLoader::start_epoch(int64_t epoch) {
  const std::lock_guard<std::mutex> lock(mutex_);
  ++generation_;
  pending_.clear();
  tasks_.clear();
  last_index_ = -1;
  stride_ = 1;
  order_.resize(static_cast<size_t>(size()));
  std::iota(order_.begin(), order_.end(), 0);
  const uint64_t base = splitmix(options_.seed() ^ splitmix(static_cast<uint64_t>(epoch)));
  if (options_.shuffle()) {
    std::mt19937_64 rng(base);
    std::shuffle(order_.begin(), order_.end(), rng);
  }
  draws_.resize(order_.size());
  for (size_t i = 0; i < draws_.size(); ++i) draws_[i] = splitmix(base + 1 + i);
}

std::shared_ptr<FolderLoader::Pending> FolderLoader::schedule(const Key& key) const {
  const auto found = pending_.find(key);
  if (found != pending_.end()) return found->second;
  const int64_t first = key.index * options_.batch_size();
  const int64_t count = std::min(options_.batch_size(), size() - first);
  const auto [offset, n] = shard_of(count, key.part, key.parts);
  auto p = std::make_shared<Pending>();
  p->key = key;
  const int64_t side = folder_options_.image_size();
  p->images = torch::empty(
      {n, 3, side, side},
      torch::TensorOptions().dtype(torch::kFloat).pinned_memory(options_.pin_memory()));
  p->labels = torch::empty({n}, torch::kLong);
  p->remaining = n;
  for (int64_t slot = 0; slot < n; ++slot) {
    const auto position = static_cast<size_t>(first + offset + slot);
    p->image.push_back(order_[position]);
    p->draw.push_back(draws_[position]);
    tasks_.emplace_back(p, slot);
  }
  pending_[key] = p;
  work_ready_.notify_all();
  return p;
}

Batch FolderLoader::batch(int64_t index, int64_t part, int64_t parts) const {
  TORCH_CHECK(index >= 0 && index < num_batches(), "batch index ", index, " out of range");
  std::unique_lock<std::mutex> lock(mutex_);
  const Key key{generation_, index, part, parts};
  const std::shared_ptr<Pending> p = schedule(key);
  // Batches behind this one will not be asked for; those ahead, along the
  // stride the caller walks, are prepared now.
  for (auto it = pending_.begin(); it != pending_.end();) {
    const Key& k = it->first;
    const bool behind =
        k.part == part && k.parts == parts && k.index < index && it->second->waiters == 0;
    it = behind ? pending_.erase(it) : std::next(it);
  }
  if (last_index_ >= 0 && index > last_index_) stride_ = index - last_index_;
  last_index_ = index;
  for (int64_t k = 1; k <= prefetch_; ++k) {
    const int64_t next = index + k * stride_;
    if (next >= num_batches()) break;
    schedule({generation_, next, part, parts});
  }
  ++p->waiters;
  batch_ready_.wait(lock, [&] { return p->remaining == 0; });
  --p->waiters;
  if (p->waiters == 0) pending_.erase(key);
  if (!p->error.empty()) throw std::runtime_error(p->error);
  return {p->images, p->labels};
}

void FolderLoader::work() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    work_ready_.wait(lock, [&] { return stop_ || !tasks_.empty(); });
    if (stop_) return;
    auto [p, slot] = tasks_.front();
    tasks_.pop_front();
    const auto found = pending_.find(p->key);
    if (found == pending_.end() || found->second != p) continue;  // dropped
    lock.unlock();
    std::string error;
    int64_t label = 0;
    try {
      label = load_image(p->image[static_cast<size_t>(slot)], p->draw[static_cast<size_t>(slot)],
                         p->images[slot].data_ptr<float>());
    } catch (const std::exception& e) {
      error = e.what();
    }
    lock.lock();
    p->labels.data_ptr<int64_t>()[slot] = label;
    if (!error.empty() && p->error.empty()) p->error = error;
    if (--p->remaining == 0) batch_ready_.notify_all();
  }
}

int64_t FolderLoader::load_image(int64_t image, uint64_t draw, float* out) const {
  const int64_t side = folder_options_.image_size();
  for (int64_t tries = 0; tries < size(); ++tries, image = (image + 1) % size()) {
    {
      const std::lock_guard<std::mutex> lock(bad_mutex_);
      if (bad_.count(image) != 0) continue;
    }
    const std::string& file = folder_.files[static_cast<size_t>(image)];
    RgbImage decoded;
    try {
      decoded = read_image(file);
    } catch (const std::runtime_error& e) {
      if (folder_options_.bad_images() == BadImages::kRefuse) {
        throw;
      }
      bool first_time = false;
      {
        const std::lock_guard<std::mutex> lock(bad_mutex_);
        first_time = bad_.insert(image).second;
      }
      if (first_time && folder_options_.on_skipped()) {
        folder_options_.on_skipped()(std::string(e.what()) + "; skipped");
      }
      continue;
    }
    if (options_.augment()) {
      std::mt19937_64 rng(draw);
      const CropBox box = random_resized_crop(decoded.height, decoded.width, rng);
      const bool flip = std::uniform_int_distribution<int>(0, 1)(rng) == 1;
      resized_crop_into(decoded, box, side, flip, kImageNetMean, kImageNetStd, out);
    } else {
      resize_center_crop_into(decoded, side, kImageNetMean, kImageNetStd, out);
    }
    return folder_.labels[static_cast<size_t>(image)];
  }
  throw std::runtime_error(folder_.root + ": no image decodes");
}

}  // namespace dnn_gating::data
