// OCI hooks: each runs with the container state JSON on stdin, in order;
// a non-zero exit or a timeout fails the stage (poststop failures only warn).
#pragma once

#include <string>
#include <vector>

#include "runtime/spec.hpp"

namespace berth::runtime {

// cwd: where host-side hooks run (the bundle, as runc does); empty keeps ours.
void run_hooks(const std::vector<Hook>& hooks, const std::string& state_json, const std::string& stage,
               const std::string& cwd = "");

}  // namespace berth::runtime
