// berth: `berth runtime …` (also reachable as `berth-runtime`, by argv[0]).
#include <cstring>
#include <iostream>
#include <string>

#include "runtime/runtime.hpp"

namespace {

const char* kUsage =
    "usage: berth COMMAND\n"
    "\n"
    "commands:\n"
    "  runtime   the runc-compatible OCI runtime (also installed as berth-runtime)\n";

std::string basename_of(const char* path) {
  const char* slash = std::strrchr(path, '/');
  return slash ? slash + 1 : path;
}

}  // namespace

int main(int argc, char** argv) {
  berth::runtime::set_reexec_argv(argv);
  if (basename_of(argv[0]) == "berth-runtime") return berth::runtime::runtime_main(argc, argv);
  if (argc < 2) {
    std::cerr << kUsage;
    return 125;
  }
  std::string cmd = argv[1];
  if (cmd == "runtime") return berth::runtime::runtime_main(argc - 1, argv + 1);
  if (cmd == "--help" || cmd == "-h" || cmd == "help") {
    std::cout << kUsage;
    return 0;
  }
  if (cmd == "--version" || cmd == "version") {
    std::cout << "berth version 0.1.0\n";
    return 0;
  }
  std::cerr << "berth: unknown command \"" << cmd << "\"; see 'berth --help'\n";
  return 125;
}
