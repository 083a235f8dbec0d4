#!/usr/bin/env bash
# The main job: set up, then train a precision-gated ResNet-20 for a short
# run, save it, evaluate the saved checkpoint and say where everything is.
# CIFAR-10 when it is present or can be fetched, otherwise Fashion-MNIST from
# Debian's package (works offline). On a fresh two-core machine the whole
# takes about 20 minutes: installing the packages and building (setup.sh)
# most of it, training and evaluation about 3 (below).
#   QUICKSTART_EPOCHS       training epochs (default 3)
#   QUICKSTART_TRAIN_LIMIT  training images per epoch (default 20000; 0: all)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

out=runs/quickstart
# 3 epochs on 20000 images: about 3 minutes of training and evaluation on
# two AVX-512 cores (85.5 % on Fashion-MNIST); override to taste.
epochs=${QUICKSTART_EPOCHS:-3}
train_limit=${QUICKSTART_TRAIN_LIMIT:-20000}
mkdir -p "$out"
if scripts/get_cifar10.sh data >"$out/get_cifar10.log" 2>&1; then
  dataset=cifar10
  data_dir=data/cifar-10-batches-bin
  echo "quickstart: using CIFAR-10 ($data_dir)"
else
  dataset=fashion-mnist
  data_dir=/usr/share/datasets/fashion-mnist
  echo "quickstart: CIFAR-10 is not here and could not be fetched ($(tail -n1 "$out/get_cifar10.log"))"
  echo "quickstart: using Fashion-MNIST from $data_dir instead"
fi

flags=(-pg -w 8 -a 3 -pb 2 -gtar 1 -spbp -pact)
build/pg-cifar10 "${flags[@]}" --dataset "$dataset" --data-dir "$data_dir" --epochs "$epochs" --train-limit "$train_limit" \
  -s --save-dir "$out" --metrics "$out/metrics.jsonl" --plot "$out/curves.svg" | tee "$out/train.log"
echo
echo "quickstart: evaluating the saved checkpoint $out/model_resnet-20.pt"
build/pg-cifar10 -t -p "$out/model_resnet-20.pt" --dataset "$dataset" --data-dir "$data_dir" | tee "$out/test.log"
echo
echo "quickstart: checkpoint $out/model_resnet-20.pt, logs $out/train.log and $out/test.log"
