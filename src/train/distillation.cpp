#include "dnn_gating/train/distillation.h"

#include <nlohmann/json.hpp>
#include <stdexcept>

#include "dnn_gating/io/checkpoint.h"
#include "dnn_gating/io/float_weights.h"
#include "dnn_gating/io/model_meta.h"
#include "dnn_gating/models/torchvision.h"
#include "dnn_gating/setting_error.h"

namespace dnn_gating::train {

torch::Tensor distillation_loss(const torch::Tensor& student_logits,
                                const torch::Tensor& teacher_logits, const torch::Tensor& labels,
                                double temperature, double alpha) {
  namespace F = torch::nn::functional;
  const torch::Tensor log_student = F::log_softmax(student_logits / temperature, 1);
  const torch::Tensor log_teacher = F::log_softmax(teacher_logits.detach() / temperature, 1);
  const torch::Tensor kl = (log_teacher.exp() * (log_teacher - log_student)).sum(1).mean();
  const torch::Tensor ce = F::cross_entropy(student_logits, labels);
  return alpha * temperature * temperature * kl + (1.0 - alpha) * ce;
}

Teacher load_teacher(const Distillation& kd, const models::ResNetOptions& student,
                     const torch::Device& device) {
  const Checkpoint checkpoint = read_checkpoint(kd.teacher);
  models::ResNetOptions options;
  const bool described = !checkpoint.meta.empty();
  if (described) {
    check_setting(kd.teacher_arch.empty(), "teacher_arch",
                  "{teacher_arch} names the network of a plain state dict; " + kd.teacher +
                      " describes its own");
    const auto meta = nlohmann::json::parse(checkpoint.meta, nullptr, /*allow_exceptions=*/false);
    if (meta.is_discarded() || !meta.contains("model")) {
      throw std::runtime_error(kd.teacher + ": the checkpoint's description names no model");
    }
    options = model_from_json(meta.at("model").dump());
    if (options.num_classes() != student.num_classes() ||
        options.in_channels() != student.in_channels()) {
      throw std::runtime_error(kd.teacher + ": the teacher sees " +
                               std::to_string(options.in_channels()) + " channels and tells " +
                               std::to_string(options.num_classes()) + " classes; the data has " +
                               std::to_string(student.in_channels()) + " and " +
                               std::to_string(student.num_classes()));
    }
  } else {
    options = models::ResNetOptions()
                  .arch(kd.teacher_arch.empty() ? student.arch()
                                                : models::arch_from_string(kd.teacher_arch))
                  .depth(student.depth())
                  .imagenet_stem(student.imagenet_stem())
                  .in_channels(student.in_channels())
                  .num_classes(student.num_classes());
  }
  models::Model model = models::make_model(options);
  if (described || options.arch() == models::Arch::kResNet) {
    load_state(*model.module, checkpoint, kd.teacher);
  } else {
    const FloatImport import = import_float_weights(*model.module, checkpoint.state, kd.teacher);
    std::vector<std::string> missing;
    for (const std::string& key : import.initial) {
      if (key.find("num_batches_tracked") == std::string::npos) missing.push_back(key);
    }
    if (!missing.empty()) {
      throw std::runtime_error(kd.teacher + ": not a whole float " +
                               models::network_title(options) +
                               " for this data: " + std::to_string(missing.size()) +
                               " tensors missing or of another shape, e.g. " + missing.front());
    }
  }
  model.module->to(device);
  model.module->eval();
  for (auto& p : model.module->parameters()) p.requires_grad_(false);
  return {{model.module, model.forward}, options};
}

TaskLoss distillation_task_loss(const Teacher& teacher, double temperature, double alpha) {
  return [teacher, temperature, alpha](const torch::Tensor& logits, const torch::Tensor& images,
                                       const torch::Tensor& labels) {
    torch::Tensor soft;
    {
      torch::NoGradGuard no_grad;  // load_teacher left it in evaluation mode
      soft = teacher.model.forward(images);
    }
    return distillation_loss(logits, soft, labels, temperature, alpha);
  };
}

}  // namespace dnn_gating::train
