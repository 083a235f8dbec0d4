#include "dnn_gating/train/interrupt.h"

#include <unistd.h>

#include <atomic>
#include <csignal>

#include "dnn_gating/io/atomic_file.h"

namespace dnn_gating::train {
namespace {

std::atomic<int> g_signal{0};

void on_signal(int signal_number) {
  int none = 0;
  if (g_signal.compare_exchange_strong(none, signal_number)) return;  // first: stop after this step
  remove_file_in_progress();
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

}  // namespace dnn_gating::train
