#include "dnn_gating/io/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>

namespace dnn_gating::train {
namespace fs = std::filesystem;

namespace {

// The temporary file being written, readable from a signal handler.
char g_in_progress[4096];
std::atomic<bool> g_has_in_progress{false};

void set_file_in_progress(const std::string& path) {
  g_has_in_progress.store(false);
  if (path.empty() || path.size() >= sizeof g_in_progress) return;
  std::memcpy(g_in_progress, path.c_str(), path.size() + 1);
  g_has_in_progress.store(true);
}

// Writes everything to `fd` and flushes it to the disk; false with errno set on failure.
bool write_all(int fd, std::string_view contents) {
  while (!contents.empty()) {
    const ssize_t n = ::write(fd, contents.data(), contents.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    contents.remove_prefix(static_cast<size_t>(n));
  }
  return ::fsync(fd) == 0;
}

}  // namespace

void write_file_atomically(const std::string& path, std::string_view contents,
                           const std::string& what) {
  const fs::path target(path);
  if (target.has_parent_path()) {
    std::error_code error;
    fs::create_directories(target.parent_path(), error);
    if (error) {
      throw std::runtime_error(path + ": cannot create the directory " +
                               target.parent_path().string() + " (" + error.message() + ")");
    }
  }
  const std::string temporary = path + ".partial";
  set_file_in_progress(temporary);
  // Clears the in-progress mark however this function ends.
  struct Done {
    ~Done() { set_file_in_progress(""); }
  } done;
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    throw std::runtime_error(path + ": cannot write the " + what + " (" + std::strerror(errno) +
                             ")");
  }
  const bool written = write_all(fd, contents);
  const int write_errno = errno;
  const bool closed = ::close(fd) == 0;
  if (!written || !closed) {
    ::unlink(temporary.c_str());
    throw std::runtime_error(path + ": cannot write the " + what + " (" +
                             std::strerror(written ? errno : write_errno) + ")");
  }
  if (::rename(temporary.c_str(), path.c_str()) != 0) {
    const int rename_errno = errno;
    ::unlink(temporary.c_str());
    throw std::runtime_error(path + ": cannot replace the " + what + " (" +
                             std::strerror(rename_errno) + ")");
  }
}

void remove_file_in_progress() {
  if (g_has_in_progress.load()) ::unlink(g_in_progress);
}

}  // namespace dnn_gating::train
