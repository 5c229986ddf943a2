#include "storage/overlay.hpp"

#include "util/error.hpp"

namespace berth::storage {

void mount_overlay(const std::vector<std::string>&, const std::string&, const std::string&, const std::string&) {
  throw Error("overlay: not implemented yet");
}

}  // namespace berth::storage
