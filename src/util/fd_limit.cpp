#include "util/fd_limit.hpp"

#include <sys/resource.h>

namespace berth {
namespace {

struct rlimit g_original {};
bool g_raised = false;

}  // namespace

void raise_open_file_limit() {
  struct rlimit now {};
  if (::getrlimit(RLIMIT_NOFILE, &now) != 0 || now.rlim_cur >= now.rlim_max) return;
  struct rlimit raised = now;
  raised.rlim_cur = now.rlim_max;
  if (::setrlimit(RLIMIT_NOFILE, &raised) != 0) return;  // best effort: the old limit still works
  g_original = now;
  g_raised = true;
}

void restore_open_file_limit() noexcept {
  if (g_raised) ::setrlimit(RLIMIT_NOFILE, &g_original);
}

}  // namespace berth
