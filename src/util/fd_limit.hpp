// The open-file limit of a long-running server. `berth serve` holds a descriptor per client (the
// issue asks for 1000 at once) while the usual soft limit is 1024, so it raises its soft limit to
// the hard one, as dockerd does; the processes the engine starts (shims, and through them the
// containers, the runtime, DNS responders) get the limit berth was started with back, so a
// container's limits do not depend on whether the CLI or the API started it.
#pragma once

namespace berth {

// Raises the soft RLIMIT_NOFILE to the hard limit and remembers the original. Not thread safe:
// call once, at startup.
void raise_open_file_limit();

// In a forked child before exec: puts back the limit raise_open_file_limit() found (nothing if it
// was not called). Async-signal-safe.
void restore_open_file_limit() noexcept;

}  // namespace berth
