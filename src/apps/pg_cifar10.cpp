// pg-cifar10: quantized and precision-gated ResNets, with the flags of the
// original pg-cifar10.py.
#include "dnn_gating/cli/trainer_cli.h"

int main(int argc, char** argv) {
  return dnn_gating::cli::run_program(dnn_gating::cli::Trainer::kPrecisionGating, argc, argv);
}
