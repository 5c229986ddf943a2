#include "util/file_lock.hpp"

#include <fcntl.h>
#include <sys/file.h>

#include <cerrno>

#include "util/error.hpp"

namespace berth {

FileLock::FileLock(const std::string& path, Mode mode) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) throw_errno("open lock " + path);
  fd_.reset(fd);
  while (::flock(fd, mode == Mode::Shared ? LOCK_SH : LOCK_EX) < 0) {
    if (errno != EINTR) throw_errno("flock " + path);
  }
}

}  // namespace berth
