#pragma once
/// Batches of an image folder, decoded and transformed on worker threads
/// ahead of the loop that asks for them (a bounded number of batches), so
/// that decoding overlaps the training step.

#include <torch/torch.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "dnn_gating/data/batches.h"
#include "dnn_gating/data/image_folder.h"

namespace dnn_gating::data {

/// What a file that fails to decode does to a run.
enum class BadImages {
  kRefuse,  ///< stops it: batch() throws, naming the file
  kSkip,    ///< is named once (`on_skipped`) and replaced by the next image that decodes
};

/// Options of a FolderLoader beyond LoaderOptions.
struct FolderOptions {
  /// Side of the square images served (torchvision's crop size).
  TORCH_ARG(int64_t, image_size) = 224;
  /// Worker threads decoding and transforming (0: one per core).
  TORCH_ARG(int64_t, threads) = 0;
  /// Batches prepared ahead of the one asked for (0: two). The workers share
  /// every batch's images, so two keep them busy; each costs batch x 3 x
  /// image_size^2 floats.
  TORCH_ARG(int64_t, prefetch) = 0;
  TORCH_ARG(BadImages, bad_images) = BadImages::kRefuse;
  /// Told the message of each skipped file, once per file.
  TORCH_ARG(std::function<void(const std::string&)>, on_skipped) = nullptr;
};

/// Serves an ImageFolder's batches: with `augment`, torchvision's
/// RandomResizedCrop(image_size) + RandomHorizontalFlip; otherwise
/// Resize(image_size * 256 / 224) + CenterCrop(image_size); normalised with
/// ImageNet's mean and std. Batches are the same whatever the number of
/// threads and in whatever order they are asked for; start_epoch() must not
/// overlap a batch() call.
class FolderLoader : public Batches {
 public:
  FolderLoader(ImageFolder folder, LoaderOptions options, FolderOptions folder_options = {});
  ~FolderLoader() override;
  FolderLoader(const FolderLoader&) = delete;
  FolderLoader& operator=(const FolderLoader&) = delete;

  int64_t num_batches() const override;
  int64_t size() const override { return folder_.size(); }
  const LoaderOptions& options() const override { return options_; }
  void start_epoch(int64_t epoch) override;
  Batch batch(int64_t index, int64_t part = 0, int64_t parts = 1) const override;

 private:
  struct Pending;
  struct Key {
    int64_t generation, index, part, parts;
    bool operator<(const Key& o) const;
  };
  // Schedules batch `key` (if not yet) and returns it.
  std::shared_ptr<Pending> schedule(const Key& key) const;
  void work();
  // Decodes image `image` (or, skipping bad files, the next that decodes)
  // with the crop and flip of `draw` into `out`; its label.
  int64_t load_image(int64_t image, uint64_t draw, float* out) const;

  ImageFolder folder_;
  LoaderOptions options_;
  FolderOptions folder_options_;
  int64_t prefetch_ = 0;
  std::vector<int64_t> order_;   // epoch position -> image index
  std::vector<uint64_t> draws_;  // epoch position -> seed of its crop and flip
  int64_t generation_ = 0;

  mutable std::mutex mutex_;
  mutable std::condition_variable work_ready_, batch_ready_;
  mutable std::map<Key, std::shared_ptr<Pending>> pending_;
  mutable std::deque<std::pair<std::shared_ptr<Pending>, int64_t>> tasks_;  // batch, slot
  mutable int64_t last_index_ = -1, stride_ = 1;
  mutable std::mutex bad_mutex_;
  mutable std::set<int64_t> bad_;  // image indices that failed to decode
  bool stop_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace dnn_gating::data
