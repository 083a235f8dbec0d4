#pragma once
// The readers of files from strangers, each as one function of a byte
// string: a libFuzzer target (tests/fuzz/fuzz_main.cpp) and the corpus
// replay of the test suite both call them. A reader may refuse its input
// with an exception (a clean refusal); anything else (a crash, a sanitizer
// report, a hang, an allocation sized by the file's claims) is a defect.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace dnn_gating::fuzz {

using Target = void (*)(const uint8_t* data, size_t size);

struct NamedTarget {
  const char* name;  ///< also the corpus directory, tests/fuzz/corpus/<name>
  Target run;
};

/// Every target: pytorch_state_dict, checkpoint, cifar10, idx, metrics, png, image (JPEG
/// and PNG files of an image folder).
const std::vector<NamedTarget>& targets();

/// Runs `run` on `data`: "" if the reader accepted it, the message of the
/// exception it refused it with otherwise. A defect does not return.
std::string run_one(Target run, const uint8_t* data, size_t size);

/// How the idx target splits its input: byte 0 picks plain or gzipped files
/// (bit 0), the split (bit 1: train, else test) and whether gzipped files
/// are given as they are (bit 2) or compressed by the target; bytes 1-2
/// (little endian) are the length of the images file, the rest is the
/// labels file.
std::vector<uint8_t> idx_input(bool gzipped, bool train, const std::vector<uint8_t>& images,
                               const std::vector<uint8_t>& labels);

}  // namespace dnn_gating::fuzz
