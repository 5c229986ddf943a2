// Unpacking one image layer (a tar stream, possibly compressed) into a directory, safely.
#pragma once

#include <cstdint>
#include <string>

#include "image/decompress.hpp"  // ReadFn

namespace berth::image {

struct UnpackResult {
  std::string diff_id;                          // "sha256:<hex>" of the UNCOMPRESSED tar stream (the OCI diff_id)
  uint64_t tar_bytes = 0;                       // length of the uncompressed tar stream
  uint64_t content_bytes = 0;                   // sum of regular file sizes written (for image Size)
  Compression compression = Compression::none;  // what the input turned out to be
};

// Unpacks one OCI/Docker image layer from `read` into dest_dir, an existing empty directory.
// Compression is detected from the magic bytes: gzip (incl. multi-member), zstd, or plain tar.
// Whiteouts become overlayfs ones: ".wh.NAME" a 0/0 character device NAME, ".wh..wh..opq"
// trusted.overlay.opaque=y on its directory. Nothing outside dest_dir is ever created,
// modified or followed: names with ".." or a leading "/", parents that are symlinks and
// hardlinks to outside are refused.
// Throws berth::Error naming the offending tar entry for unsafe or malformed input; the caller
// then removes dest_dir (it is a temp dir that the caller renames into place only on success).
// `read` is called on a helper thread (reading, decompressing and hashing overlap with writing
// files), one call at a time; its exceptions are rethrown here. On failure, unpack_layer returns
// once a read in progress has returned.
UnpackResult unpack_layer(const ReadFn& read, const std::string& dest_dir);
// Convenience: unpack from a file descriptor (reads until EOF).
UnpackResult unpack_layer_fd(int fd, const std::string& dest_dir);

}  // namespace berth::image
