#include "image/decompress.hpp"

#include <isa-l/igzip_lib.h>
#include <zstd.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <string>

#include "util/error.hpp"

namespace berth::image {

struct Decompressor::State {
  ReadFn read;
  size_t cap;
  std::unique_ptr<char[]> in;
  size_t in_pos = 0, in_len = 0;
  uint64_t in_base = 0;  // stream offset of in[0]
  bool in_eof = false;
  bool detected = false;
  Compression kind = Compression::none;

  // gzip through ISA-L's inflate: about twice zlib's speed here, and the layer's
  // decompression is most of a pull's CPU time.
  inflate_state zs{};
  bool in_member = false;
  uint64_t member_start = 0;  // stream offset of the current member's header
  uint64_t members = 0;       // complete members so far

  ZSTD_DCtx* zd = nullptr;
  bool frame_open = false;

  ~State() { ZSTD_freeDCtx(zd); }

  uint64_t offset() const { return in_base + in_pos; }

  // Appends one read's worth of input; sets in_eof at the end of the stream.
  void read_more() {
    size_t n = read(in.get() + in_len, cap - in_len);
    if (n == 0)
      in_eof = true;
    else
      in_len += n;
  }

  // Discards consumed input and reads more (once).
  void refill() {
    in_base += in_len;
    in_pos = in_len = 0;
    read_more();
  }

  void detect() {
    detected = true;
    while (in_len < 4 && !in_eof) read_more();
    auto* b = reinterpret_cast<const unsigned char*>(in.get());
    if (in_len >= 2 && b[0] == 0x1f && b[1] == 0x8b) {
      kind = Compression::gzip;
      start_member();
    } else if (in_len >= 4 && b[0] == 0x28 && b[1] == 0xb5 && b[2] == 0x2f && b[3] == 0xfd) {
      kind = Compression::zstd;
      zd = ZSTD_createDCtx();
      if (!zd) throw Error("layer: zstd init failed");
    }
  }

  // ISAL_GZIP: the gzip header and trailer are parsed and the CRC checked, so a raw
  // deflate or zlib stream is not silently accepted.
  void start_member() {
    isal_inflate_init(&zs);
    zs.crc_flag = ISAL_GZIP;
  }

  static const char* isal_error(int r) {
    switch (r) {
      case ISAL_INVALID_BLOCK:
        return "invalid deflate block";
      case ISAL_INVALID_SYMBOL:
        return "invalid deflate symbol";
      case ISAL_INVALID_LOOKBACK:
        return "invalid distance too far back";
      case ISAL_INVALID_WRAPPER:
        return "incorrect header check";
      case ISAL_UNSUPPORTED_METHOD:
        return "unknown compression method";
      case ISAL_INCORRECT_CHECKSUM:
        return "incorrect data check";
      default:
        return "inflate error";
    }
  }

  [[noreturn]] void corrupt(const char* format, const char* why) { corrupt(format, why, offset()); }
  [[noreturn]] void corrupt(const char* format, const char* why, uint64_t at) {
    throw Error(std::string("layer: ") + format + " stream corrupt at byte " + std::to_string(at) + ": " +
                (why ? why : "unknown error"));
  }
  [[noreturn]] void truncated(const char* format) {
    throw Error(std::string("layer: ") + format + " stream truncated at byte " + std::to_string(offset()));
  }

  size_t read_plain(char* buf, size_t len) {
    if (in_pos < in_len) {  // the bytes read to detect the format
      size_t n = std::min(len, in_len - in_pos);
      std::memcpy(buf, in.get() + in_pos, n);
      in_pos += n;
      return n;
    }
    if (in_eof || len == 0) return 0;
    size_t n = read(buf, len);
    if (n == 0) in_eof = true;
    in_base += n;  // in_pos == in_len: offset() = in_base + in_len
    return n;
  }

  size_t read_gzip(char* buf, size_t len) {
    zs.next_out = reinterpret_cast<uint8_t*>(buf);
    zs.avail_out = static_cast<uint32_t>(std::min<size_t>(len, UINT32_MAX));
    const uint32_t want = zs.avail_out;
    while (zs.avail_out > 0) {
      if (in_pos == in_len && !in_eof) refill();
      if (in_pos == in_len && in_eof && !in_member) break;  // ended between members
      if (in_pos < in_len && !in_member) {
        in_member = true;
        member_start = offset();
      }
      zs.next_in = reinterpret_cast<uint8_t*>(in.get() + in_pos);
      zs.avail_in = static_cast<uint32_t>(in_len - in_pos);
      uint32_t out_before = zs.avail_out;
      int r = isal_inflate(&zs);
      in_pos = in_len - zs.avail_in;
      if (r < 0) {
        if (members > 0 && zs.total_out == 0) corrupt("gzip", "data after the last member is not gzip", member_start);
        corrupt("gzip", isal_error(r));
      }
      if (zs.block_state == ISAL_BLOCK_FINISH) {
        // Another member may follow; anything else there fails the next header check.
        in_member = false;
        members++;
        uint8_t* out = zs.next_out;
        uint32_t avail = zs.avail_out;
        start_member();
        zs.next_out = out;
        zs.avail_out = avail;
      } else if (zs.avail_out == out_before && in_pos == in_len && in_eof) {
        // ISA-L waits for a whole header before judging it: a short tail of junk lands here.
        if (members > 0 && zs.total_out == 0) corrupt("gzip", "data after the last member is not gzip", member_start);
        truncated("gzip");
      }
    }
    return want - zs.avail_out;
  }

  size_t read_zstd(char* buf, size_t len) {
    ZSTD_outBuffer ob{buf, len, 0};
    while (ob.pos < ob.size) {
      if (in_pos == in_len && !in_eof) refill();
      if (in_pos == in_len && in_eof && !frame_open) break;
      ZSTD_inBuffer ib{in.get(), in_len, in_pos};
      size_t before_out = ob.pos, before_in = ib.pos;
      size_t r = ZSTD_decompressStream(zd, &ob, &ib);
      in_pos = ib.pos;
      if (ZSTD_isError(r)) corrupt("zstd", ZSTD_getErrorName(r));
      frame_open = r != 0;  // 0: a frame ended and is fully flushed
      if (ob.pos == before_out && ib.pos == before_in && in_pos == in_len && in_eof) {
        if (frame_open) truncated("zstd");
        break;
      }
    }
    return ob.pos;
  }
};

Decompressor::Decompressor(ReadFn read, size_t in_size) : s_(std::make_unique<State>()) {
  s_->read = std::move(read);
  s_->cap = std::max<size_t>(in_size, 4096);
  s_->in = std::make_unique_for_overwrite<char[]>(s_->cap);
}

Decompressor::~Decompressor() = default;

Compression Decompressor::compression() {
  if (!s_->detected) s_->detect();
  return s_->kind;
}

uint64_t Decompressor::compressed_offset() const { return s_->offset(); }

size_t Decompressor::read(char* buf, size_t len) {
  switch (compression()) {
    case Compression::gzip:
      return s_->read_gzip(buf, len);
    case Compression::zstd:
      return s_->read_zstd(buf, len);
    case Compression::none:
      break;
  }
  return s_->read_plain(buf, len);
}

}  // namespace berth::image
