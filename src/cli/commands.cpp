#include "cli/commands.hpp"

#include <iostream>
#include <string>

namespace berth::cli {

namespace {
const char* kUsage =
    "usage: berth COMMAND\n"
    "\n"
    "commands:\n"
    "  runtime   the runc-compatible OCI runtime (also installed as berth-runtime)\n";
}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << kUsage;
    return 125;
  }
  std::string cmd = argv[1];
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

}  // namespace berth::cli
