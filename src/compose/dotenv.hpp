// .env and env_file files, with compose's rules.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "compose/interpolate.hpp"

namespace berth::compose {

// Parses dotenv text (as read from file) in order: blank lines and # comments skipped, an optional
// "export " prefix, KEY=VALUE with VALUE unquoted (trimmed, " #…" comment dropped), 'single-quoted'
// (literal) or "double-quoted" (\n \t \" \\ escapes; may span lines). Unquoted and double-quoted
// values are interpolated (${VAR} etc.) against the keys defined earlier in the file, then lookup.
// A line with a key and no '=' takes the key's value from lookup (skipped when unset). A bad line
// is berth::Error("FILE:LINE: unexpected character … in variable name …").
std::vector<std::pair<std::string, std::string>> parse_dotenv(const std::string& text, const std::string& file,
                                                              const VariableLookup& lookup);

// Reads and parses the file; a missing file is berth::Error("FILE: no such file or directory").
std::vector<std::pair<std::string, std::string>> read_dotenv(const std::string& file, const VariableLookup& lookup);

}  // namespace berth::compose
