#pragma once
// The bytes of a file in memory as LibTorch's zip reader reads them, with
// every read clamped to the bytes that exist. LibTorch's own
// MemoryReadAdapter copies whatever range the archive's fields point at,
// past the end of the buffer too (found by fuzzing: a damaged end-of-archive
// record made the reader read from before the buffer's start).
#include <caffe2/serialize/read_adapter_interface.h>

#include <cstring>
#include <vector>

namespace dnn_gating::train {

class BoundedReadAdapter final : public caffe2::serialize::ReadAdapterInterface {
 public:
  explicit BoundedReadAdapter(const std::vector<char>& bytes) : bytes_(bytes) {}
  size_t size() const override { return bytes_.size(); }
  size_t read(uint64_t pos, void* buf, size_t n, const char* what = "") const override {
    (void)what;
    if (pos >= bytes_.size()) return 0;
    const size_t available = bytes_.size() - static_cast<size_t>(pos);
    const size_t count = n < available ? n : available;
    std::memcpy(buf, bytes_.data() + pos, count);
    return count;
  }

 private:
  const std::vector<char>& bytes_;
};

}  // namespace dnn_gating::train
