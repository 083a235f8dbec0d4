// ImageNet-style training from the command line: an image folder written
// from Fashion-MNIST (PNG and JPEG files), a float ResNet-18 teacher trained
// on it, a channel-gated ResNet-18 distilled from the teacher, and the
// student's checkpoint evaluated on its own.
#include <fstream>
#include <regex>

#include "dnn_gating/data/image_set.h"
#include "dnn_gating/report/png.h"
#include "jpeg_writer.h"
#include "test_support.h"

namespace dgt = dnn_gating::testing;
namespace fs = std::filesystem;

namespace {

using dnn_gating::testing::quote;

double accuracy(const std::string& output) {
  std::smatch m;
  if (!std::regex_search(
          output, m,
          std::regex(R"(Accuracy of the network on the ([0-9]+) test images: ([0-9.]+) %)")))
    return -1;
  return std::stod(m[2]);
}

// `per_class` images of each class of `set` (from `first`) as files under
// dir/<class>/: even ones PNG, odd ones greyscale JPEG.
void write_split(const dnn_gating::data::ImageSet& set, const fs::path& dir, int per_class,
                 int64_t first) {
  std::vector<int> written(set.class_names.size(), 0);
  for (int64_t i = first; i < set.size(); ++i) {
    const int64_t label = set.labels[i].item<int64_t>();
    if (written[static_cast<size_t>(label)] == per_class) continue;
    std::string name = set.class_names[static_cast<size_t>(label)];
    std::replace(name.begin(), name.end(), '/', '-');
    const fs::path folder = dir / (std::to_string(label) + "-" + name);
    fs::create_directories(folder);
    const torch::Tensor image = set.images[i][0].contiguous();  // 28 x 28 bytes
    const uint8_t* p = image.data_ptr<uint8_t>();
    const int n = written[static_cast<size_t>(label)]++;
    const fs::path file = folder / (std::to_string(i) + (n % 2 == 0 ? ".png" : ".jpg"));
    std::ofstream out(file, std::ios::binary);
    if (n % 2 == 0) {
      dnn_gating::train::Picture picture(28, 28);
      for (int y = 0; y < 28; ++y) {
        for (int x = 0; x < 28; ++x)
          picture.set(x, y, {p[y * 28 + x], p[y * 28 + x], p[y * 28 + x]});
      }
      out << dnn_gating::train::encode_png(picture);
    } else {
      out << dgt::encode_jpeg(std::vector<uint8_t>(p, p + 28 * 28), 28, 28, 1, 95);
    }
  }
}

}  // namespace

TEST(ImageFolderRun, DistilsAGatedResNet18FromAFloatTeacher) {
  const fs::path fashion = "/usr/share/datasets/fashion-mnist";
  if (!fs::exists(fashion / "t10k-images-idx3-ubyte.gz") &&
      !fs::exists(fashion / "t10k-images-idx3-ubyte")) {
    if (std::getenv("CI") != nullptr) FAIL() << "Fashion-MNIST missing (CI is set)";
    GTEST_SKIP() << "Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)";
  }
  dgt::TempDir tmp;
  const auto set = dnn_gating::data::read_dataset("fashion-mnist", fashion.string(),
                                                  dnn_gating::data::Split::kTest);
  write_split(set, tmp.path() / "images" / "train", 12, 0);
  write_split(set, tmp.path() / "images" / "val", 4, 5000);
  const std::string data = " --dataset imagefolder --data-dir " + quote(tmp.path() / "images") +
                           " --image-size 48 --batch-size 40 --threads 2 --loader-threads 2" +
                           " --arch resnet18 --imagenet-stem --epochs 1 -s";
  const std::string cg = DG_CG_BINARY;
  const auto teacher = dgt::run_command(cg + data + " --save-dir " + quote(tmp.path() / "t"));
  ASSERT_EQ(teacher.exit_code, 0) << teacher.output;
  EXPECT_NE(teacher.output.find("image folder"), std::string::npos) << teacher.output;
  const fs::path teacher_file = tmp.path() / "t" / "model_resnet-18.pt";
  const auto student = dgt::run_command(cg + " -gi 0.0 -gt 1.0 -pt 4 -cg --sparse_bp --use_group" +
                                        data + " --save-dir " + quote(tmp.path() / "s") +
                                        " --teacher " + quote(teacher_file));
  ASSERT_EQ(student.exit_code, 0) << student.output;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(
      student.output, m,
      std::regex(R"(Distilling from .* \(float ResNet-18, test accuracy ([0-9.]+) %\))")))
      << student.output;
  EXPECT_NEAR(std::stod(m[1]), accuracy(teacher.output), 0.05);  // the report rounds to 0.1
  EXPECT_NE(student.output.find("Accuracy of the network on the 40 test images"), std::string::npos)
      << student.output;
  // The saved student, evaluated alone (its image size comes with it), reports the same.
  const auto evaluation = dgt::run_command(
      cg + " -t -p " + quote(tmp.path() / "s" / "model_resnet-18.pt") +
      " --dataset imagefolder --threads 2 --data-dir " + quote(tmp.path() / "images"));
  ASSERT_EQ(evaluation.exit_code, 0) << evaluation.output;
  EXPECT_EQ(accuracy(evaluation.output), accuracy(student.output)) << evaluation.output;
  // A broken file stops the run by name, or with --bad-images skip is skipped by name.
  std::ofstream(tmp.path() / "images" / "train" / "0-T-shirt-top" / "broken.jpg") << "\xFF\xD8\xFF";
  const auto refused = dgt::run_command(cg + data + " --save-dir " + quote(tmp.path() / "r"));
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_EQ(dgt::matching_lines(refused.output, "broken\\.jpg: not a readable JPEG file").size(),
            1u)
      << refused.output;
  const auto skipped =
      dgt::run_command(cg + data + " --bad-images skip --save-dir " + quote(tmp.path() / "k"));
  EXPECT_EQ(skipped.exit_code, 0) << skipped.output;
  EXPECT_EQ(dgt::matching_lines(skipped.output, "broken\\.jpg: .*; skipped").size(), 1u)
      << skipped.output;
}
