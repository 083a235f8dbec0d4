#pragma once
/// torchvision's ImageFolder layout: `root/<class>/<file>`, classes sorted
/// by name, JPEG and PNG files (.jpg, .jpeg, .png in any case) sorted by
/// name within each; other files are left alone.

#include <cstdint>
#include <string>
#include <vector>

namespace dnn_gating::data {

/// The labelled files of one split of an image folder.
struct ImageFolder {
  std::string root;
  std::vector<std::string> class_names;
  std::vector<std::string> files;  ///< paths, class by class
  std::vector<int64_t> labels;     ///< index into class_names, per file

  int64_t size() const { return static_cast<int64_t>(files.size()); }
  /// n files spread evenly over the whole list (so over every class), in
  /// order; n >= size(): all. Used by --train-limit/--test-limit.
  ImageFolder spread(int64_t n) const;
};

/// Lists `root`. Throws std::runtime_error naming the directory when it is
/// missing, has no class directory, or a class without an image file.
ImageFolder scan_image_folder(const std::string& root);

/// ImageNet's per-channel mean and standard deviation (torchvision's).
inline const std::vector<float> kImageNetMean{0.485f, 0.456f, 0.406f};
inline const std::vector<float> kImageNetStd{0.229f, 0.224f, 0.225f};

}  // namespace dnn_gating::data
