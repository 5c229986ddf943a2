// OCI hooks: each runs with the container state JSON on stdin, in order;
// a non-zero exit or a timeout fails the stage (poststop failures only warn).
#pragma once

#include <string>
#include <vector>

#include "runtime/spec.hpp"

namespace berth::runtime {

// cwd: where host-side hooks run (the bundle, as runc does); empty keeps ours. Throws at the
// first hook that fails: the stage fails.
void run_hooks(const std::vector<Hook>& hooks, const std::string& state_json, const std::string& stage,
               const std::string& cwd = "");

// poststart and poststop: a hook that fails is a warning, and the hooks after it still run
// (runtime spec, "Lifecycle").
void run_hooks_warning(const std::vector<Hook>& hooks, const std::string& state_json, const std::string& stage,
                       const std::string& cwd = "");

}  // namespace berth::runtime
