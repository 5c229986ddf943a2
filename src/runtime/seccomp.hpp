// Seccomp filters from the OCI spec, through libseccomp.
#pragma once

#include <memory>
#include <string>

#include "runtime/spec.hpp"

namespace berth::runtime {

// A filter compiled in the runtime process (so errors surface before any
// namespace exists) and loaded in the container's init just before execve.
class SeccompProgram {
 public:
  virtual ~SeccompProgram() = default;
  // Loads the filter into the calling thread/process (seccomp_load).
  // When the spec uses SCMP_ACT_NOTIFY, returns the notify fd (else -1).
  virtual int load() = 0;
  // Whether the filter has a SCMP_ACT_NOTIFY rule (listenerPath must then be set).
  virtual bool uses_notify() const = 0;
};

// Throws berth::Error naming the offending field (unknown action, architecture,
// operator, flag, arg index > 5). Unknown syscall names are skipped, like runc,
// since a profile lists syscalls newer than some kernels/libseccomp know.
std::unique_ptr<SeccompProgram> compile_seccomp(const Seccomp& spec);

// compile_seccomp through a cache of compiled filters in cache_dir, keyed by key (the seccomp
// section as JSON text): compiling docker's default profile costs ~20 ms, loading it from the
// cache well under 1 ms. A cache file is used only when the whole key it stores matches, and
// cache_dir lives in the runtime root (tmpfs: gone at reboot, i.e. with any kernel change).
// Failures to read or write the cache just fall back to compiling.
std::unique_ptr<SeccompProgram> compile_seccomp_cached(const Seccomp& spec, const std::string& key,
                                                       const std::string& cache_dir);

// Sends the notify fd and the container state JSON to listenerPath over a unix
// socket (SCM_RIGHTS), as the runtime-spec describes.
void send_seccomp_listener(const std::string& listener_path, int notify_fd, const std::string& state_json,
                           const std::string& metadata);

}  // namespace berth::runtime
