// Small pieces shared by command handlers.
#pragma once

#include <functional>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "cli/context.hpp"

namespace berth::cli {

// --opt and --label values: "K=V", or "K" for an empty value (docker's MapOpts).
inline std::map<std::string, std::string> kv_map(const std::vector<std::string>& items) {
  std::map<std::string, std::string> out;
  for (const auto& item : items) {
    auto eq = item.find('=');
    out[item.substr(0, eq)] = eq == std::string::npos ? "" : item.substr(eq + 1);
  }
  return out;
}

// docker's prune prompt: true only for y/Y/yes on stdin.
inline bool confirm(const std::string& warning) {
  std::cout << warning << "\nAre you sure you want to continue? [y/N] " << std::flush;
  std::string answer;
  if (!std::getline(std::cin, answer)) return false;
  return answer == "y" || answer == "Y" || answer == "yes";
}

// Brings image `name` into the local store under a --pull policy, for docker run/create and compose:
// "missing" pulls it when absent, "always" pulls it anyway, "never" refuses an absent one (Error
// "No such image: NAME"). progress(ref, false) is called before a pull and progress(ref, true)
// after it, for the caller's lines. The light berth has no registry client: a pull there re-runs
// the whole command as berth-full. Defined in container_cmds.cpp.
void ensure_image_present(Context& ctx, const std::string& name, const std::string& policy,
                          const std::function<void(const image::Reference& ref, bool pulled)>& progress);

}  // namespace berth::cli
