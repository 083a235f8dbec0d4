#include "dnn_gating/data/image_folder.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <stdexcept>
#include <system_error>

namespace dnn_gating::data {
namespace {

namespace fs = std::filesystem;

bool is_image_name(const fs::path& path) {
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png";
}

std::vector<fs::path> sorted_entries(const fs::path& dir, bool directories) {
  std::vector<fs::path> out;
  std::error_code error;
  for (fs::directory_iterator it(dir, error), end; !error && it != end; it.increment(error)) {
    std::error_code kind_error;
    const bool is_dir = it->is_directory(kind_error);
    if (directories ? is_dir : (!is_dir && is_image_name(it->path()))) out.push_back(it->path());
  }
  if (error)
    throw std::runtime_error(dir.string() + ": cannot list the directory (" + error.message() +
                             ")");
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

ImageFolder ImageFolder::spread(int64_t n) const {
  if (n >= size() || n <= 0) return *this;
  ImageFolder out{root, class_names, {}, {}};
  for (int64_t i = 0; i < n; ++i) {
    const auto k = static_cast<size_t>(i * size() / n);
    out.files.push_back(files[k]);
    out.labels.push_back(labels[k]);
  }
  return out;
}

ImageFolder scan_image_folder(const std::string& root) {
  std::error_code error;
  if (!fs::is_directory(root, error)) {
    throw std::runtime_error(root + ": no such directory (expected an image folder: " + root +
                             "/<class>/<image>.jpg|png)");
  }
  ImageFolder folder;
  folder.root = root;
  for (const fs::path& dir : sorted_entries(root, /*directories=*/true)) {
    const std::vector<fs::path> images = sorted_entries(dir, /*directories=*/false);
    if (images.empty()) {
      throw std::runtime_error(dir.string() +
                               ": a class directory without a .jpg, .jpeg or .png file");
    }
    const auto label = static_cast<int64_t>(folder.class_names.size());
    folder.class_names.push_back(dir.filename().string());
    for (const fs::path& image : images) {
      folder.files.push_back(image.string());
      folder.labels.push_back(label);
    }
  }
  if (folder.class_names.empty()) {
    throw std::runtime_error(root + ": no class directories (expected " + root +
                             "/<class>/<image>.jpg|png)");
  }
  return folder;
}

}  // namespace dnn_gating::data
