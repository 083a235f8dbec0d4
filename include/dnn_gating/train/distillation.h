#pragma once
/// Knowledge distillation (Hinton et al., 2015), as the CG paper keeps
/// ResNet-18's accuracy: the student learns from a teacher's soft targets as
/// well as from the labels.

#include <torch/torch.h>

#include <string>

#include "dnn_gating/job/config.h"
#include "dnn_gating/models/resnet.h"
#include "dnn_gating/train/step.h"

namespace dnn_gating::train {

/// alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T)) +
/// (1 - alpha) * cross_entropy(student, labels), the KL summed over classes
/// and averaged over the batch (PyTorch's reduction "batchmean").
torch::Tensor distillation_loss(const torch::Tensor& student_logits,
                                const torch::Tensor& teacher_logits, const torch::Tensor& labels,
                                double temperature, double alpha);

/// A job's teacher: its model in evaluation mode, without gradients.
struct Teacher {
  Classifier model;
  models::ResNetOptions options;
};

/// Reads the teacher `kd` names for a student with `student`'s input channels
/// and classes: a checkpoint of ours (its own network), or a plain PyTorch
/// state dict of a float network (`kd.teacher_arch`, default the student's
/// arch; torchvision's names for resnet18 and vgg16). Throws naming the file
/// when it is not a whole model of that network or has other classes.
Teacher load_teacher(const Distillation& kd, const models::ResNetOptions& student,
                     const torch::Device& device);

/// The task loss of a training step distilling from `teacher`.
TaskLoss distillation_task_loss(const Teacher& teacher, double temperature, double alpha);

}  // namespace dnn_gating::train
