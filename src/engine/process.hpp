// Running berth's helper binaries (berth-runtime, berth-shim) from the engine.
#pragma once

#include <string>
#include <vector>

namespace berth::engine {

struct ProcessResult {
  int status = 0;  // exit status, or 128+signal
  std::string out, err;
};

// fork+exec argv[0] with stdin /dev/null, capturing stdout and stderr.
ProcessResult run_process(const std::vector<std::string>& argv);

// Directory of the running executable (/proc/self/exe), with a trailing slash.
std::string self_dir();

// The run directory: $BERTH_RUN_DIR or /run/berth (tmpfs: gone after a reboot).
std::string run_dir();

}  // namespace berth::engine
