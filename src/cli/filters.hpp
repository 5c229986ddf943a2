// docker's list filters shared by the commands: name= (a regular expression) and label=.
// name= filters are regular expressions (Go's RE2; POSIX ERE is the nearest in libc).
// POSIX regcomp rather than std::regex: GCC 12's <regex> trips -Wmaybe-uninitialized under
// the sanitizer build, and regcomp is smaller and faster for these one-off matches.
#pragma once

#include <regex.h>

#include <string>

#include <nlohmann/json.hpp>

namespace berth::cli {

// Whether pattern matches anywhere in text; a pattern that does not compile is matched as a
// plain substring.
inline bool name_matches(const std::string& text, const std::string& pattern) {
  regex_t re;
  if (::regcomp(&re, pattern.c_str(), REG_EXTENDED | REG_NOSUB) != 0) return text.find(pattern) != std::string::npos;
  bool matched = ::regexec(&re, text.c_str(), 0, nullptr, 0) == 0;
  ::regfree(&re);
  return matched;
}

inline bool regex_compiles(const std::string& pattern) {
  regex_t re;
  if (::regcomp(&re, pattern.c_str(), REG_EXTENDED | REG_NOSUB) != 0) return false;
  ::regfree(&re);
  return true;
}

// docker's label filter: "key" (present) or "key=value", against a JSON object of labels.
inline bool label_matches(const nlohmann::json& labels, const std::string& filter) {
  size_t eq = filter.find('=');
  std::string key = filter.substr(0, eq);
  if (!labels.is_object() || !labels.contains(key)) return false;
  if (eq == std::string::npos) return true;
  return labels[key].is_string() && labels[key].get<std::string>() == filter.substr(eq + 1);
}

}  // namespace berth::cli
