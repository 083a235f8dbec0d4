#pragma once
/// Stopping a run cleanly on SIGINT or SIGTERM: the first signal asks the
/// training loop to stop after its current step (it then saves a resumable
/// checkpoint); a second one ends the process at once, after removing the
/// temporary file of a save in progress (remove_file_in_progress), so no
/// partial file is left.

#include <exception>
#include <string>

namespace dnn_gating::train {

/// Installs the handlers of SIGINT and SIGTERM (programs call this once),
/// and ignores SIGXFSZ so that exceeding a file size limit fails a write
/// cleanly (as a full disk does) rather than killing the process.
void install_stop_handlers();

/// The signal that asked the run to stop, 0 while none has.
int stop_signal();

/// Thrown by the training loop once it has stopped for a signal and saved
/// its state; the program exits with 128 + signal (130 for SIGINT, 143 for
/// SIGTERM).
struct Interrupted : std::exception {
  explicit Interrupted(int signal_number) : signal(signal_number) {}
  const char* what() const noexcept override { return "interrupted"; }
  int signal;
};

}  // namespace dnn_gating::train
