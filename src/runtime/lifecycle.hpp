// Steps shared by create/run (container.cpp) and the lifecycle commands (lifecycle.cpp).
#pragma once

#include <sys/types.h>

#include "runtime/spec.hpp"
#include "runtime/state.hpp"

namespace berth::runtime {

// Waits up to timeout_ms for pid to exit (pidfd); true if it did or is already gone.
bool wait_exit(pid_t pid, int timeout_ms);
// Opens exec.fifo's read end and waits for init's byte: init then execs.
void signal_start(const StateStore& store, const ContainerState& state);
void run_poststart(const ContainerState& state, const Hooks& hooks);
// Removes the cgroup, runs poststop hooks and removes the state. hooks: the container's when the
// caller has its parsed config (else parsed from the state).
void cleanup_stopped(const StateStore& store, const ContainerState& state, const Hooks* hooks = nullptr);
// Signals every process in the container's cgroup (thawing it for SIGKILL).
void kill_all(const ContainerState& state, int sig);

}  // namespace berth::runtime
