// Small pieces shared by command handlers.
#pragma once

#include <iostream>
#include <map>
#include <string>
#include <vector>

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

}  // namespace berth::cli
