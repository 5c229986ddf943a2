// berth: the engine's command line. `berth runtime …` hands over to the static berth-runtime.
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "cli/commands.hpp"

namespace {

// The runtime is its own static binary next to this one (or on PATH): exec it, so that
// `berth runtime run` costs one exec more than berth-runtime and no dynamic loading.
int exec_runtime(int argc, char** argv) {
  std::vector<char*> args;
  std::string name = "berth-runtime";
  args.push_back(name.data());
  for (int i = 2; i < argc; i++) args.push_back(argv[i]);
  args.push_back(nullptr);
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n > 0) {
    std::string path(self, static_cast<size_t>(n));
    path = path.substr(0, path.rfind('/') + 1) + "berth-runtime";
    execv(path.c_str(), args.data());
  }
  execvp("berth-runtime", args.data());
  std::cerr << "berth: exec berth-runtime: " << std::strerror(errno) << "\n";
  return 127;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::string(argv[1]) == "runtime") return exec_runtime(argc, argv);
  return berth::cli::main(argc, argv);
}
