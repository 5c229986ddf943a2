// std::terminate's default handler, replaced. libstdc++'s own demangles the type of the uncaught
// exception, and with it comes its demangler: 45 KiB more of the static binary, which in the
// shim is resident memory in every container's parent. The shim catches what it throws; reaching
// this is a bug, and the message plus the abort's core say where.
#include <unistd.h>

#include <cstdlib>
#include <exception>

namespace __gnu_cxx {

void __verbose_terminate_handler() {
  static const char msg[] = "berth-shim: terminate called (an exception escaped)\n";
  (void)!::write(2, msg, sizeof msg - 1);
  std::abort();
}

}  // namespace __gnu_cxx
