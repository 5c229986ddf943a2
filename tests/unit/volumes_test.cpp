// Volumes: the store (create/find/list/remove, names, options, users), copy-up (what it keeps,
// never merging, crash resume, image symlinks that point at the host) and reconciliation of
// crashed creates and removes. Needs root (owners, device nodes, mounts).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <functional>
#include <memory>

#include "engine/copy_up.hpp"
#include "engine/schema.hpp"
#include "engine/volumes.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/sqlite.hpp"

using namespace berth;
using namespace berth::engine;

namespace {

struct stat lstat_of(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) throw_errno("lstat " + path);
  return st;
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

class VolumesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/berth-volumes-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    open_store();
  }
  void TearDown() override {
    store_.reset();
    db_.reset();
    // Tests may leave tmpfs or bind mounts under the root.
    ::umount2((root_ + "/volumes/tmpvol/_data").c_str(), MNT_DETACH);
    ::umount2((root_ + "/volumes/bindvol/_data").c_str(), MNT_DETACH);
    remove_tree(root_);
  }
  void open_store() {
    store_.reset();
    db_ = std::make_unique<sql::Db>(root_ + "/state.db");
    store_ = std::make_unique<VolumeStore>(*db_, root_);
  }
  void add_user(const std::string& container_id, const std::string& container_name, const std::string& volume) {
    sql::Stmt(*db_,
              "INSERT INTO containers(id, name, image_id, image_name, created_ns, state, config) "
              "VALUES(?, ?, 'sha256:x', 'img', 0, 'created', '{}')")
        .bind(1, container_id)
        .bind(2, container_name)
        .run();
    sql::Stmt(*db_, "INSERT INTO container_volumes(container_id, volume) VALUES(?, ?)")
        .bind(1, container_id)
        .bind(2, volume)
        .run();
  }
  // A fake container root filesystem under the test root.
  std::string make_rootfs() {
    std::string rootfs = root_ + "/rootfs";
    mkdir_p(rootfs + "/data/sub");
    return rootfs;
  }
  std::string state_of(const std::string& name) {
    sql::Stmt s(*db_, "SELECT state FROM volumes WHERE name = ?");
    s.bind(1, name);
    return s.step() ? s.text(0) : "";
  }

  std::string root_;
  std::unique_ptr<sql::Db> db_;
  std::unique_ptr<VolumeStore> store_;
};

TEST_F(VolumesTest, CreateFindListRemove) {
  Volume v = store_->create("data", "local", {}, {{"a", "1"}}, false);
  EXPECT_EQ(v.name, "data");
  EXPECT_EQ(v.driver, "local");
  EXPECT_EQ(v.mountpoint, root_ + "/volumes/data/_data");
  EXPECT_TRUE(S_ISDIR(lstat_of(v.mountpoint).st_mode));
  EXPECT_EQ(lstat_of(v.mountpoint).st_mode & 07777, 0755u);
  EXPECT_GT(v.created_ns, 0);

  auto found = store_->find("data");
  ASSERT_TRUE(found);
  EXPECT_EQ(found->labels, (std::map<std::string, std::string>{{"a", "1"}}));
  EXPECT_EQ(found->created_ns, v.created_ns);
  EXPECT_FALSE(store_->find("nope"));

  // An existing name comes back as it was (docker): labels of the second call are ignored.
  Volume again = store_->create("data", "", {}, {{"b", "2"}}, false);
  EXPECT_EQ(again.labels, found->labels);

  store_->create("other", "local", {}, {}, false);
  auto all = store_->list();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].name, "data");
  EXPECT_EQ(all[1].name, "other");

  write_file(v.mountpoint + "/f", "x", O_CREAT | O_WRONLY);
  store_->remove("data", false);
  EXPECT_FALSE(store_->find("data"));
  EXPECT_FALSE(path_exists(root_ + "/volumes/data"));
  EXPECT_EQ(error_of([&] { store_->remove("data", false); }), "get data: no such volume");
  EXPECT_EQ(error_of([&] { store_->remove("data", true); }), "");
}

