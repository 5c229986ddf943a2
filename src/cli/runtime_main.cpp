// berth-runtime: the runc-compatible OCI runtime, a static binary of its own so that a
// container start pays for no dynamic loading (see docs/ARCHITECTURE.md, "Two binaries").
#include "runtime/runtime.hpp"

int main(int argc, char** argv) {
  berth::runtime::set_reexec_argv(argv);
  return berth::runtime::runtime_main(argc, argv);
}
