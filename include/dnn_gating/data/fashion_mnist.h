#pragma once
/// Fashion-MNIST (https://github.com/zalandoresearch/fashion-mnist) in the IDX
/// format, zero-padded from 28x28 to 32x32 so CIFAR models take it unchanged.

#include <string>

#include "dnn_gating/data/image_set.h"

namespace dnn_gating::data {

/// Reads train-{images-idx3,labels-idx1}-ubyte (kTrain) or
/// t10k-{images-idx3,labels-idx1}-ubyte (kTest) from `dir`, each plain or
/// gzipped with a `.gz` suffix (plain preferred when both exist). Images are
/// zero-padded by 2 pixels on each side into uint8 [N, 1, 32, 32].
/// Throws std::runtime_error naming the file on a missing file, a wrong magic
/// number, a header or size that does not match, image and label counts that
/// disagree, or a label outside 0-9.
ImageSet read_fashion_mnist(const std::string& dir, Split split);

}  // namespace dnn_gating::data
