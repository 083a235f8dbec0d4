#include "photo_inputs.h"

#include <cstdlib>
#include <filesystem>
#include <random>
#include <stdexcept>
#include <vector>

#include "dnn_gating/data/image_file.h"

namespace dnn_gating::bench {
namespace {

constexpr const char* kDefaultPhotoDir = "/usr/lib/python3/dist-packages/skimage/data";
// Photographs of python3-skimage, colour and grey, indoor and outdoor.
constexpr const char* kPhotos[] = {"astronaut.png",
                                   "chelsea.png",
                                   "coffee.png",
                                   "rocket.jpg",
                                   "motorcycle_left.png",
                                   "ihc.png",
                                   "camera.png",
                                   "coins.png",
                                   "grass.png",
                                   "gravel.png",
                                   "brick.png",
                                   "moon.png",
                                   "cell.png",
                                   "hubble_deep_field.jpg"};
constexpr int64_t kSide = 32;

std::string env_or(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? v : fallback;
}

// An image reduced `factor` times by averaging factor x factor blocks, as
// float [3, h / factor, w / factor] in [0, 1].
torch::Tensor reduced(const data::RgbImage& image, int64_t factor) {
  const torch::Tensor hwc = torch::from_blob(const_cast<uint8_t*>(image.rgb.data()),
                                             {image.height, image.width, 3}, torch::kUInt8)
                                .to(torch::kFloat)
                                .div(255.0)
                                .permute({2, 0, 1})
                                .unsqueeze(0);
  return torch::avg_pool2d(hwc, factor).squeeze(0);
}

// Every photograph at every reduction that still holds a crop.
const std::vector<torch::Tensor>& photographs() {
  static const std::vector<torch::Tensor> all = [] {
    const std::string dir = env_or("DNN_GATING_PHOTO_DIR", kDefaultPhotoDir);
    std::vector<torch::Tensor> out;
    for (const char* name : kPhotos) {
      const std::filesystem::path path = std::filesystem::path(dir) / name;
      if (!std::filesystem::exists(path)) continue;
      const data::RgbImage image = data::read_image(path.string());
      for (const int64_t factor : {2, 4, 8}) {
        if (image.height / factor >= kSide && image.width / factor >= kSide)
          out.push_back(reduced(image, factor));
      }
    }
    if (out.size() < 8) {
      throw std::runtime_error("benchmark inputs: too few photographs in " + dir +
                               " (DNN_GATING_PHOTO_DIR): install python3-skimage "
                               "(scripts/bench.sh does) or set DNN_GATING_BENCH_INPUT=noise");
    }
    return out;
  }();
  return all;
}

}  // namespace

std::string input_kind() {
  const std::string kind = env_or("DNN_GATING_BENCH_INPUT", "photos");
  if (kind != "photos" && kind != "noise") {
    throw std::runtime_error("DNN_GATING_BENCH_INPUT is '" + kind + "'; expected photos or noise");
  }
  return kind;
}

torch::Tensor input_images(int64_t n, uint64_t seed) {
  if (input_kind() == "noise") {
    torch::manual_seed(seed);
    return torch::randn({n, 3, kSide, kSide});
  }
  const std::vector<torch::Tensor>& photos = photographs();
  std::mt19937_64 random(seed);
  torch::Tensor batch = torch::empty({n, 3, kSide, kSide});
  for (int64_t i = 0; i < n; ++i) {
    const torch::Tensor& p = photos[random() % photos.size()];
    const int64_t top = static_cast<int64_t>(random() % (p.size(1) - kSide + 1));
    const int64_t left = static_cast<int64_t>(random() % (p.size(2) - kSide + 1));
    batch[i] = p.slice(1, top, top + kSide).slice(2, left, left + kSide);
  }
  const torch::Tensor mean = torch::tensor({0.485f, 0.456f, 0.406f}).view({1, 3, 1, 1});
  const torch::Tensor std = torch::tensor({0.229f, 0.224f, 0.225f}).view({1, 3, 1, 1});
  return (batch - mean) / std;
}

}  // namespace dnn_gating::bench
