#include "dnn_gating/train/step.h"

namespace dnn_gating::train {

StepResult train_step(const Classifier& model, torch::optim::Optimizer& optimizer,
                      const layers::GatingLoss& gating_loss, const torch::Tensor& images,
                      const torch::Tensor& labels, const GradientHook& before_step,
                      const TaskLoss& task_loss) {
  model.module->train();
  optimizer.zero_grad();
  torch::Tensor logits = model.forward(images);
  torch::Tensor ce = task_loss ? task_loss(logits, images, labels)
                               : torch::nn::functional::cross_entropy(logits, labels);
  torch::Tensor gating = gating_loss(*model.module);
  (ce + gating).backward();
  if (before_step) before_step(*model.module);
  optimizer.step();
  StepResult result;
  result.logits = logits.detach();
  // The three figures in one read: one wait for a device, not three.
  const torch::Tensor figures =
      torch::stack({ce.detach().to(torch::kDouble), gating.detach().to(ce.device(), torch::kDouble),
                    result.logits.argmax(1).eq(labels).sum().to(torch::kDouble)})
          .cpu();
  result.ce_loss = figures[0].item<double>();
  result.gating_loss = figures[1].item<double>();
  result.correct = static_cast<int64_t>(figures[2].item<double>());
  return result;
}

Evaluation evaluate(const Classifier& model, const data::Batches& loader,
                    const torch::Device& device, int64_t num_classes, int64_t part, int64_t parts,
                    const BatchObserver& observe) {
  torch::NoGradGuard no_grad;
  model.module->eval();
  layers::reset_counts(*model.module);
  Evaluation result;
  result.class_correct.assign(num_classes, 0);
  result.class_total.assign(num_classes, 0);
  // Images go to the model's device and precision (a model may run in double).
  const auto params = model.module->parameters();
  const auto input = torch::TensorOptions(device).dtype(
      params.empty() ? torch::kFloat : params.front().scalar_type());
  // Counted on the model's device and read once at the end; batches from a
  // pinned loader are copied asynchronously.
  torch::Tensor confusion =
      torch::zeros({num_classes * num_classes}, torch::TensorOptions(device).dtype(torch::kLong));
  for (int64_t b = part; b < loader.num_batches(); b += parts) {
    const data::Batch batch = loader.batch(b);
    const torch::Tensor labels = batch.labels.to(device, /*non_blocking=*/true);
    const torch::Tensor predicted =
        model.forward(batch.images.to(input, /*non_blocking=*/true)).argmax(1);
    confusion.index_add_(0, labels * num_classes + predicted, torch::ones_like(predicted));
    if (observe) observe(b * loader.options().batch_size(), labels, predicted);
    result.images += batch.labels.size(0);
  }
  auto c = confusion.cpu().view({num_classes, num_classes});
  result.confusion.assign(num_classes, std::vector<int64_t>(num_classes, 0));
  for (int64_t t = 0; t < num_classes; ++t) {
    for (int64_t p = 0; p < num_classes; ++p) {
      result.confusion[t][p] = c[t][p].item<int64_t>();
      result.class_total[t] += result.confusion[t][p];
    }
    result.class_correct[t] = result.confusion[t][t];
    result.correct += result.class_correct[t];
  }
  result.layers = layer_gate_stats(*model.module);
  result.dense_macs = layers::total_dense_macs(*model.module);
  return result;
}

}  // namespace dnn_gating::train
