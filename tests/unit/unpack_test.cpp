// Layer unpacking: tar streams built in memory (libarchive's writer), optionally gzip- or
// zstd-compressed, unpacked into a temp dir and checked on disk. Malicious layers must be
// refused naming the entry, with nothing outside the layer directory touched.
#include "image/unpack.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/capability.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "image/decompress.hpp"
#include "image/digest.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"

namespace img = berth::image;
namespace fs = std::filesystem;

namespace {

#define REQUIRE_ROOT() \
  if (::geteuid() != 0) GTEST_SKIP() << "needs root (chown, mknod, trusted.* xattrs)"

constexpr time_t kMtime = 1600000000;

struct Entry {
  std::string name;
  mode_t type = AE_IFREG;
  mode_t perm = 0644;
  std::string data;
  std::string symlink;   // target, for AE_IFLNK
  std::string hardlink;  // target name, for a hardlink entry
  int64_t uid = 0, gid = 0;
  time_t mtime = kMtime;
  long mtime_nsec = 0;
  unsigned dev_major = 0, dev_minor = 0;
  std::vector<std::pair<std::string, std::string>> xattrs;
  int64_t sparse_size = -1;                         // logical size when sparse
  std::vector<std::pair<int64_t, int64_t>> sparse;  // data regions (offset, length)
};

Entry file(std::string name, std::string data, mode_t perm = 0644) {
  Entry e;
  e.name = std::move(name);
  e.data = std::move(data);
  e.perm = perm;
  return e;
}
Entry dir(std::string name, mode_t perm = 0755) {
  Entry e;
  e.name = std::move(name);
  e.type = AE_IFDIR;
  e.perm = perm;
  return e;
}
Entry symlink(std::string name, std::string target) {
  Entry e;
  e.name = std::move(name);
  e.type = AE_IFLNK;
  e.perm = 0777;
  e.symlink = std::move(target);
  return e;
}
Entry hardlink(std::string name, std::string target) {
  Entry e;
  e.name = std::move(name);
  e.hardlink = std::move(target);
  return e;
}

la_ssize_t append_cb(struct archive*, void* client, const void* buf, size_t len) {
  static_cast<std::string*>(client)->append(static_cast<const char*>(buf), len);
  return static_cast<la_ssize_t>(len);
}

// A pax tar (padded to 10240-byte blocks, as GNU tar and libarchive write them).
std::string make_tar(const std::vector<Entry>& entries) {
  std::string out;
  struct archive* a = archive_write_new();
  archive_write_set_format_pax(a);
  if (archive_write_open(a, &out, nullptr, append_cb, nullptr) != ARCHIVE_OK) throw berth::Error("archive open");
  for (const Entry& en : entries) {
    struct archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, en.name.c_str());
    archive_entry_set_filetype(e, en.type);
    archive_entry_set_perm(e, en.perm);
    archive_entry_set_uid(e, en.uid);
    archive_entry_set_gid(e, en.gid);
    archive_entry_set_mtime(e, en.mtime, en.mtime_nsec);
    if (en.type == AE_IFLNK) archive_entry_set_symlink(e, en.symlink.c_str());
    if (!en.hardlink.empty()) archive_entry_set_hardlink(e, en.hardlink.c_str());
    if (en.type == AE_IFCHR || en.type == AE_IFBLK) {
      archive_entry_set_rdevmajor(e, en.dev_major);
      archive_entry_set_rdevminor(e, en.dev_minor);
    }
    for (const auto& [k, v] : en.xattrs) archive_entry_xattr_add_entry(e, k.c_str(), v.data(), v.size());
    std::string data = en.data;
    if (en.sparse_size >= 0) {
      for (auto [off, len] : en.sparse) archive_entry_sparse_add_entry(e, off, len);
      archive_entry_set_size(e, en.sparse_size);
    } else {
      archive_entry_set_size(e, en.type == AE_IFREG && en.hardlink.empty() ? static_cast<int64_t>(data.size()) : 0);
    }
    if (archive_write_header(a, e) < ARCHIVE_WARN) throw berth::Error(archive_error_string(a));
    if (!data.empty() && archive_write_data(a, data.data(), data.size()) < 0)
      throw berth::Error(archive_error_string(a));
    archive_entry_free(e);
  }
  archive_write_close(a);
  archive_write_free(a);
  return out;
}

