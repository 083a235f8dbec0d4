// cg-cifar10: channel-gated ResNets (original and post-activated), with the
// flags of the original cg-cifar10.py.
#include "dnn_gating/cli/trainer_cli.h"

int main(int argc, char** argv) {
  return dnn_gating::cli::run_program(dnn_gating::cli::Trainer::kChannelGating, argc, argv);
}
