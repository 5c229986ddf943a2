// Overlay root filesystems: layer order, whiteouts, opaque dirs, many layers. Needs root.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <string>

#include "storage/overlay.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"

using namespace berth;

namespace {

class OverlayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root";
    char tmpl[] = "/tmp/berth-overlay-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    if (dir_.empty()) return;
    storage::unmount_overlay(dir_ + "/merged");
    remove_tree(dir_);
  }
  std::string mk(const std::string& rel) {
    mkdir_p(dir_ + "/" + rel);
    return dir_ + "/" + rel;
  }
  std::string dir_;
};

TEST_F(OverlayTest, LayersWhiteoutsAndOpaqueDirs) {
  std::string l0 = mk("l0"), l1 = mk("l1"), up = mk("upper"), work = mk("work"), merged = mk("merged");
  write_file(l0 + "/a", "zero", O_CREAT | O_WRONLY);
  write_file(l0 + "/keep", "k", O_CREAT | O_WRONLY);
  mkdir_p(l0 + "/d");
  write_file(l0 + "/d/x", "x", O_CREAT | O_WRONLY);
  // l1 deletes a (whiteout) and replaces d's contents (opaque).
  ASSERT_EQ(mknod((l1 + "/a").c_str(), S_IFCHR | 0, makedev(0, 0)), 0);
  mkdir_p(l1 + "/d");
  ASSERT_EQ(setxattr((l1 + "/d").c_str(), "trusted.overlay.opaque", "y", 1, 0), 0);
  write_file(l1 + "/d/y", "y", O_CREAT | O_WRONLY);

  storage::mount_overlay({l1, l0}, up, work, merged);
  EXPECT_FALSE(path_exists(merged + "/a"));
  EXPECT_EQ(read_file(merged + "/keep"), "k");
  EXPECT_FALSE(path_exists(merged + "/d/x"));
  EXPECT_EQ(read_file(merged + "/d/y"), "y");
  write_file(merged + "/new", "n", O_CREAT | O_WRONLY);
  EXPECT_EQ(read_file(up + "/new"), "n");
  EXPECT_FALSE(path_exists(l0 + "/new"));
  storage::unmount_overlay(merged);
  EXPECT_FALSE(path_exists(merged + "/keep"));
}

TEST_F(OverlayTest, ManyLayersWithLongPathsExceedAPage) {
  std::vector<std::string> lowers;
  std::string base = mk("layers-with-a-rather-long-directory-name-to-make-the-mount-data-big");
  for (int i = 0; i < 150; i++) {
    std::string l = base + "/" + std::string(40, 'a' + (i % 26)) + std::to_string(i);
    mkdir_p(l);
    write_file(l + "/f" + std::to_string(i), std::to_string(i), O_CREAT | O_WRONLY);
    lowers.insert(lowers.begin(), l);  // top-most first
  }
  size_t total = 0;
  for (const auto& l : lowers) total += l.size() + 1;
  ASSERT_GT(total, static_cast<size_t>(getpagesize()));
  std::string up = mk("upper"), work = mk("work"), merged = mk("merged");
  storage::mount_overlay(lowers, up, work, merged);
  EXPECT_EQ(read_file(merged + "/f0"), "0");
  EXPECT_EQ(read_file(merged + "/f149"), "149");
}

TEST_F(OverlayTest, ReadOnlyWithoutUpper) {
  std::string l0 = mk("l0"), l1 = mk("l1"), merged = mk("merged");
  write_file(l0 + "/a", "a", O_CREAT | O_WRONLY);
  storage::mount_overlay({l1, l0}, "", "", merged);
  EXPECT_EQ(read_file(merged + "/a"), "a");
  EXPECT_THROW(write_file(merged + "/b", "b", O_CREAT | O_WRONLY), Error);
}

TEST_F(OverlayTest, MissingLayerIsAnErrorNamingIt) {
  std::string up = mk("upper"), work = mk("work"), merged = mk("merged");
  try {
    storage::mount_overlay({dir_ + "/nope"}, up, work, merged);
    FAIL() << "mounted a missing layer";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(dir_ + "/nope"), std::string::npos) << e.what();
  }
}

}  // namespace
