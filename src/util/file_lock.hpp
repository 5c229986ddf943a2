// flock(2)-based locks between berth processes: released by the kernel when the holder dies,
// so a kill -9 never leaves a lock behind.
#pragma once

#include <string>

#include "util/fd.hpp"

namespace berth {

class FileLock {
 public:
  enum class Mode { Shared, Exclusive };
  // Blocks until the lock on path (created if missing) is held.
  FileLock(const std::string& path, Mode mode);
  FileLock(FileLock&&) noexcept = default;
  FileLock& operator=(FileLock&&) noexcept = default;
  // Releases (closing the fd drops the flock).
  ~FileLock() = default;

 private:
  UniqueFd fd_;
};

}  // namespace berth
