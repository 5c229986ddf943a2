// Fault injection for the crash-safety tests: fault_point("run.after-mount") kills the process
// with SIGKILL when $BERTH_FAULT names that step, so a test can loop over every step of a
// multi-step change and check that the next berth command reconciles what was left.
// Compiled in unless BERTH_FAULT_INJECTION is OFF (release packages may turn it off).
#pragma once

#ifdef BERTH_FAULT_INJECTION
#include <signal.h>

#include <cstdlib>
#include <cstring>
#endif

namespace berth {

inline void fault_point([[maybe_unused]] const char* step) {
#ifdef BERTH_FAULT_INJECTION
  static const char* wanted = std::getenv("BERTH_FAULT");
  if (wanted && std::strcmp(wanted, step) == 0) ::raise(SIGKILL);
#endif
}

}  // namespace berth
