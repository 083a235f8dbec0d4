#include "io/pickle_check.h"

#include <cstdint>
#include <stdexcept>

namespace dnn_gating::train {
namespace {

uint64_t little_endian(const std::string& s, size_t at, int width) {
  uint64_t value = 0;
  for (int i = width - 1; i >= 0; --i) value = (value << 8) | static_cast<uint8_t>(s[at + i]);
  return value;
}

}  // namespace

void check_pickle_lengths(const std::string& pickle, const std::string& path) {
  const auto fail = [&](size_t at, const std::string& what) {
    throw std::runtime_error(path + ": not a readable checkpoint: its pickle " + what +
                             " at byte " + std::to_string(at));
  };
  size_t at = 0;
  // Skips `width` argument bytes, then a body of the length they hold.
  const auto skip = [&](size_t op_at, int width, bool counted) {
    if (pickle.size() - at < static_cast<size_t>(width)) fail(op_at, "is cut short");
    const uint64_t length = little_endian(pickle, at, width);
    at += width;
    if (!counted) return;
    if (length > pickle.size() - at) {
      fail(op_at, "claims " + std::to_string(length) + " bytes where " +
                      std::to_string(pickle.size() - at) + " remain");
    }
    at += length;
  };
  const auto skip_lines = [&](size_t op_at, int lines) {
    for (int i = 0; i < lines; ++i) {
      const size_t end = pickle.find('\n', at);
      if (end == std::string::npos) fail(op_at, "is cut short");
      at = end + 1;
    }
  };
  // Memo indices: LibTorch's unpickler grows its memo table to the index a
  // PUT names, so an index must follow those stored before it (picklers
  // number them 0, 1, 2, ...).
  uint64_t memo_size = 0;
  const auto memo_put = [&](size_t op_at, uint64_t index) {
    if (index > memo_size) {
      fail(op_at, "stores memo entry " + std::to_string(index) + " after only " +
                      std::to_string(memo_size));
    }
    if (index == memo_size) ++memo_size;
  };
  while (at < pickle.size()) {
    const size_t op_at = at;
    const auto op = static_cast<uint8_t>(pickle[at++]);
    switch (op) {
      case '.':  // STOP
        return;
      case 'X':
      case 'B':
      case 'T':
      case 0x8b:  // BINUNICODE, BINBYTES, BINSTRING, LONG4
        skip(op_at, 4, true);
        break;
      case 'U':
      case 'C':
      case 0x8c:
      case 0x8a:  // SHORT_BINSTRING, SHORT_BINBYTES, SHORT_BINUNICODE, LONG1
        skip(op_at, 1, true);
        break;
      case 0x8d:
      case 0x8e:
      case 0x96:  // BINUNICODE8, BINBYTES8, BYTEARRAY8
        skip(op_at, 8, true);
        break;
      case 'q':  // BINPUT
        skip(op_at, 1, false);
        memo_put(op_at, static_cast<uint8_t>(pickle[at - 1]));
        break;
      case 'r':  // LONG_BINPUT
        skip(op_at, 4, false);
        memo_put(op_at, little_endian(pickle, at - 4, 4));
        break;
      case 'p': {  // PUT: a decimal index on its line
        const size_t begin = at;
        skip_lines(op_at, 1);
        const std::string digits = pickle.substr(begin, at - 1 - begin);
        if (digits.empty() || digits.size() > 9 ||
            digits.find_first_not_of("0123456789") != std::string::npos) {
          fail(op_at, "names memo entry '" + digits.substr(0, 20) + "'");
        }
        memo_put(op_at, std::stoull(digits));
        break;
      }
      case 0x94:  // MEMOIZE
        ++memo_size;
        break;
      case 0x80:
      case 'K':
      case 'h':
      case 0x82:  // PROTO, BININT1, BINGET, EXT1
        skip(op_at, 1, false);
        break;
      case 'M':
      case 0x83:  // BININT2, EXT2
        skip(op_at, 2, false);
        break;
      case 'J':
      case 'j':
      case 0x84:  // BININT, LONG_BINGET, EXT4
        skip(op_at, 4, false);
        break;
      case 'G':
      case 0x95:  // BINFLOAT, FRAME
        skip(op_at, 8, false);
        break;
      case 'c':
      case 'i':  // GLOBAL, INST: module and name lines
        skip_lines(op_at, 2);
        break;
      case 'I':
      case 'L':
      case 'F':
      case 'S':
      case 'V':
      case 'P':
      case 'g':
        skip_lines(op_at, 1);
        break;
      case '(':
      case ')':
      case ']':
      case '}':
      case 'N':
      case 0x88:
      case 0x89:
      case 't':
      case 0x85:
      case 0x86:
      case 0x87:
      case 'a':
      case 'e':
      case 's':
      case 'u':
      case 'l':
      case 'd':
      case 'Q':
      case 'R':
      case 'b':
      case 0x81:
      case 0x92:
      case 0x93:
      case 0x8f:
      case 0x90:
      case 0x91:
      case '0':
      case '1':
      case '2':
      case 0x97:
      case 0x98:
        break;
      default:
        fail(op_at, "holds an opcode no pickle protocol has (0x" +
                        std::string(1, "0123456789abcdef"[op >> 4]) +
                        std::string(1, "0123456789abcdef"[op & 15]) + ")");
    }
  }
  fail(at, "ends without STOP");
}

}  // namespace dnn_gating::train