// A pax tar written by hand, as Go's archive/tar (Docker, BuildKit) writes one: the name in a
// "path" record without hdrcharset, whatever its bytes.
std::string pax_tar_with_path(const std::string& path, const std::string& data) {
  auto header = [](const std::string& name, size_t size, char type) {
    std::string h(512, '\0');
    auto put = [&](size_t at, size_t width, const std::string& v) { h.replace(at, v.size(), v.substr(0, width)); };
    auto octal = [](uint64_t v, int width) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%0*llo", width - 1, static_cast<unsigned long long>(v));
      return std::string(buf);
    };
    put(0, 100, name);
    put(100, 8, octal(0644, 8));
    put(108, 8, octal(0, 8));
    put(116, 8, octal(0, 8));
    put(124, 12, octal(size, 12));
    put(136, 12, octal(kMtime, 12));
    h[156] = type;
    put(257, 6, std::string("ustar\0", 6));
    put(263, 2, "00");
    h.replace(148, 8, "        ");
    unsigned sum = 0;
    for (unsigned char c : h) sum += c;
    put(148, 8, octal(sum, 7) + '\0');
    return h;
  };
  auto pad = [](std::string s) { return s + std::string((512 - s.size() % 512) % 512, '\0'); };
  std::string body = "path=" + path + "\n";
  size_t len = body.size() + 2;
  while (std::to_string(len).size() + 1 + body.size() != len) len++;
  std::string record = std::to_string(len) + " " + body;
  return header("PaxHeaders/x", record.size(), 'x') + pad(record) + header("placeholder", data.size(), '0') +
         pad(data) + std::string(1024, '\0');
}

