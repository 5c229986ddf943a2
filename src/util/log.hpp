// Runtime log: runc writes errors to --log in text or json; containerd reads the last error line.
#pragma once

#include <string>
#include <string_view>

namespace berth::log {

enum class Format { Text, Json };

void configure(const std::string& path, Format format, bool debug);
void debug(std::string_view msg);
void warn(std::string_view msg);
void error(std::string_view msg);

}  // namespace berth::log
