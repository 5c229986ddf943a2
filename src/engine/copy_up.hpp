// Copy-up of an image directory into an empty volume, and the tree helpers volumes need.
//
// The protocol (crash-safe without ever deleting data a container may have written):
//   1. <volume dir>/copyup ← "copying\n<subpath>" (durable), then the image directory is copied
//      into a staging directory, <target>/.berth-copyup, which only berth writes;
//   2. syncfs, then the marker becomes "moving\n<subpath>" (durable);
//   3. each top-level entry is renamed from staging into the target with RENAME_NOREPLACE, the
//      target gets the image directory's owner and mode (kept on the staging dir), staging and
//      then the marker go.
// A kill -9 in step 1 is undone (staging is deleted: berth's own copy), one in step 3 is finished
// (the remaining renames are idempotent). Nothing in the target is ever deleted, and the target
// counts as empty when it holds nothing but a staging dir named by a marker.
#pragma once

#include <sys/types.h>

#include <string>

namespace berth::engine {

inline constexpr const char* kCopyUpMarker = "copyup";
inline constexpr const char* kCopyUpStaging = ".berth-copyup";

// Copies the content of the directory src_fd into the directory dst_fd: regular files (data,
// sparse-unaware), directories, symlinks, hardlinks within the tree, char/block devices and
// fifos (sockets are skipped, as tar does), with owners, modes, timestamps and xattrs. Never
// follows a symlink of the source. display names the source in errors.
void copy_tree(int src_fd, int dst_fd, const std::string& display);

// Removes path and everything under it without following symlinks or descending into another
// filesystem (a mount left inside is an error, never a reason to delete what it shows).
// Missing is fine.
void remove_tree_same_fs(const std::string& path);

// Bytes of regular files under path (hardlinks once), for prune's "reclaimed space".
int64_t tree_size(const std::string& path);

// True when the directory holds no entry.
bool dir_is_empty(int dir_fd);

// Step 0 of every copy-up and of mount_source: finishes or undoes what a crash left in
// volume_dir (<root>/volumes/<name>). Cheap (one stat) when no marker is there.
void resume_copy_up(const std::string& volume_dir);

// Runs the protocol above: copies src_fd's content into volume_dir/_data[/subpath] when that is
// empty. Returns false (and changes nothing) when it was not. The caller holds the volume lock.
bool copy_up_into(const std::string& volume_dir, const std::string& subpath, int src_fd, const std::string& display);

}  // namespace berth::engine
