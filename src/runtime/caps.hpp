// Linux capabilities: names from the spec to bits, and applying all five sets.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/spec.hpp"

namespace berth::runtime {

struct CapabilityMasks {
  uint64_t bounding = 0, effective = 0, inheritable = 0, permitted = 0, ambient = 0;
};

// "CAP_SYS_ADMIN" → 21; -1 when the name is unknown to this kernel/libcap.
int capability_from_name(const std::string& name);
uint64_t capability_mask(const std::vector<std::string>& names, std::vector<std::string>* unknown);
CapabilityMasks capability_masks(const Capabilities& caps, std::vector<std::string>* unknown);
int last_capability();

// Drops from the bounding set everything not in masks.bounding. Needs CAP_SETPCAP.
void drop_bounding(const CapabilityMasks& masks);
// Sets effective/permitted/inheritable, then the ambient set.
void apply_capabilities(const CapabilityMasks& masks);

}  // namespace berth::runtime
