// One error type for the whole code base: what failed, on what, and errno.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace berth {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message, int errnum = 0) : std::runtime_error(message), errnum_(errnum) {}
  int errnum() const { return errnum_; }

 private:
  int errnum_;
};

// "<what>: <strerror(errnum)>" — the errno name is kept so callers can test it.
std::string errno_message(std::string_view what, int errnum);

// Throws Error("<what>: <strerror(errno)>", errno).
[[noreturn]] void throw_errno(std::string_view what);
[[noreturn]] void throw_errno(std::string_view what, int errnum);

}  // namespace berth