std::string gzip(std::string_view in) {
  z_stream zs{};
  if (deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) throw berth::Error("deflateInit2");
  std::string out(deflateBound(&zs, in.size()), '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  if (deflate(&zs, Z_FINISH) != Z_STREAM_END) throw berth::Error("deflate");
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

std::string zstd(std::string_view in) {
  std::string out(ZSTD_compressBound(in.size()), '\0');
  size_t n = ZSTD_compress(out.data(), out.size(), in.data(), in.size(), 3);
  if (ZSTD_isError(n)) throw berth::Error("zstd");
  out.resize(n);
  return out;
}

// Feeds (a copy of) a string in chunks of at most `chunk` bytes (small ones exercise the buffering).
img::ReadFn reader(std::string data, size_t chunk = SIZE_MAX) {
  auto src = std::make_shared<std::pair<std::string, size_t>>(std::move(data), 0);
  return [src, chunk](char* buf, size_t len) {
    auto& [d, pos] = *src;
    size_t n = std::min({len, chunk, d.size() - pos});
    std::memcpy(buf, d.data() + pos, n);
    pos += n;
    return n;
  };
}

class ScratchDir {
 public:
  ScratchDir() {
    char tmpl[] = "/tmp/berth-unpack-test-XXXXXX";
    if (!::mkdtemp(tmpl)) berth::throw_errno("mkdtemp");
    path_ = tmpl;
  }
  ~ScratchDir() { berth::remove_tree(path_); }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(std::string_view rel) const { return berth::path_join(path_, rel); }

 private:
  std::string path_;
};

struct stat lstat_or_fail(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) ADD_FAILURE() << "lstat " << path << ": " << std::strerror(errno);
  return st;
}

std::string xattr(const std::string& path, const char* name) {
  char buf[256];
  ssize_t n = ::lgetxattr(path.c_str(), name, buf, sizeof buf);
  return n < 0 ? "<" + std::string(std::strerror(errno)) + ">" : std::string(buf, static_cast<size_t>(n));
}

// Everything under a directory: relative path → type, mode, size, link target or content.
std::map<std::string, std::string> snapshot(const std::string& root) {
  std::map<std::string, std::string> out;
  for (const auto& ent : fs::recursive_directory_iterator(root)) {
    const std::string p = ent.path().string();
    struct stat st = lstat_or_fail(p);
    std::string desc = std::to_string(st.st_mode) + ":" + std::to_string(st.st_nlink) + ":";
    if (S_ISREG(st.st_mode)) desc += berth::read_file(p);
    if (S_ISLNK(st.st_mode)) desc += fs::read_symlink(ent.path()).string();
    out[p.substr(root.size())] = desc;
  }
  return out;
}

// A sandbox holding an empty layer directory "dest" and "outside/file", which no layer
// may reach.
class Sandbox {
 public:
  Sandbox() {
    berth::mkdir_p(dest());
    berth::mkdir_p(outside());
    berth::write_file(outside() + "/file", "original");
    before_ = snapshot_outside();
  }
  std::string dest() const { return dir_ / "dest"; }
  std::string outside() const { return dir_ / "outside"; }
  // The sandbox minus the layer directory.
  std::map<std::string, std::string> snapshot_outside() const {
    auto all = snapshot(dir_.path());
    std::erase_if(all, [](const auto& kv) { return kv.first == "/dest" || kv.first.starts_with("/dest/"); });
    return all;
  }
  bool outside_untouched() const { return snapshot_outside() == before_; }

  // Unpacking must fail; returns the message.
  std::string refused(const std::string& stream) const {
    try {
      img::unpack_layer(reader(stream), dest());
    } catch (const berth::Error& e) {
      return e.what();
    }
    ADD_FAILURE() << "layer was accepted";
    return "";
  }

 private:
  ScratchDir dir_;
  std::map<std::string, std::string> before_;
};

bool contains(const std::string& s, std::string_view part) { return s.find(part) != std::string::npos; }

// --- Decompressor ---

std::string drain(img::Decompressor& d, size_t chunk = 65536) {
  std::string out;
  std::string buf(chunk, '\0');
  while (size_t n = d.read(buf.data(), buf.size())) out.append(buf, 0, n);
  return out;
}

std::string random_bytes(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::string out(n, '\0');
  // Half random, half repetitive: compressible but not trivially.
  for (size_t i = 0; i < n; i++) out[i] = static_cast<char>((i / 4096) % 2 ? rng() : 'a' + i % 7);
  return out;
}

TEST(Decompress, PlainPassesThrough) {
  std::string data = random_bytes(3'000'000, 1);
  img::Decompressor d(reader(data, 3));
  EXPECT_EQ(d.compression(), img::Compression::none);
  EXPECT_EQ(drain(d), data);
  EXPECT_EQ(d.compressed_offset(), data.size());
  img::Decompressor empty(reader(""));
  EXPECT_EQ(drain(empty), "");
}

TEST(Decompress, GzipMultiMember) {
  std::string a = random_bytes(2'500'000, 2), b = random_bytes(100'000, 3);
  std::string stream = gzip(a) + gzip(b) + gzip("");
  for (size_t chunk : {size_t{1} << 30, size_t{1}, size_t{4093}}) {
    img::Decompressor d(reader(stream, chunk), 65536);
    EXPECT_EQ(d.compression(), img::Compression::gzip);
    EXPECT_EQ(drain(d, 100'000), a + b) << "chunk " << chunk;
    EXPECT_EQ(d.compressed_offset(), stream.size());
  }
}

TEST(Decompress, ZstdMultiFrame) {
  std::string a = random_bytes(2'500'000, 4), b = random_bytes(50'000, 5);
  std::string stream = zstd(a) + zstd(b);
  img::Decompressor d(reader(stream, 777), 65536);
  EXPECT_EQ(d.compression(), img::Compression::zstd);
  EXPECT_EQ(drain(d, 3), a + b);
}

TEST(Decompress, TruncatedAndCorruptStreamsThrow) {
  std::string data = random_bytes(500'000, 6);
  std::string gz = gzip(data), zs = zstd(data);
  auto fails = [](const std::string& stream, std::string_view want) {
    img::Decompressor d(reader(stream));
    try {
      drain(d);
    } catch (const berth::Error& e) {
      EXPECT_TRUE(contains(e.what(), want)) << e.what();
      return;
    }
    ADD_FAILURE() << "no error, want " << want;
  };
  fails(gz.substr(0, gz.size() - 5), "gzip stream truncated");
  fails(gz.substr(0, gz.size() / 2), "gzip stream truncated");
  fails(zs.substr(0, zs.size() - 1), "zstd stream truncated");
  fails(gz + "garbage!", "gzip stream corrupt at byte " + std::to_string(gz.size()));
  fails(zs + "garbage!", "zstd stream corrupt");
  std::string bad = gz;
  bad[bad.size() / 2] ^= 0x55;
  // A flipped byte in a stored block's length reads as a stream cut short; elsewhere it fails the
  // CRC: either way the stream is refused.
  fails(bad, "gzip stream ");
  std::string bad_crc = gz;
  bad_crc[bad_crc.size() - 6] ^= 0x55;
  fails(bad_crc, "gzip stream corrupt at byte");
}

// --- Unpacking ---

TEST(Unpack, FilesDirsOwnersModesTimes) {
  REQUIRE_ROOT();
  std::string big = random_bytes(3'500'000, 7);
  Entry d = dir("d/", 0750);
  d.uid = 1000;
  d.gid = 1001;
  d.mtime = kMtime - 100;
  d.mtime_nsec = 123456789;
  Entry f = file("d/f", "hello", 0640);
  f.uid = 1234;
  f.gid = 5678;
  f.mtime_nsec = 987654321;
  Entry suid = file("./d/suid", "#!/bin/sh\n", 04755);
  suid.gid = 50;
  Entry sgid_dir = dir("./sgid/", 02775);
  std::string tar = make_tar({d, f, suid, sgid_dir, file("big", big, 0600), file("empty", ""),
                              file("implicit/parents/x", "y"), file("d//g", "g")});
  ScratchDir dest;
  img::UnpackResult r = img::unpack_layer(reader(tar), dest.path());
  EXPECT_EQ(r.diff_id, img::sha256_digest(tar));
  EXPECT_EQ(r.tar_bytes, tar.size());
  EXPECT_EQ(r.content_bytes, 5 + 10 + big.size() + 1 + 1);
  EXPECT_EQ(r.compression, img::Compression::none);

  struct stat st = lstat_or_fail(dest / "d");
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0750u);
  EXPECT_EQ(st.st_uid, 1000u);
  EXPECT_EQ(st.st_gid, 1001u);
  EXPECT_EQ(st.st_mtim.tv_sec, kMtime - 100) << "directory mtime must survive its entries";
  EXPECT_EQ(st.st_mtim.tv_nsec, 123456789);

  st = lstat_or_fail(dest / "d/f");
  EXPECT_EQ(berth::read_file(dest / "d/f"), "hello");
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  EXPECT_EQ(st.st_uid, 1234u);
  EXPECT_EQ(st.st_gid, 5678u);
  EXPECT_EQ(st.st_mtim.tv_sec, kMtime);
  EXPECT_EQ(st.st_mtim.tv_nsec, 987654321);

  st = lstat_or_fail(dest / "d/suid");
  EXPECT_EQ(st.st_mode & 07777, 04755u) << "setuid must survive chown";
  EXPECT_EQ(st.st_gid, 50u);
  EXPECT_EQ(lstat_or_fail(dest / "sgid").st_mode & 07777, 02775u);
  EXPECT_EQ(berth::read_file(dest / "big"), big);
  EXPECT_EQ(lstat_or_fail(dest / "empty").st_size, 0);
  EXPECT_EQ(berth::read_file(dest / "d/g"), "g");
  EXPECT_EQ(berth::read_file(dest / "implicit/parents/x"), "y");
  EXPECT_EQ(lstat_or_fail(dest / "implicit").st_mode & 07777, 0755u);
}

TEST(Unpack, LinksFifosAndDevices) {
  REQUIRE_ROOT();
  Entry fifo;
  fifo.name = "run/fifo";
  fifo.type = AE_IFIFO;
  fifo.perm = 0620;
  Entry null;
  null.name = "dev/null";
  null.type = AE_IFCHR;
  null.perm = 0666;
  null.dev_major = 1;
  null.dev_minor = 3;
  Entry blk;
  blk.name = "dev/loop9";
  blk.type = AE_IFBLK;
  blk.perm = 0660;
  blk.gid = 6;
  blk.dev_major = 7;
  blk.dev_minor = 9;
  Entry abs_link = symlink("etc/abs", "/etc/passwd");
  abs_link.uid = 33;
  abs_link.mtime = kMtime - 5;
  std::string tar =
      make_tar({file("etc/passwd", "root:x:0:0::/root:/bin/sh\n"), abs_link, symlink("etc/rel", "../etc/./passwd"),
                hardlink("etc/passwd-", "etc/passwd"), hardlink("./etc/passwd2", "./etc/passwd"), fifo, null, blk});
  ScratchDir dest;
  img::unpack_layer(reader(tar), dest.path());

  EXPECT_EQ(fs::read_symlink(dest / "etc/abs"), "/etc/passwd");
  EXPECT_EQ(fs::read_symlink(dest / "etc/rel"), "../etc/./passwd");
  struct stat st = lstat_or_fail(dest / "etc/abs");
  EXPECT_EQ(st.st_uid, 33u);
  EXPECT_EQ(st.st_mtim.tv_sec, kMtime - 5);
  struct stat orig = lstat_or_fail(dest / "etc/passwd");
  EXPECT_EQ(orig.st_nlink, 3u);
  EXPECT_EQ(lstat_or_fail(dest / "etc/passwd-").st_ino, orig.st_ino);
  EXPECT_EQ(lstat_or_fail(dest / "etc/passwd2").st_ino, orig.st_ino);

  st = lstat_or_fail(dest / "run/fifo");
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0620u);
  st = lstat_or_fail(dest / "dev/null");
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  EXPECT_EQ(st.st_rdev, makedev(1, 3));
  EXPECT_EQ(st.st_mode & 07777, 0666u);
  st = lstat_or_fail(dest / "dev/loop9");
  EXPECT_TRUE(S_ISBLK(st.st_mode));
  EXPECT_EQ(st.st_rdev, makedev(7, 9));
  EXPECT_EQ(st.st_gid, 6u);
}

TEST(Unpack, XattrsAndFileCapabilities) {
  REQUIRE_ROOT();
  // CAP_NET_BIND_SERVICE, effective, as `setcap cap_net_bind_service=+ep` writes it.
  struct vfs_cap_data cap {};
  cap.magic_etc = VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE;
  cap.data[0].permitted = 1u << CAP_NET_BIND_SERVICE;
  std::string capv(reinterpret_cast<const char*>(&cap), XATTR_CAPS_SZ_2);

  Entry ping = file("bin/ping", "ELF", 04755);
  ping.uid = 0;
  ping.gid = 1000;  // the chown must not drop the capability: it is set afterwards
  ping.xattrs = {{"security.capability", capv}, {"user.note", "hi"}};
  Entry d = dir("data/");
  d.xattrs = {{"user.dir", "yes"}, {"trusted.overlay.redirect", "/etc"}};
  Entry l = symlink("link", "bin/ping");
  l.xattrs = {{"user.refused-on-symlinks", "x"}, {"trusted.t", "on-link"}};
  std::string tar = make_tar({ping, d, l});
  ScratchDir dest;
  img::unpack_layer(reader(tar), dest.path());

  EXPECT_EQ(xattr(dest / "bin/ping", "security.capability"), capv);
  EXPECT_EQ(xattr(dest / "bin/ping", "user.note"), "hi");
  EXPECT_EQ(lstat_or_fail(dest / "bin/ping").st_mode & 07777, 04755u);
  EXPECT_EQ(xattr(dest / "data", "user.dir"), "yes");
  EXPECT_EQ(xattr(dest / "data", "trusted.overlay.redirect"), "<No data available>")
      << "overlayfs' own xattrs are not taken from a layer";
  EXPECT_EQ(xattr(dest / "link", "trusted.t"), "on-link");
}

TEST(Unpack, WhiteoutsBecomeOverlayWhiteouts) {
  REQUIRE_ROOT();
  std::string tar =
      make_tar({dir("etc/"), file("etc/.wh.shadow", ""), file("var/lib/.wh..wh..opq", ""), file(".wh..wh.plnk", ""),
                file("tmp/junk/x", "x"), file("tmp/.wh.junk", ""), file("./.wh.gone", "")});
  ScratchDir dest;
  img::unpack_layer(reader(tar), dest.path());
  for (const char* wh : {"etc/shadow", "tmp/junk", "gone"}) {
    struct stat st = lstat_or_fail(dest / wh);
    EXPECT_TRUE(S_ISCHR(st.st_mode)) << wh;
    EXPECT_EQ(st.st_rdev, makedev(0, 0)) << wh;
  }
  EXPECT_EQ(xattr(dest / "var/lib", "trusted.overlay.opaque"), "y");
  EXPECT_FALSE(berth::path_exists(dest / "var/lib/.wh..wh..opq"));
  EXPECT_FALSE(berth::path_exists(dest / "etc/.wh.shadow"));
  EXPECT_FALSE(berth::path_exists(dest / ".wh..wh.plnk"));
  EXPECT_FALSE(berth::path_exists(dest / "plnk"));
}

TEST(Unpack, LaterEntriesReplaceEarlierOnes) {
  REQUIRE_ROOT();
  Entry d2 = dir("keep/", 0700);
  d2.mtime = kMtime - 7;
  std::string tar = make_tar({file("f", "one"), file("f", "two"), dir("d/"), file("d/inner", "x"),
                              file("d", "now a file"), file("x", "file"), dir("x/"), file("x/y", "z"), dir("keep/"),
                              file("keep/a", "a"), d2, symlink("s", "nowhere"), file("s", "regular")});
  ScratchDir dest;
  img::unpack_layer(reader(tar), dest.path());
  EXPECT_EQ(berth::read_file(dest / "f"), "two");
  EXPECT_EQ(berth::read_file(dest / "d"), "now a file");
  EXPECT_EQ(berth::read_file(dest / "x/y"), "z");
  EXPECT_EQ(berth::read_file(dest / "keep/a"), "a") << "a repeated directory keeps its contents";
  struct stat st = lstat_or_fail(dest / "keep");
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  EXPECT_EQ(st.st_mtim.tv_sec, kMtime - 7);
  EXPECT_EQ(berth::read_file(dest / "s"), "regular");
}

TEST(Unpack, NonAsciiAndSparse) {
  REQUIRE_ROOT();
  Entry sparse;
  sparse.name = "sparse";
  sparse.sparse_size = 4 << 20;
  sparse.sparse = {{0, 4096}, {2 << 20, 4096}};
  std::string logical(4 << 20, '\0');
  for (int i = 0; i < 4096; i++) logical[i] = logical[(2 << 20) + i] = static_cast<char>('A' + i % 26);
  sparse.data = logical;
  std::string tar = make_tar({file("caf\xc3\xa9/\xc3\xbc.txt", "utf8"), sparse});
  ScratchDir dest;
  img::UnpackResult r = img::unpack_layer(reader(tar), dest.path());
  EXPECT_EQ(berth::read_file(dest / "caf\xc3\xa9/\xc3\xbc.txt"), "utf8");
  EXPECT_EQ(berth::read_file(dest / "sparse"), logical);
  EXPECT_EQ(r.content_bytes, 4u + (4 << 20));

  // Names are bytes: UTF-8 or not, they arrive on disk unchanged.
  for (std::string name : {"d/caf\xc3\xa9-\xe6\x97\xa5\xe6\x9c\xac", "d/latin1-caf\xe9\xff"}) {
    ScratchDir dest2;
    img::unpack_layer(reader(pax_tar_with_path(name, "bytes")), dest2.path());
    EXPECT_EQ(berth::read_file(dest2 / name), "bytes") << name;
    EXPECT_FALSE(berth::path_exists(dest2 / "placeholder"));
  }
}

TEST(Unpack, DiffIdCoversTheUncompressedStream) {
  REQUIRE_ROOT();
  std::string tar = make_tar({file("a", random_bytes(1'500'000, 8)), dir("b/"), file("b/c", "c")});
  // Writers pad differently after the end-of-archive blocks; all of it is in the diff_id.
  std::string padded = tar + std::string(20480, '\0');
  std::string half = tar.substr(0, 700'000);
  struct Case {
    const char* what;
    std::string stream;
    std::string uncompressed;
    img::Compression kind;
  } cases[] = {
      {"plain", tar, tar, img::Compression::none},
      {"plain padded", padded, padded, img::Compression::none},
      {"gzip", gzip(tar), tar, img::Compression::gzip},
      {"gzip multi-member", gzip(half) + gzip(tar.substr(half.size())), tar, img::Compression::gzip},
      {"zstd", zstd(tar), tar, img::Compression::zstd},
      {"zstd multi-frame", zstd(half) + zstd(tar.substr(half.size())), tar, img::Compression::zstd},
  };
  for (const Case& c : cases) {
    for (size_t chunk : {SIZE_MAX, size_t{1000}}) {
      ScratchDir dest;
      img::UnpackResult r = img::unpack_layer(reader(c.stream, chunk), dest.path());
      EXPECT_EQ(r.diff_id, img::sha256_digest(c.uncompressed)) << c.what;
      EXPECT_EQ(r.tar_bytes, c.uncompressed.size()) << c.what;
      EXPECT_EQ(r.compression, c.kind) << c.what;
      EXPECT_EQ(berth::read_file(dest / "b/c"), "c") << c.what;
    }
  }
}

TEST(Unpack, EmptyLayersAndFd) {
  ScratchDir dest;
  // Docker's empty layer: two zero blocks.
  img::UnpackResult r = img::unpack_layer(reader(std::string(1024, '\0')), dest.path());
  EXPECT_EQ(r.diff_id, "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef");
  r = img::unpack_layer(reader(""), dest.path());
  EXPECT_EQ(r.diff_id, img::sha256_digest(""));
  EXPECT_TRUE(fs::is_empty(dest.path()));

  REQUIRE_ROOT();
  std::string tar = gzip(make_tar({file("via/fd", "fd!")}));
  ScratchDir src;
  berth::write_file(src / "layer.tar.gz", tar);
  berth::UniqueFd fd = berth::open_or_throw(src / "layer.tar.gz", O_RDONLY);
  ScratchDir dest2;
  r = img::unpack_layer_fd(fd.get(), dest2.path());
  EXPECT_EQ(berth::read_file(dest2 / "via/fd"), "fd!");
  EXPECT_EQ(r.compression, img::Compression::gzip);
}

// --- Malicious and broken layers ---

TEST(Unpack, RefusesDotDot) {
  Sandbox sb;
  std::string msg = sb.refused(make_tar({file("../escape", "x")}));
  EXPECT_TRUE(contains(msg, "layer entry \"../escape\"")) << msg;
  EXPECT_TRUE(contains(msg, "escapes the layer")) << msg;
  msg = sb.refused(make_tar({file("a/../../outside/file", "x")}));
  EXPECT_TRUE(contains(msg, "\"a/../../outside/file\"")) << msg;
  EXPECT_TRUE(sb.outside_untouched());
  EXPECT_FALSE(berth::path_exists(sb.dest() + "/../escape"));
}

TEST(Unpack, RefusesAbsolutePath) {
  Sandbox sb;
  std::string msg = sb.refused(make_tar({file(sb.outside() + "/abs", "x")}));
  EXPECT_TRUE(contains(msg, "layer entry \"" + sb.outside() + "/abs\"")) << msg;
  EXPECT_TRUE(contains(msg, "absolute")) << msg;
  EXPECT_TRUE(sb.outside_untouched());
}

TEST(Unpack, RefusesWritingThroughSymlink) {
  REQUIRE_ROOT();
  Sandbox sb;
  std::string msg = sb.refused(make_tar({symlink("a", sb.outside()), file("a/x", "pwned")}));
  EXPECT_TRUE(contains(msg, "layer entry \"a/x\"")) << msg;
  EXPECT_TRUE(contains(msg, "symlink")) << msg;
  EXPECT_TRUE(sb.outside_untouched());
  EXPECT_FALSE(berth::path_exists(sb.outside() + "/x"));
}

TEST(Unpack, RefusesSymlinkChain) {
  REQUIRE_ROOT();
  Sandbox sb;
  std::string msg = sb.refused(make_tar({symlink("a", "b"), symlink("b", "../../outside"), file("a/x", "pwned")}));
  EXPECT_TRUE(contains(msg, "layer entry \"a/x\"")) << msg;
  EXPECT_TRUE(sb.outside_untouched());
}

TEST(Unpack, RefusesSymlinkReplacingDirectory) {
  REQUIRE_ROOT();
  Sandbox sb;
  // The directory "a" is the cached parent when the symlink replaces it.
  std::string msg =
      sb.refused(make_tar({dir("a/"), file("a/first", "1"), symlink("a", sb.outside()), file("a/x", "pwned")}));
  EXPECT_TRUE(contains(msg, "layer entry \"a/x\"")) << msg;
  EXPECT_TRUE(sb.outside_untouched());
}

TEST(Unpack, RefusesHardlinkOutside) {
  REQUIRE_ROOT();
  Sandbox sb;
  std::string msg = sb.refused(make_tar({hardlink("h", "../outside/file")}));
  EXPECT_TRUE(contains(msg, "layer entry \"h\"")) << msg;
  EXPECT_TRUE(contains(msg, "../outside/file")) << msg;
  msg = sb.refused(make_tar({hardlink("h", "/etc/passwd")}));
  EXPECT_TRUE(contains(msg, "layer entry \"h\"")) << msg;
  EXPECT_TRUE(contains(msg, "/etc/passwd")) << msg;
  msg = sb.refused(make_tar({symlink("s", sb.outside()), hardlink("h", "s/file")}));
  EXPECT_TRUE(contains(msg, "layer entry \"h\"")) << msg;
  EXPECT_TRUE(contains(msg, "symlink")) << msg;
  msg = sb.refused(make_tar({hardlink("h", "missing")}));
  EXPECT_TRUE(contains(msg, "not in the layer")) << msg;
  EXPECT_TRUE(sb.outside_untouched()) << "nlink of outside/file must stay 1";
}

TEST(Unpack, RefusesBadWhiteouts) {
  REQUIRE_ROOT();
  Sandbox sb;
  std::string msg = sb.refused(make_tar({file("sub/.wh..", "")}));
  EXPECT_TRUE(contains(msg, "layer entry \"sub/.wh..\"")) << msg;
  msg = sb.refused(make_tar({file(".wh.", "")}));
  EXPECT_TRUE(contains(msg, "layer entry \".wh.\"")) << msg;
  msg = sb.refused(make_tar({file(".wh.x", ""), hardlink("h", ".wh.x")}));
  EXPECT_TRUE(contains(msg, "layer entry \"h\"")) << msg;
  msg = sb.refused(make_tar({file(".wh.x", ""), hardlink("h", "x")}));
  EXPECT_TRUE(contains(msg, "whiteout")) << msg;
  EXPECT_TRUE(sb.outside_untouched());
}

TEST(Unpack, RefusesCorruptAndTruncatedStreams) {
  REQUIRE_ROOT();
  Sandbox sb;
  std::string tar = make_tar({file("a", random_bytes(200'000, 9)), file("b", "b")});
  std::string gz = gzip(tar);
  std::string bad = gz;
  bad[bad.size() / 2] ^= 0x55;
  std::string msg = sb.refused(bad);
  EXPECT_TRUE(contains(msg, "gzip stream corrupt at byte")) << msg;
  msg = sb.refused(gz.substr(0, gz.size() - 100));
  EXPECT_TRUE(contains(msg, "gzip stream truncated")) << msg;
  std::string zs = zstd(tar);
  msg = sb.refused(zs.substr(0, zs.size() / 2));
  EXPECT_TRUE(contains(msg, "zstd stream truncated")) << msg;
  // Plain tar cut inside a file's data.
  msg = sb.refused(tar.substr(0, 100'000));
  EXPECT_TRUE(contains(msg, "layer entry \"a\"")) << msg;
  EXPECT_TRUE(contains(msg, "runcated")) << msg;
  msg = sb.refused(std::string(512, 'x') + tar);
  EXPECT_TRUE(contains(msg, "layer: tar:")) << msg;
  EXPECT_TRUE(sb.outside_untouched());
}

}  // namespace
