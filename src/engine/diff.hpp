// `berth diff`: what a container changed, read from its overlay upper directory the way docker's
// overlay2 driver does (archive.OverlayChanges).
#pragma once

#include <set>
#include <string>
#include <vector>

namespace berth::image {
class ImageStore;
}

namespace berth::engine {

class Engine;
struct Container;

struct Change {
  char kind;  // 'A' added, 'C' changed, 'D' deleted
  std::string path;
};

// Walks upper (pre-order, names in byte order, as Go's filepath.Walk) and compares with lowers
// (the image's layer directories, top-most first): an overlay whiteout (a 0/0 character device) or
// an opaque directory (trusted.overlay.opaque=y) is a deletion, an entry present in a lower layer
// a change (directories only when their size, mode or mtime differ), anything else an addition;
// the parent of an addition or deletion is a change. Paths in skip (mount points the runtime
// created, docker's "init layer") are left out with everything below them.
std::vector<Change> container_changes(const std::string& upper, const std::vector<std::string>& lowers,
                                      const std::set<std::string>& skip);

// What container c changed against its image (docker diff, GET /containers/{id}/changes), without
// what docker keeps in its init layer and the container's mount points.
std::vector<Change> changes_of(Engine& engine, image::ImageStore& images, const Container& c);

}  // namespace berth::engine
