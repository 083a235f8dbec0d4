#pragma once
// A pickle stream checked before LibTorch's unpickler reads it: every
// length its opcodes claim (strings, bytes, long integers) must lie inside
// the stream, and every memo index must follow the entries stored before it.
// LibTorch's unpickler reserves a string's claimed length before reading it
// and grows its memo table to any index a PUT names (both found by fuzzing:
// 4 KB checkpoints claiming a 1.7 GB string and memo entry 1.6 billion), so
// the claims are checked first.
#include <cstddef>
#include <string>

namespace dnn_gating::train {

/// Throws std::runtime_error naming `path` when an opcode's length runs past
/// the end of `pickle` or the stream holds an opcode no pickle protocol has.
void check_pickle_lengths(const std::string& pickle, const std::string& path);

}  // namespace dnn_gating::train
