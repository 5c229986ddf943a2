// Overlayfs root filesystems for containers: image layers as lowerdirs, a per-container upper/work.
#pragma once

#include <string>
#include <vector>

namespace berth::storage {

// Mounts an overlay at target. lowerdirs are ordered top-most first (overlayfs order); with no
// upperdir (empty) the overlay is read-only. Uses the new mount API with one `lowerdir+` per layer
// (Linux ≥ 6.8), so the layer count is not bounded by the page-sized mount data; on older kernels
// falls back to mount(2), with the lowerdirs named relative to their common parent when the
// absolute list would not fit in a page.
//
// volatile_upper (overlayfs `volatile`, Linux >= 5.10; ignored where the kernel lacks it): the
// upper layer is never synced, so unmounting costs no writeback. Only for an upper that may be
// lost in a host crash (a `--rm` container's writable layer). The kernel refuses to mount such an
// upper again while its "incompat/volatile" mark is there; this removes the mark first.
void mount_overlay(const std::vector<std::string>& lowerdirs, const std::string& upperdir, const std::string& workdir,
                   const std::string& target, bool volatile_upper = false);

// Lazily detaches the overlay at target; a target that is not mounted is fine.
void unmount_overlay(const std::string& target);

}  // namespace berth::storage
