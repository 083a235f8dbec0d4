#include "dnn_gating/data/image_set.h"

#include <stdexcept>

#include "dnn_gating/data/cifar10.h"
#include "dnn_gating/data/fashion_mnist.h"
#include "dnn_gating/setting_error.h"

namespace dnn_gating::data {

int64_t ImageSet::size() const { return images.defined() ? images.size(0) : 0; }

int64_t ImageSet::channels() const { return images.defined() ? images.size(1) : 0; }

ImageSet ImageSet::first(int64_t n) const {
  TORCH_CHECK(n >= 0, "ImageSet::first: n must be non-negative, got ", n);
  if (n >= size()) return *this;
  ImageSet out = *this;
  // A leading slice of a contiguous tensor is itself contiguous.
  out.images = images.slice(/*dim=*/0, /*start=*/0, /*end=*/n);
  out.labels = labels.slice(/*dim=*/0, /*start=*/0, /*end=*/n);
  return out;
}

ImageSet read_dataset(const std::string& dataset, const std::string& dir, Split split) {
  if (dataset == "cifar10") return read_cifar10(dir, split);
  if (dataset == "fashion-mnist") return read_fashion_mnist(dir, split);
  throw SettingError("dataset",
                     "unknown data set '" + dataset + "' (known: cifar10, fashion-mnist)");
}

}  // namespace dnn_gating::data
