#include "dnn_gating/job/config.h"

namespace dnn_gating::train {

std::string default_data_dir(const std::string& dataset) {
  return dataset == "fashion-mnist" ? "/usr/share/datasets/fashion-mnist"
                                    : "data/cifar-10-batches-bin";
}

}  // namespace dnn_gating::train
