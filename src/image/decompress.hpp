// Streaming decompression of image layers (gzip, zstd or none, told apart by magic bytes).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>

namespace berth::image {

// Pulls up to len bytes into buf; returns 0 at end of stream; throws berth::Error on failure.
using ReadFn = std::function<size_t(char* buf, size_t len)>;

enum class Compression { none, gzip, zstd };

// Pull-based decompressor. gzip streams may hold several members (pigz, concatenated
// files) and zstd streams several frames; anything else after the last one is an error,
// as is a stream that ends inside a member or frame.
class Decompressor {
 public:
  // in_size: how much compressed input is read at a time.
  explicit Decompressor(ReadFn read, size_t in_size = size_t{256} << 10);
  ~Decompressor();
  Decompressor(const Decompressor&) = delete;
  Decompressor& operator=(const Decompressor&) = delete;

  // Like ReadFn, for the decompressed stream: up to len bytes into buf, 0 at the end.
  // Compressed input fills buf completely unless the stream ends.
  // Throws Error("layer: gzip stream corrupt at byte N: …") and the like.
  size_t read(char* buf, size_t len);
  // Detected from the first bytes of the stream.
  Compression compression();
  // Compressed bytes consumed so far.
  uint64_t compressed_offset() const;

 private:
  struct State;
  std::unique_ptr<State> s_;
};

}  // namespace berth::image
