#pragma once
/// `--timing`: how much time a gated model's skipping saves on the
/// evaluation users run, against the same weights computed densely.

#include <torch/torch.h>

#include <cstdint>

#include "dnn_gating/data/batches.h"
#include "dnn_gating/job/timing.h"
#include "dnn_gating/train/step.h"

namespace dnn_gating::train {

/// Passes timed each way by time_gating.
inline constexpr int kTimingRepeats = 3;

/// Evaluates every batch of `loader` as `evaluate` does (eval mode, no
/// gradients), one warm-up pass and then `repeats` timed passes each way,
/// the two ways taking turns: the model as it is (its gated layers' own
/// `skipping`), and every gated layer at Skipping::kNever (quantized and PG
/// layers keep their `integer` setting). Each way's time is its fastest
/// pass. The batches are read once beforehand where the split fits in
/// 2 GiB, so that the times are the model's alone. A model without gated
/// layers is timed only as it is. Decisions are not kept while timing; the
/// gated layers' settings are as before afterwards, their counts those of
/// the last pass. Throws std::runtime_error (naming --timing) if the two
/// ways classify a different number of images correctly.
GatingTiming time_gating(const Classifier& model, const data::Batches& loader,
                         const torch::Device& device, int64_t num_classes,
                         int repeats = kTimingRepeats);

}  // namespace dnn_gating::train
