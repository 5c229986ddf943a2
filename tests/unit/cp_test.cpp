// cp's path resolution (in the tree's scope, through mounts) and diff's reading of an upper dir.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>

#include "engine/cp.hpp"
#include "engine/diff.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"

namespace berth::engine {
namespace {

class CpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/berth-cp-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    root_ = dir_ + "/root";
    mkdir_p(root_ + "/etc");
    mkdir_p(dir_ + "/vol");
    mkdir_p(dir_ + "/outside");
    write(root_ + "/etc/passwd", "root\n");
    write(dir_ + "/outside/secret", "HOST\n");
    write(dir_ + "/vol/v", "volume\n");
    link("/etc", root_ + "/abs");
    link("../../../../etc", root_ + "/rel");
    link("loop", root_ + "/loop");
    link(dir_ + "/outside", root_ + "/out");
    link("data", root_ + "/d");
    link("/etc/passwd", dir_ + "/vol/back");
  }
  void TearDown() override { remove_tree(dir_); }

  static void write(const std::string& path, const std::string& text) { std::ofstream(path) << text; }
  static void link(const std::string& target, const std::string& path) {
    ASSERT_EQ(::symlink(target.c_str(), path.c_str()), 0) << path;
  }
  cp::Tree tree() { return cp::Tree(root_, {{"/data", dir_ + "/vol", false}}, false, "container t"); }

  std::string dir_, root_;
};

TEST_F(CpTest, ResolvesSymlinksInScope) {
  auto t = tree();
  auto l = t.resolve("/abs/passwd", false);
  EXPECT_TRUE(l.exists);
  EXPECT_EQ(l.path, "/etc/passwd");
  EXPECT_EQ(t.resolve("rel/passwd", false).path, "/etc/passwd");
  EXPECT_EQ(t.resolve("/../../../etc/./passwd", false).path, "/etc/passwd");
  // A link to a host path means that path in the container, where it does not exist.
  EXPECT_THROW(t.resolve("/out/secret", false), Error);
  auto out = t.resolve("/out", false);
  EXPECT_TRUE(out.exists);
  EXPECT_TRUE(S_ISLNK(out.st.st_mode));
  try {
    t.resolve("/loop/x", false);
    FAIL() << "a symlink loop resolved";
  } catch (const Error& e) {
    EXPECT_EQ(e.errnum(), ELOOP);
  }
}

TEST_F(CpTest, MissingLastComponentGivesItsParent) {
  auto t = tree();
  auto l = t.resolve("/abs/new", true);
  EXPECT_FALSE(l.exists);
  EXPECT_EQ(l.path, "/etc/new");
  EXPECT_EQ(l.name, "new");
  EXPECT_TRUE(l.parent);
  try {
    t.resolve("/nope/new", true);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "Could not find the file /nope/new in container t");
  }
  EXPECT_THROW(t.resolve("/etc/passwd/x", true), Error);
}

TEST_F(CpTest, MountsContinueInTheirSource) {
  auto t = tree();
  auto l = t.resolve("/data/v", false);
  ASSERT_TRUE(l.exists);
  EXPECT_TRUE(l.in_mount);
  EXPECT_EQ(t.resolve("/d/v", false).path, "/data/v");
  // An absolute link inside the mount starts again at the container's root.
  EXPECT_EQ(t.resolve("/data/back", true).path, "/etc/passwd");
  EXPECT_FALSE(t.resolve("/data/back", true).in_mount);
}

TEST_F(CpTest, CopyInAndOutStayInScope) {
  auto t = tree();
  mkdir_p(dir_ + "/host");
  write(dir_ + "/host/f", "payload\n");
  cp::Options o;
  // Through a symlinked parent pointing "out": lands in the tree's /etc, not the host.
  cp::copy_to(dir_ + "/host/f", t, "/rel/f", "t:/rel/f", o, -1);
  EXPECT_TRUE(path_exists(root_ + "/etc/f"));
  EXPECT_THROW(cp::copy_to(dir_ + "/host/f", t, "/out/f", "t:/out/f", o, -1), Error);
  EXPECT_FALSE(path_exists(dir_ + "/outside/f"));
  cp::copy_to(dir_ + "/host/f", t, "/data/", "t:/data/", o, -1);
  EXPECT_EQ(read_file(dir_ + "/vol/f"), "payload\n");
  cp::copy_from(t, "/etc", dir_ + "/copy", o, -1);
  EXPECT_EQ(read_file(dir_ + "/copy/passwd"), "root\n");
  EXPECT_THROW(cp::copy_from(t, "/out/secret", dir_ + "/copy2", o, -1), Error);
  o.follow_link = true;
  EXPECT_THROW(cp::copy_from(t, "/out", dir_ + "/copy3", o, -1), Error);
  EXPECT_FALSE(path_exists(dir_ + "/copy3"));
}

TEST_F(CpTest, DiffReadsWhiteoutsAndOpaqueDirs) {
  if (::geteuid() != 0) GTEST_SKIP() << "whiteouts and trusted.* xattrs need root";
  std::string lower = dir_ + "/lower", upper = dir_ + "/upper";
  mkdir_p(lower + "/etc");
  mkdir_p(lower + "/opq/old");
  write(lower + "/etc/gone", "x");
  write(lower + "/etc/kept", "x");
  mkdir_p(upper + "/etc");
  mkdir_p(upper + "/opq");
  mkdir_p(upper + "/new");
  write(upper + "/new/file", "x");
  write(upper + "/etc/kept", "y");
  ASSERT_EQ(::mknod((upper + "/etc/gone").c_str(), S_IFCHR | 0, makedev(0, 0)), 0);
  ASSERT_EQ(::setxattr((upper + "/opq").c_str(), "trusted.overlay.opaque", "y", 1, 0), 0);
  write(upper + "/hosts", "");
  auto changes = container_changes(upper, {lower}, {"/hosts"});
  std::string out;
  for (const auto& c : changes) out += std::string(1, c.kind) + " " + c.path + "\n";
  EXPECT_EQ(out, "C /etc\nD /etc/gone\nC /etc/kept\nA /new\nA /new/file\nD /opq\n");
}

}  // namespace
}  // namespace berth::engine
