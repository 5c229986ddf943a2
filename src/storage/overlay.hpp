// Overlayfs root filesystems for containers: image layers as lowerdirs, a per-container upper/work.
#pragma once

#include <string>
#include <vector>

namespace berth::storage {

// Mounts an overlay at target. lowerdirs are ordered top-most first (overlayfs order).
// Uses the new mount API with one `lowerdir+` per layer, so the layer count is not bounded
// by the page-sized mount data; falls back to mount(2) with the lowerdir list.
void mount_overlay(const std::vector<std::string>& lowerdirs, const std::string& upperdir,
                   const std::string& workdir, const std::string& target);

}  // namespace berth::storage
