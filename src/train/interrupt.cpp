#include "dnn_gating/train/interrupt.h"

#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstring>

namespace dnn_gating::train {
namespace {

std::atomic<int> g_signal{0};
// The temporary file being written, readable from the signal handler.
char g_in_progress[4096];
std::atomic<bool> g_has_in_progress{false};

void on_signal(int signal_number) {
  int none = 0;
  if (g_signal.compare_exchange_strong(none, signal_number)) return;  // first: stop after this step
  if (g_has_in_progress.load()) ::unlink(g_in_progress);
  ::_exit(128 + signal_number);  // second: at once
}

}  // namespace

void install_stop_handlers() {
  struct sigaction action {};
  action.sa_handler = on_signal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
  // A file size limit (ulimit -f) then fails the write with EFBIG, which the
  // writer reports like a full disk, instead of killing the process.
  signal(SIGXFSZ, SIG_IGN);
}

int stop_signal() { return g_signal.load(); }

void set_file_in_progress(const std::string& path) {
  g_has_in_progress.store(false);
  if (path.empty() || path.size() >= sizeof g_in_progress) return;
  std::memcpy(g_in_progress, path.c_str(), path.size() + 1);
  g_has_in_progress.store(true);
}

}  // namespace dnn_gating::train
