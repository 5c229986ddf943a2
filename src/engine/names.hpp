// Container IDs and generated names.
#pragma once

#include <string>

namespace berth::engine {

// 64 lowercase hex characters from getrandom.
std::string generate_id();
// "brave_harbor"; attempt > 0 adds a number (after a name clash).
std::string generate_name(int attempt = 0);

}  // namespace berth::engine
