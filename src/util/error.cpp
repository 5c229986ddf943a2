#include "util/error.hpp"

#include <cerrno>
#include <cstring>

namespace berth {

std::string errno_message(std::string_view what, int errnum) {
  std::string msg(what);
  msg += ": ";
  msg += std::strerror(errnum);
  return msg;
}

void throw_errno(std::string_view what) { throw_errno(what, errno); }

void throw_errno(std::string_view what, int errnum) { throw Error(errno_message(what, errnum), errnum); }

}  // namespace berth