TEST_F(VolumesTest, AnonymousVolumesGetRandomNamesAndDockersLabel) {
  Volume a = store_->create("", "local", {}, {}, true);
  Volume b = store_->create("", "local", {}, {}, true);
  EXPECT_EQ(a.name.size(), 64u);
  EXPECT_EQ(a.name.find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_NE(a.name, b.name);
  EXPECT_TRUE(a.anonymous);
  EXPECT_EQ(a.labels.count(kAnonymousLabel), 1u);
  EXPECT_TRUE(store_->find(a.name)->anonymous);
}

TEST_F(VolumesTest, NamesAreValidated) {
  for (const char* bad : {"../x", "a/b", ".x", "x", "-x", "a b", "/abs", "..", "a\\b"}) {
    EXPECT_THROW(store_->create(bad, "local", {}, {}, false), Error) << bad;
    EXPECT_FALSE(store_->find(bad)) << bad;
  }
  EXPECT_FALSE(path_exists(root_ + "/x"));
  EXPECT_FALSE(path_exists(root_ + "/volumes/a"));
  EXPECT_NE(error_of([&] { store_->create("a/b", "local", {}, {}, false); }).find("includes invalid characters"),
            std::string::npos);
  EXPECT_NO_THROW(store_->create("a.b_c-1", "local", {}, {}, false));
}

TEST_F(VolumesTest, DriverAndOptionsAreValidated) {
  EXPECT_NE(
      error_of([&] { store_->create("v1", "nfs-plugin", {}, {}, false); }).find("plugin \"nfs-plugin\" not found"),
      std::string::npos);
  EXPECT_EQ(error_of([&] {
              store_->create("v1", "local", {{"x", "1"}}, {}, false);
            }),
            "create v1: invalid option key: \"x\"");
  EXPECT_EQ(error_of([&] {
              store_->create("v1", "local", {{"type", "tmpfs"}}, {}, false);
            }),
            "create v1: missing required option: \"device\"");
  EXPECT_EQ(error_of([&] {
              store_->create("v1", "local", {{"o", "size=1m"}, {"device", "tmpfs"}}, {}, false);
            }),
            "create v1: missing required option: \"type\"");
  EXPECT_NE(error_of([&] {
              store_->create("v1", "local", {{"type", "none"}, {"device", "rel/dir"}, {"o", "bind"}}, {}, false);
            }).find("absolute device path"),
            std::string::npos);
  EXPECT_FALSE(store_->find("v1"));
  EXPECT_FALSE(path_exists(root_ + "/volumes/v1"));
  Volume t =
      store_->create("tmpvol", "local", {{"type", "tmpfs"}, {"device", "tmpfs"}, {"o", "size=1m,uid=1000"}}, {}, false);
  EXPECT_EQ(t.options.at("o"), "size=1m,uid=1000");
}

TEST_F(VolumesTest, InUseVolumesAreNotRemoved) {
  store_->create("shared", "local", {}, {}, false);
  add_user("c1id", "web", "shared");
  add_user("c2id", "db", "shared");
  EXPECT_EQ(store_->users("shared"), (std::vector<std::string>{"db", "web"}));
  EXPECT_EQ(store_->in_use(), (std::set<std::string>{"shared"}));
  EXPECT_EQ(error_of([&] { store_->remove("shared", false); }), "remove shared: volume is in use - [c1id, c2id]");
  EXPECT_EQ(error_of([&] { store_->remove("shared", true); }), "remove shared: volume is in use - [c1id, c2id]");
  EXPECT_TRUE(store_->find("shared"));
  EXPECT_TRUE(path_exists(root_ + "/volumes/shared/_data"));
  auto pruned = store_->prune(true, {});
  EXPECT_TRUE(pruned.removed.empty());
}

TEST_F(VolumesTest, AddUserClaimsOnlyReadyVolumes) {
  store_->create("vv", "local", {}, {}, false);
  store_->add_user("vv", "cid", false);
  store_->add_user("vv", "cid", false);  // idempotent
  EXPECT_EQ(store_->user_ids("vv"), std::vector<std::string>{"cid"});
  EXPECT_EQ(store_->users("vv"), std::vector<std::string>{"cid"});  // no container row: its ID
  EXPECT_EQ(error_of([&] { store_->add_user("gone", "cid", false); }), "get gone: no such volume");
  sql::Stmt(*db_, "UPDATE volumes SET state = 'removing' WHERE name = 'vv'").run();
  EXPECT_EQ(error_of([&] { store_->add_user("vv", "c2", false); }), "get vv: no such volume");
}

TEST_F(VolumesTest, PruneTakesAnonymousUnusedVolumesAndHonoursLabels) {
  Volume anon = store_->create("", "local", {}, {}, true);
  store_->create("named", "local", {}, {{"keep", "no"}}, false);
  store_->create("kept", "local", {}, {{"keep", "yes"}}, false);
  Volume used = store_->create("", "local", {}, {}, true);
  add_user("cid", "c", used.name);
  write_file(anon.mountpoint + "/f", std::string(1000, 'x'), O_CREAT | O_WRONLY);

  auto r = store_->prune(false, {});
  EXPECT_EQ(r.removed, std::vector<std::string>{anon.name});
  EXPECT_EQ(r.reclaimed, 1000);
  r = store_->prune(true, {LabelFilter::parse("keep=yes", true)});
  EXPECT_EQ(r.removed, std::vector<std::string>{"named"});
  r = store_->prune(true, {LabelFilter::parse("keep", false)});
  EXPECT_EQ(r.removed, std::vector<std::string>{"kept"});
  EXPECT_TRUE(store_->find(used.name));
}

TEST_F(VolumesTest, TmpfsVolumeIsMountedOnFirstUseAndUnmountedOnRemove) {
  Volume t = store_->create("tmpvol", "local", {{"type", "tmpfs"}, {"device", "tmpfs"}, {"o", "size=1m,mode=0750"}}, {},
                            false);
  std::string src = store_->mount_source(t);
  EXPECT_EQ(src, t.mountpoint);
  struct stat data_st = lstat_of(src), parent_st = lstat_of(root_ + "/volumes/tmpvol");
  EXPECT_NE(data_st.st_dev, parent_st.st_dev);
  EXPECT_EQ(data_st.st_mode & 07777, 0750u);
  write_file(src + "/f", "hello", O_CREAT | O_WRONLY);
  // A second use finds it mounted: same filesystem, same content.
  EXPECT_EQ(store_->mount_source(t), src);
  EXPECT_EQ(read_file(src + "/f"), "hello");
  store_->remove("tmpvol", false);
  EXPECT_FALSE(path_exists(root_ + "/volumes/tmpvol"));
}

TEST_F(VolumesTest, BindVolumeShowsHostDirAndRemovalKeepsHostData) {
  std::string host = root_ + "/hostdir";
  mkdir_p(host);
  write_file(host + "/precious", "data", O_CREAT | O_WRONLY);
  Volume b = store_->create("bindvol", "local", {{"type", "none"}, {"device", host}, {"o", "bind"}}, {}, false);
  EXPECT_EQ(read_file(store_->mount_source(b) + "/precious"), "data");
  store_->remove("bindvol", false);
  EXPECT_EQ(read_file(host + "/precious"), "data");  // unmounted before anything was deleted
}

// ---- copy-up ----

TEST_F(VolumesTest, CopyUpKeepsOwnersModesTimesXattrsLinksAndNodes) {
  std::string rootfs = make_rootfs();
  std::string d = rootfs + "/data";
  ASSERT_EQ(::chown(d.c_str(), 1234, 5678), 0);
  ASSERT_EQ(::chmod(d.c_str(), 0710), 0);
  write_file(d + "/file", "content", O_CREAT | O_WRONLY, 0640);
  ASSERT_EQ(::chown((d + "/file").c_str(), 1000, 1001), 0);
  ASSERT_EQ(::chmod((d + "/file").c_str(), 04755), 0);
  ASSERT_EQ(::setxattr((d + "/file").c_str(), "user.note", "hi", 2, 0), 0);
  struct timespec times[2] = {{1000000, 0}, {2000000, 500}};
  ASSERT_EQ(::utimensat(AT_FDCWD, (d + "/file").c_str(), times, 0), 0);
  ASSERT_EQ(::link((d + "/file").c_str(), (d + "/sub/hard").c_str()), 0);
  ASSERT_EQ(::symlink("../file", (d + "/sub/link").c_str()), 0);
  ASSERT_EQ(::lchown((d + "/sub/link").c_str(), 7, 8), 0);
  ASSERT_EQ(::mkfifo((d + "/fifo").c_str(), 0600), 0);
  ASSERT_EQ(::mknod((d + "/null").c_str(), S_IFCHR | 0666, makedev(1, 3)), 0);
  ASSERT_EQ(::chmod((d + "/null").c_str(), 0666), 0);  // past the umask
  ASSERT_EQ(::chmod((d + "/sub").c_str(), 0700), 0);
  ASSERT_EQ(::utimensat(AT_FDCWD, (d + "/sub").c_str(), times, 0), 0);

  Volume v = store_->create("vol", "local", {}, {}, false);
  store_->copy_up(v, rootfs, "/data");
  std::string m = v.mountpoint;
  struct stat root_st = lstat_of(m);
  EXPECT_EQ(root_st.st_uid, 1234u);
  EXPECT_EQ(root_st.st_gid, 5678u);
  EXPECT_EQ(root_st.st_mode & 07777, 0710u);
  struct stat f = lstat_of(m + "/file");
  EXPECT_EQ(read_file(m + "/file"), "content");
  EXPECT_EQ(f.st_uid, 1000u);
  EXPECT_EQ(f.st_gid, 1001u);
  EXPECT_EQ(f.st_mode & 07777, 04755u);
  EXPECT_EQ(f.st_mtim.tv_sec, 2000000);
  EXPECT_EQ(f.st_mtim.tv_nsec, 500);
  char buf[8] = {};
  EXPECT_EQ(::getxattr((m + "/file").c_str(), "user.note", buf, sizeof buf), 2);
  EXPECT_STREQ(buf, "hi");
  EXPECT_EQ(lstat_of(m + "/sub/hard").st_ino, f.st_ino);
  EXPECT_EQ(f.st_nlink, 2u);
  struct stat l = lstat_of(m + "/sub/link");
  EXPECT_TRUE(S_ISLNK(l.st_mode));
  EXPECT_EQ(l.st_uid, 7u);
  char target[64] = {};
  EXPECT_EQ(::readlink((m + "/sub/link").c_str(), target, sizeof target), 7);
  EXPECT_STREQ(target, "../file");
  EXPECT_TRUE(S_ISFIFO(lstat_of(m + "/fifo").st_mode));
  struct stat n = lstat_of(m + "/null");
  EXPECT_TRUE(S_ISCHR(n.st_mode));
  EXPECT_EQ(n.st_rdev, makedev(1, 3));
  EXPECT_EQ(n.st_mode & 07777, 0666u);
  struct stat sub = lstat_of(m + "/sub");
  EXPECT_EQ(sub.st_mode & 07777, 0700u);
  EXPECT_EQ(sub.st_mtim.tv_sec, 2000000);
  // Nothing of the protocol is left behind.
  EXPECT_FALSE(path_exists(m + "/" + kCopyUpStaging));
  EXPECT_FALSE(path_exists(root_ + "/volumes/vol/" + kCopyUpMarker));
}

TEST_F(VolumesTest, CopyUpNeverMergesIntoANonEmptyVolume) {
  std::string rootfs = make_rootfs();
  write_file(rootfs + "/data/from-image", "x", O_CREAT | O_WRONLY);
  Volume v = store_->create("vol", "local", {}, {}, false);
  write_file(v.mountpoint + "/mine", "user data", O_CREAT | O_WRONLY);
  ::chmod(v.mountpoint.c_str(), 0777);
  store_->copy_up(v, rootfs, "/data");
  EXPECT_FALSE(path_exists(v.mountpoint + "/from-image"));
  EXPECT_EQ(read_file(v.mountpoint + "/mine"), "user data");
  EXPECT_EQ(lstat_of(v.mountpoint).st_mode & 07777, 0777u);
  // A missing image path copies nothing and fails nothing.
  Volume w = store_->create("vol2", "local", {}, {}, false);
  EXPECT_NO_THROW(store_->copy_up(w, rootfs, "/not/there"));
  EXPECT_EQ(lstat_of(w.mountpoint).st_mode & 07777, 0755u);
}

TEST_F(VolumesTest, CopyUpCutShortIsRedoneNotTakenForComplete) {
  std::string rootfs = make_rootfs();
  write_file(rootfs + "/data/a", "A", O_CREAT | O_WRONLY);
  write_file(rootfs + "/data/b", "B", O_CREAT | O_WRONLY);
  Volume v = store_->create("vol", "local", {}, {}, false);
  std::string vdir = root_ + "/volumes/vol";
  // What a kill -9 in the copy leaves: the marker and a partial staging copy.
  write_file(vdir + "/" + kCopyUpMarker, "copying\n\n", O_CREAT | O_WRONLY);
  mkdir_p(v.mountpoint + "/" + kCopyUpStaging);
  write_file(v.mountpoint + "/" + kCopyUpStaging + "/a", "A-partial", O_CREAT | O_WRONLY);
  store_->copy_up(v, rootfs, "/data");
  EXPECT_EQ(read_file(v.mountpoint + "/a"), "A");
  EXPECT_EQ(read_file(v.mountpoint + "/b"), "B");
  EXPECT_FALSE(path_exists(v.mountpoint + "/" + kCopyUpStaging));
  EXPECT_FALSE(path_exists(vdir + "/" + kCopyUpMarker));
}

TEST_F(VolumesTest, CopyUpCutInTheMovePhaseIsFinished) {
  std::string rootfs = make_rootfs();
  Volume v = store_->create("vol", "local", {}, {}, false);
  std::string vdir = root_ + "/volumes/vol", staging = v.mountpoint + "/" + kCopyUpStaging;
  // Half moved: "a" is in the volume already, "b" still in staging; the copy itself was complete.
  write_file(vdir + "/" + kCopyUpMarker, "moving\n\n", O_CREAT | O_WRONLY);
  mkdir_p(staging);
  ::chown(staging.c_str(), 42, 43);
  ::chmod(staging.c_str(), 0711);
  write_file(v.mountpoint + "/a", "A", O_CREAT | O_WRONLY);
  write_file(staging + "/b", "B", O_CREAT | O_WRONLY);
  // mount_source (the engine's first call at start) finishes it too.
  store_->mount_source(v);
  EXPECT_EQ(read_file(v.mountpoint + "/a"), "A");
  EXPECT_EQ(read_file(v.mountpoint + "/b"), "B");
  EXPECT_EQ(lstat_of(v.mountpoint).st_uid, 42u);
  EXPECT_EQ(lstat_of(v.mountpoint).st_mode & 07777, 0711u);
  EXPECT_FALSE(path_exists(staging));
  EXPECT_FALSE(path_exists(vdir + "/" + kCopyUpMarker));
}

TEST_F(VolumesTest, CopyUpUndoNeverTouchesWhatIsOutsideStaging) {
  Volume v = store_->create("vol", "local", {}, {}, false);
  std::string vdir = root_ + "/volumes/vol";
  write_file(vdir + "/" + kCopyUpMarker, "copying\n\n", O_CREAT | O_WRONLY);
  mkdir_p(v.mountpoint + "/" + kCopyUpStaging);
  write_file(v.mountpoint + "/written-by-a-container", "keep", O_CREAT | O_WRONLY);
  store_->mount_source(v);
  EXPECT_EQ(read_file(v.mountpoint + "/written-by-a-container"), "keep");
  EXPECT_FALSE(path_exists(v.mountpoint + "/" + kCopyUpStaging));
}

TEST_F(VolumesTest, ImageSymlinksCannotPointTheCopyAtTheHost) {
  std::string rootfs = make_rootfs();
  // The host's /etc is not the image's: the copy must show the image's (empty) /etc, never the host's.
  remove_tree(rootfs + "/data");
  ASSERT_EQ(::symlink("/etc", (rootfs + "/data").c_str()), 0);
  mkdir_p(rootfs + "/etc");
  write_file(rootfs + "/etc/image-file", "img", O_CREAT | O_WRONLY);
  Volume v = store_->create("vol", "local", {}, {}, false);
  store_->copy_up(v, rootfs, "/data");
  EXPECT_FALSE(path_exists(v.mountpoint + "/passwd"));
  EXPECT_EQ(read_file(v.mountpoint + "/image-file"), "img");

  // Relative escapes and ".." stop at the root too.
  ASSERT_EQ(::symlink("../../../../../../etc", (rootfs + "/up").c_str()), 0);
  Volume w = store_->create("vol2", "local", {}, {}, false);
  store_->copy_up(w, rootfs, "/up");
  EXPECT_FALSE(path_exists(w.mountpoint + "/passwd"));
  Volume x = store_->create("vol3", "local", {}, {}, false);
  store_->copy_up(x, rootfs, "/../../etc");
  EXPECT_FALSE(path_exists(x.mountpoint + "/passwd"));

  // A symlink inside the copied tree stays a symlink: its target is not copied.
  mkdir_p(rootfs + "/tree");
  ASSERT_EQ(::symlink("/etc/passwd", (rootfs + "/tree/pw").c_str()), 0);
  Volume y = store_->create("vol4", "local", {}, {}, false);
  store_->copy_up(y, rootfs, "/tree");
  EXPECT_TRUE(S_ISLNK(lstat_of(y.mountpoint + "/pw").st_mode));
}

TEST_F(VolumesTest, CopyUpIntoASubpath) {
  std::string rootfs = make_rootfs();
  write_file(rootfs + "/data/a", "A", O_CREAT | O_WRONLY);
  Volume v = store_->create("vol", "local", {}, {}, false);
  mkdir_p(v.mountpoint + "/sp");
  store_->copy_up(v, rootfs, "/data", "sp");
  EXPECT_EQ(read_file(v.mountpoint + "/sp/a"), "A");
  // A symlinked subpath (a container could plant one) is refused.
  ASSERT_EQ(::symlink("/etc", (v.mountpoint + "/evil").c_str()), 0);
  EXPECT_THROW(store_->copy_up(v, rootfs, "/data", "evil"), Error);
}

// ---- crashes ----

TEST_F(VolumesTest, ReconcileFinishesOrUndoesCrashedCreates) {
  // Row written, nothing on disk: the row goes.
  sql::Stmt(*db_, "INSERT INTO volumes(name, created_ns, state) VALUES('c1', 1, 'creating')").run();
  // Row and the volume dir but no _data: both go.
  sql::Stmt(*db_, "INSERT INTO volumes(name, created_ns, state) VALUES('c2', 1, 'creating')").run();
  mkdir_p(root_ + "/volumes/c2");
  // Everything made but not marked ready: it becomes ready.
  sql::Stmt(*db_, "INSERT INTO volumes(name, created_ns, state) VALUES('c3', 1, 'creating')").run();
  mkdir_p(root_ + "/volumes/c3/_data");
  // A removal cut short: finished.
  sql::Stmt(*db_, "INSERT INTO volumes(name, created_ns, state) VALUES('r1', 1, 'removing')").run();
  mkdir_p(root_ + "/volumes/r1/_data/deep");
  store_->reconcile();
  EXPECT_EQ(state_of("c1"), "");
  EXPECT_EQ(state_of("c2"), "");
  EXPECT_FALSE(path_exists(root_ + "/volumes/c2"));
  EXPECT_EQ(state_of("c3"), "ready");
  EXPECT_EQ(state_of("r1"), "");
  EXPECT_FALSE(path_exists(root_ + "/volumes/r1"));
}

TEST_F(VolumesTest, OrphanDirectoriesAreRemovedOnlyWhenEmptyAndAdoptedOtherwise) {
  mkdir_p(root_ + "/volumes/empty1/_data");
  mkdir_p(root_ + "/volumes/empty2");
  mkdir_p(root_ + "/volumes/full/_data");
  write_file(root_ + "/volumes/full/_data/important", "x", O_CREAT | O_WRONLY);
  mkdir_p(root_ + "/volumes/weird/other");
  store_->reconcile();  // nlink says there are more dirs than rows
  EXPECT_FALSE(path_exists(root_ + "/volumes/empty1"));
  EXPECT_FALSE(path_exists(root_ + "/volumes/empty2"));
  EXPECT_EQ(read_file(root_ + "/volumes/full/_data/important"), "x");
  EXPECT_TRUE(store_->find("full"));
  EXPECT_TRUE(path_exists(root_ + "/volumes/weird/other"));
  EXPECT_FALSE(store_->find("weird"));
}

TEST_F(VolumesTest, CreateOfAHalfRemovedNameFinishesTheRemovalFirst) {
  store_->create("vv", "local", {}, {}, false);
  write_file(root_ + "/volumes/vv/_data/old", "old", O_CREAT | O_WRONLY);
  sql::Stmt(*db_, "UPDATE volumes SET state = 'removing' WHERE name = 'vv'").run();
  EXPECT_FALSE(store_->find("vv"));
  Volume v = store_->create("vv", "local", {}, {}, false);
  EXPECT_FALSE(path_exists(v.mountpoint + "/old"));
  EXPECT_EQ(state_of("vv"), "ready");
}

TEST_F(VolumesTest, RemoveTreeSameFsRefusesToCrossAMount) {
  std::string dir = root_ + "/x";
  mkdir_p(dir + "/m");
  ASSERT_EQ(::mount("tmpfs", (dir + "/m").c_str(), "tmpfs", 0, nullptr), 0);
  write_file(dir + "/m/f", "x", O_CREAT | O_WRONLY);
  EXPECT_THROW(remove_tree_same_fs(dir), Error);
  EXPECT_EQ(read_file(dir + "/m/f"), "x");
  ::umount2((dir + "/m").c_str(), MNT_DETACH);
  remove_tree_same_fs(dir);
  EXPECT_FALSE(path_exists(dir));
}

TEST(LabelFilterTest, Matches) {
  std::map<std::string, std::string> l{{"a", "1"}, {"b", ""}};
  EXPECT_TRUE(LabelFilter::parse("a", false).matches(l));
  EXPECT_TRUE(LabelFilter::parse("a=1", false).matches(l));
  EXPECT_FALSE(LabelFilter::parse("a=2", false).matches(l));
  EXPECT_TRUE(LabelFilter::parse("b=", false).matches(l));
  EXPECT_FALSE(LabelFilter::parse("c", false).matches(l));
  EXPECT_TRUE(LabelFilter::parse("c", true).matches(l));
  EXPECT_FALSE(LabelFilter::parse("a=1", true).matches(l));
  EXPECT_TRUE(LabelFilter::parse("a=2", true).matches(l));
}

// ---- kill -9 inside copy-up, for real ----

// Runs only as the child of CopyUpSurvivesAKillAtEveryStep (BERTH_TEST_COPYUP_ROOT set): a
// copy-up that $BERTH_FAULT kills part way.
TEST(VolumesCrashHelper, CopyUp) {
  const char* root = std::getenv("BERTH_TEST_COPYUP_ROOT");
  if (!root) GTEST_SKIP() << "helper for CopyUpSurvivesAKillAtEveryStep";
  sql::Db db(std::string(root) + "/state.db");
  VolumeStore store(db, root);
  store.copy_up(*store.find("vol"), std::string(root) + "/rootfs", "/data");
}

TEST_F(VolumesTest, CopyUpSurvivesAKillAtEveryStep) {
  std::string rootfs = make_rootfs();
  for (int i = 0; i < 5; i++) write_file(rootfs + "/data/f" + std::to_string(i), std::to_string(i), O_CREAT | O_WRONLY);
  write_file(rootfs + "/data/sub/deep", "deep", O_CREAT | O_WRONLY);
  ::chmod((rootfs + "/data").c_str(), 0751);
  for (const char* step : {"copy-up.marked", "copy-up.copied", "copy-up.synced", "copy-up.moving"}) {
    Volume v = store_->create("vol", "local", {}, {}, false);
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::setenv("BERTH_FAULT", step, 1);
      ::setenv("BERTH_TEST_COPYUP_ROOT", root_.c_str(), 1);
      const char* args[] = {"volumes_test", "--gtest_filter=VolumesCrashHelper.CopyUp", nullptr};
      ::execv("/proc/self/exe", const_cast<char* const*>(args));
      ::_exit(127);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << step << ": status " << status;
    EXPECT_TRUE(path_exists(root_ + "/volumes/vol/" + kCopyUpMarker)) << step;
    // The next copy-up finishes or redoes it: the whole tree, once, and nothing of the protocol.
    store_->copy_up(v, rootfs, "/data");
    for (int i = 0; i < 5; i++)
      EXPECT_EQ(read_file(v.mountpoint + "/f" + std::to_string(i)), std::to_string(i)) << step;
    EXPECT_EQ(read_file(v.mountpoint + "/sub/deep"), "deep") << step;
    EXPECT_EQ(lstat_of(v.mountpoint).st_mode & 07777, 0751u) << step;
    EXPECT_FALSE(path_exists(v.mountpoint + "/" + kCopyUpStaging)) << step;
    EXPECT_FALSE(path_exists(root_ + "/volumes/vol/" + kCopyUpMarker)) << step;
    store_->remove("vol", false);
  }
}

}  // namespace
