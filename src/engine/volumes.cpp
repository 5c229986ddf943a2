#include "engine/volumes.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <ctime>
#include <fstream>
#include <sstream>
#include <utility>

#include <nlohmann/json.hpp>

#include "engine/copy_up.hpp"
#include "engine/schema.hpp"
#include "storage/mount_spec.hpp"
#include "util/error.hpp"
#include "util/fault.hpp"
#include "util/fd.hpp"
#include "util/file_lock.hpp"
#include "util/fs.hpp"
#include "util/sqlite.hpp"

namespace berth::engine {

using nlohmann::json;

namespace {

int64_t now_ns() {
  struct timespec ts;
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

std::string random_hex64() {
  unsigned char bytes[32];
  size_t got = 0;
  while (got < sizeof bytes) {
    ssize_t n = ::getrandom(bytes + got, sizeof bytes - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw_errno("getrandom");
    got += static_cast<size_t>(n);
  }
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned char b : bytes) {
    out += hex[b >> 4];
    out += hex[b & 15];
  }
  return out;
}

std::string to_json(const std::map<std::string, std::string>& m) { return json(m).dump(); }

std::map<std::string, std::string> from_json(const std::string& text) {
  std::map<std::string, std::string> out;
  if (text == "{}") return out;  // most volumes: no parser for `volume ls` of thousands
  json j = json::parse(text, nullptr, false);
  if (!j.is_object()) return out;
  for (auto it = j.begin(); it != j.end(); ++it)
    if (it.value().is_string()) out[it.key()] = it.value().get<std::string>();
  return out;
}

void fsync_dir(const std::string& path) {
  UniqueFd fd = open_or_throw(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (::fsync(fd.get()) != 0) throw_errno("fsync " + path);
}

bool is_dir(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// An exclusive flock on a volume's directory: serialises mount_source, copy_up and removal of one
// volume across processes. The lock goes with the fd (and the directory with the volume).
class DirLock {
 public:
  explicit DirLock(const std::string& path) {
    fd_ = open_or_throw(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    while (::flock(fd_.get(), LOCK_EX) != 0)
      if (errno != EINTR) throw_errno("lock " + path);
  }

 private:
  UniqueFd fd_;
};

// Mount points (decoded) from /proc/self/mountinfo.
std::vector<std::string> mount_points() {
  std::ifstream in("/proc/self/mountinfo");
  if (!in) throw_errno("open /proc/self/mountinfo");
  std::vector<std::string> out;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string id, parent, devno, root, point;
    fields >> id >> parent >> devno >> root >> point;
    std::string decoded;
    for (size_t i = 0; i < point.size(); i++) {
      if (point[i] == '\\' && i + 3 < point.size()) {
        decoded += static_cast<char>(std::stoi(point.substr(i + 1, 3), nullptr, 8));
        i += 3;
      } else {
        decoded += point[i];
      }
    }
    out.push_back(decoded);
  }
  return out;
}

bool is_mount_point(const std::string& path) {
  struct statx stx;
  if (::statx(AT_FDCWD, path.c_str(), AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &stx) != 0) {
    if (errno == ENOENT) return false;
    throw_errno("statx " + path);
  }
  if (stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) return (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT) != 0;
  auto points = mount_points();
  return std::find(points.begin(), points.end(), path) != points.end();
}

// docker's mount.parseOptions: o's words that are mount(2) flags; the rest is filesystem data.
struct ParsedO {
  unsigned long flags = 0;
  std::string data;
  bool bind = false, rbind = false;
};

ParsedO parse_o(const std::string& o) {
  struct FlagWord {
    const char* word;
    bool clear;
    unsigned long flag;
  };
  static const FlagWord table[] = {
      {"defaults", false, 0},
      {"ro", false, MS_RDONLY},
      {"rw", true, MS_RDONLY},
      {"suid", true, MS_NOSUID},
      {"nosuid", false, MS_NOSUID},
      {"dev", true, MS_NODEV},
      {"nodev", false, MS_NODEV},
      {"exec", true, MS_NOEXEC},
      {"noexec", false, MS_NOEXEC},
      {"sync", false, MS_SYNCHRONOUS},
      {"async", true, MS_SYNCHRONOUS},
      {"dirsync", false, MS_DIRSYNC},
      {"mand", false, MS_MANDLOCK},
      {"nomand", true, MS_MANDLOCK},
      {"atime", true, MS_NOATIME},
      {"noatime", false, MS_NOATIME},
      {"diratime", true, MS_NODIRATIME},
      {"nodiratime", false, MS_NODIRATIME},
      {"relatime", false, MS_RELATIME},
      {"norelatime", true, MS_RELATIME},
      {"strictatime", false, MS_STRICTATIME},
      {"nostrictatime", true, MS_STRICTATIME},
  };
  ParsedO out;
  std::stringstream ss(o);
  std::string word;
  while (std::getline(ss, word, ',')) {
    if (word.empty()) continue;
    if (word == "bind") {
      out.bind = true;
      continue;
    }
    if (word == "rbind") {
      out.bind = out.rbind = true;
      continue;
    }
    bool known = false;
    for (const auto& f : table)
      if (word == f.word) {
        known = true;
        if (f.clear)
          out.flags &= ~f.flag;
        else
          out.flags |= f.flag;
      }
    if (!known) out.data += (out.data.empty() ? "" : ",") + word;
  }
  return out;
}

struct Row {
  Volume volume;
  std::string state;
};

const char* kSelect = "SELECT name, driver, created_ns, labels, options, anonymous, state FROM volumes";

Row row_from(const sql::Stmt& s, const std::string& root) {
  Row r;
  r.volume.name = s.text(0);
  r.volume.driver = s.text(1);
  r.volume.created_ns = s.integer(2);
  r.volume.labels = from_json(s.text(3));
  r.volume.options = from_json(s.text(4));
  r.volume.anonymous = s.integer(5) != 0;
  r.volume.mountpoint = root + "/volumes/" + r.volume.name + "/_data";
  r.state = s.text(6);
  return r;
}

}  // namespace

// ---- options and filters ----

void validate_local_options(const std::map<std::string, std::string>& options) {
  for (const auto& [k, v] : options)
    if (k != "type" && k != "device" && k != "o" && k != "size") throw Error("invalid option key: \"" + k + "\"");
  // docker's "size" is a quota on the volume's directory (xfs project quotas); berth has none.
  if (options.count("size")) throw Error("quota size requested but no quota support");
  // docker's mandatoryOpts: device and type need each other; o needs both.
  static const std::pair<const char*, std::vector<const char*>> needs[] = {
      {"device", {"type"}}, {"type", {"device"}}, {"o", {"device", "type"}}};
  for (const auto& [opt, required] : needs)
    if (options.count(opt))
      for (const char* r : required)
        if (!options.count(r)) throw Error(std::string("missing required option: \"") + r + "\"");
  if (auto o = options.find("o"); o != options.end()) {
    ParsedO p = parse_o(o->second);
    auto dev = options.at("device");
    if (p.bind && (dev.empty() || dev[0] != '/'))
      throw Error("invalid option: bind mounts need an absolute device path, got \"" + dev + "\"");
  }
}

LabelFilter LabelFilter::parse(const std::string& text, bool negate) {
  LabelFilter f;
  f.negate = negate;
  auto eq = text.find('=');
  f.key = text.substr(0, eq);
  if (eq != std::string::npos) f.value = text.substr(eq + 1);
  return f;
}

bool LabelFilter::matches(const std::map<std::string, std::string>& labels) const {
  auto it = labels.find(key);
  bool hit = it != labels.end() && (!value || it->second == *value);
  return negate ? !hit : hit;
}

// ---- the store ----

VolumeStore::VolumeStore(sql::Db& db, std::string root) : db_(db), root_(std::move(root)) {
  ensure_schema(db_);
  mkdir_p(root_ + "/volumes", 0701);
  mkdir_p(root_ + "/locks", 0700);
}

std::string VolumeStore::volume_dir(const std::string& name) const { return root_ + "/volumes/" + name; }

std::optional<Volume> VolumeStore::load(const std::string& name, bool ready_only) {
  sql::Stmt s(db_, std::string(kSelect) + " WHERE name = ?");
  s.bind(1, name);
  if (!s.step()) return std::nullopt;
  Row r = row_from(s, root_);
  if (ready_only && r.state != "ready") return std::nullopt;
  return r.volume;
}

std::optional<Volume> VolumeStore::find(const std::string& name) { return load(name, true); }

std::vector<Volume> VolumeStore::list() {
  std::vector<Volume> out;
  sql::Stmt s(db_, std::string(kSelect) + " WHERE state = 'ready' ORDER BY name");
  while (s.step()) out.push_back(row_from(s, root_).volume);
  return out;
}

std::vector<std::string> VolumeStore::users(const std::string& name) {
  std::vector<std::string> out;
  sql::Stmt s(db_,
              "SELECT coalesce(c.name, cv.container_id) FROM container_volumes cv "
              "LEFT JOIN containers c ON c.id = cv.container_id WHERE cv.volume = ? ORDER BY 1");
  s.bind(1, name);
  while (s.step()) out.push_back(s.text(0));
  return out;
}

std::vector<std::string> VolumeStore::user_ids(const std::string& name) {
  std::vector<std::string> out;
  sql::Stmt s(db_, "SELECT container_id FROM container_volumes WHERE volume = ? ORDER BY 1");
  s.bind(1, name);
  while (s.step()) out.push_back(s.text(0));
  return out;
}

void VolumeStore::add_user(const std::string& name, const std::string& container_id, bool anonymous) {
  std::optional<sql::Transaction> tx;
  if (sqlite3_get_autocommit(db_.handle())) tx.emplace(db_);
  {
    sql::Stmt s(db_, "SELECT state FROM volumes WHERE name = ?");
    s.bind(1, name);
    if (!s.step() || s.text(0) != "ready") throw Error("get " + name + ": no such volume");
  }
  sql::Stmt ins(db_, "INSERT OR IGNORE INTO container_volumes(container_id, volume, anonymous) VALUES(?, ?, ?)");
  ins.bind(1, container_id).bind(2, name).bind(3, static_cast<int64_t>(anonymous ? 1 : 0));
  ins.run();
  if (tx) tx->commit();
}

std::set<std::string> VolumeStore::in_use() {
  std::set<std::string> out;
  sql::Stmt s(db_, "SELECT DISTINCT volume FROM container_volumes");
  while (s.step()) out.insert(s.text(0));
  return out;
}

Volume VolumeStore::create(const std::string& name_in, const std::string& driver_in,
                           const std::map<std::string, std::string>& options,
                           const std::map<std::string, std::string>& labels_in, bool anonymous) {
  std::string driver = driver_in.empty() ? "local" : driver_in;
  std::string name = name_in.empty() ? random_hex64() : name_in;
  storage::validate_volume_name(name);
  if (driver != "local")
    throw Error("create " + name + ": error looking up volume plugin " + driver + ": plugin \"" + driver +
                "\" not found");
  try {
    validate_local_options(options);
  } catch (const Error& e) {
    throw Error("create " + name + ": " + e.what());
  }
  std::map<std::string, std::string> labels = labels_in;
  if (anonymous) labels.emplace(kAnonymousLabel, "");

  FileLock lock(root_ + "/locks/volumes.lock", FileLock::Mode::Exclusive);
  {
    sql::Stmt s(db_, "SELECT state FROM volumes WHERE name = ?");
    s.bind(1, name);
    if (s.step() && s.text(0) != "ready") {
      // A crash left this name half made or half removed: settle it first (we hold the lock,
      // so no live process is in the middle of it).
      s.reset();
      reconcile_locked();
    }
  }
  if (auto existing = load(name, true)) {
    if (existing->driver != driver)
      throw Error("create " + name + ": a volume with this name already exists with driver \"" + existing->driver +
                  "\"");
    return *existing;
  }

  Volume v;
  v.name = name;
  v.driver = driver;
  v.mountpoint = volume_dir(name) + "/_data";
  v.created_ns = now_ns();
  v.labels = labels;
  v.options = options;
  v.anonymous = anonymous;
  {
    // The intent row needs to survive a kill -9 (the WAL write does that), not a power loss: lost
    // with the power, it leaves at most an empty skeleton that reconcile_orphans() removes. So this
    // commit skips the fsync; the 'ready' commit below makes both durable.
    // (Only outside a caller's transaction: SQLite refuses the pragma inside one.)
    bool relax = sqlite3_get_autocommit(db_.handle()) != 0;
    if (relax) db_.exec("PRAGMA synchronous=NORMAL");
    struct Restore {
      sql::Db& db;
      bool active;
      ~Restore() {
        try {
          if (active) db.exec("PRAGMA synchronous=FULL");
        } catch (...) {
        }
      }
    } restore{db_, relax};
    sql::Stmt ins(db_,
                  "INSERT INTO volumes(name, driver, created_ns, labels, options, anonymous, state) "
                  "VALUES(?, ?, ?, ?, ?, ?, 'creating')");
    ins.bind(1, name).bind(2, driver).bind(3, v.created_ns).bind(4, to_json(labels)).bind(5, to_json(options));
    ins.bind(6, static_cast<int64_t>(anonymous ? 1 : 0));
    ins.run();
  }
  fault_point("volume-create.row");
  std::string dir = volume_dir(name);
  // An existing directory (an orphan adopted by name) is kept as it is: never emptied.
  if (::mkdir(dir.c_str(), 0701) != 0 && errno != EEXIST) throw_errno("mkdir " + dir);
  fault_point("volume-create.dir");
  if (::mkdir(v.mountpoint.c_str(), 0755) == 0) {
    if (::chmod(v.mountpoint.c_str(), 0755) != 0) throw_errno("chmod " + v.mountpoint);  // whatever the umask
  } else if (errno != EEXIST) {
    throw_errno("mkdir " + v.mountpoint);
  }
  fault_point("volume-create.data");
  // The directories must be on disk before the row says ready.
  fsync_dir(dir);
  fsync_dir(root_ + "/volumes");
  {
    sql::Stmt up(db_, "UPDATE volumes SET state = 'ready' WHERE name = ?");
    up.bind(1, name);
    up.run();
  }
  fault_point("volume-create.ready");
  return v;
}

void VolumeStore::remove(const std::string& name, bool force) {
  FileLock lock(root_ + "/locks/volumes.lock", FileLock::Mode::Exclusive);
  for (int pass = 0;; pass++) {
    std::string state;
    {
      // The users check and the flip to removing are one transaction (a caller's, if it has one).
      std::optional<sql::Transaction> tx;
      if (sqlite3_get_autocommit(db_.handle())) tx.emplace(db_);
      sql::Stmt s(db_, "SELECT state FROM volumes WHERE name = ?");
      s.bind(1, name);
      if (!s.step()) {
        if (force) return;
        throw Error("get " + name + ": no such volume");
      }
      state = s.text(0);
      if (state == "ready") {
        std::vector<std::string> ids = user_ids(name);
        if (!ids.empty()) {
          std::string list;
          for (const auto& id : ids) list += (list.empty() ? "" : ", ") + id;
          throw Error("remove " + name + ": volume is in use - [" + list + "]");
        }
        sql::Stmt up(db_, "UPDATE volumes SET state = 'removing' WHERE name = ?");
        up.bind(1, name);
        up.run();
      }
      if (tx) tx->commit();
    }
    if (state == "creating" && pass == 0) {
      // Left by a crash (we hold the lock): settle it, which finishes or drops the create.
      reconcile_locked();
      continue;
    }
    if (state == "creating") throw Error("remove " + name + ": the volume is still being created");
    fault_point("volume-rm.marked");
    finish_remove(name);
    return;
  }
}

void VolumeStore::finish_remove(const std::string& name) {
  std::string dir = volume_dir(name);
  if (is_dir(dir)) {
    DirLock dlock(dir);  // waits for a mount_source or copy_up of this volume in flight
    // Unmount what the volume mounted (and anything else under it) before deleting a byte: rm
    // through a bind mount would delete the host directory's content.
    std::string prefix = dir + "/";
    for (int round = 0;; round++) {
      std::vector<std::string> under;
      for (const auto& p : mount_points())
        if (p.compare(0, prefix.size(), prefix) == 0) under.push_back(p);
      if (under.empty()) break;
      if (round == 8) throw Error("remove " + name + ": " + under.front() + " stays mounted");
      std::sort(under.begin(), under.end(), [](const auto& a, const auto& b) { return a.size() > b.size(); });
      for (const auto& p : under)
        if (::umount2(p.c_str(), MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT)
          throw_errno("unmount " + p + " (volume " + name + ")");
    }
    fault_point("volume-rm.unmounted");
    remove_tree_same_fs(dir);
    fault_point("volume-rm.deleted");
    fsync_dir(root_ + "/volumes");
  }
  sql::Stmt del(db_, "DELETE FROM volumes WHERE name = ? AND state = 'removing'");
  del.bind(1, name);
  del.run();
}

PruneResult VolumeStore::prune(bool all, const std::vector<LabelFilter>& filters) {
  PruneResult out;
  std::vector<Volume> candidates;
  {
    FileLock lock(root_ + "/locks/volumes.lock", FileLock::Mode::Exclusive);
    std::set<std::string> used = in_use();
    for (auto& v : list()) {
      if (used.count(v.name)) continue;
      if (!all && !v.anonymous && !v.labels.count(kAnonymousLabel)) continue;
      bool ok = true;
      for (const auto& f : filters) ok = ok && f.matches(v.labels);
      if (ok) candidates.push_back(std::move(v));
    }
  }
  for (const auto& v : candidates) {
    int64_t size = tree_size(v.mountpoint);
    try {
      remove(v.name, false);  // re-checks users under the lock: a container may have taken it since
    } catch (const Error&) {
      continue;
    }
    out.removed.push_back(v.name);
    out.reclaimed += size;
  }
  return out;
}

// ---- mounting and copy-up ----

namespace {

void mount_volume_fs(const Volume& v) {
  std::string type = v.options.at("type"), device = v.options.at("device");
  auto o = v.options.find("o");
  ParsedO p = parse_o(o == v.options.end() ? "" : o->second);
  std::string what = "mount " + device + " on " + v.mountpoint + " (volume " + v.name + ", type " + type + ")";
  if (p.bind) {
    if (::mount(device.c_str(), v.mountpoint.c_str(), nullptr, MS_BIND | (p.rbind ? MS_REC : 0), nullptr) != 0)
      throw_errno(what);
    // Flags on a bind take a remount (the kernel ignores them on the first call).
    if (p.flags && ::mount(nullptr, v.mountpoint.c_str(), nullptr, MS_REMOUNT | MS_BIND | p.flags, nullptr) != 0) {
      int err = errno;
      ::umount2(v.mountpoint.c_str(), MNT_DETACH);
      throw_errno(what + ": remount", err);
    }
    return;
  }
  if (::mount(device.c_str(), v.mountpoint.c_str(), type.c_str(), p.flags, p.data.empty() ? nullptr : p.data.c_str()) !=
      0)
    throw_errno(what);
}

long sys_openat2(int dirfd, const char* path, struct open_how* how) {
  return ::syscall(SYS_openat2, dirfd, path, how, sizeof(*how));
}

}  // namespace

std::string VolumeStore::mount_source(const Volume& volume) {
  std::string dir = volume_dir(volume.name);
  if (!is_dir(dir)) throw Error("volume " + volume.name + ": " + dir + " is missing");
  DirLock dlock(dir);
  auto v = load(volume.name, true);  // under the lock: a removal may have won the race
  if (!v) throw Error("get " + volume.name + ": no such volume");
  if (!v->options.empty() && v->options.count("type") && !is_mount_point(v->mountpoint)) mount_volume_fs(*v);
  resume_copy_up(dir);
  return v->mountpoint;
}

void VolumeStore::copy_up(const Volume& volume, const std::string& rootfs, const std::string& container_path,
                          const std::string& subpath) {
  std::string dir = volume_dir(volume.name);
  if (!is_dir(dir)) throw Error("volume " + volume.name + ": " + dir + " is missing");
  DirLock dlock(dir);
  auto v = load(volume.name, true);
  if (!v) throw Error("get " + volume.name + ": no such volume");
  // The copy goes into the volume's own filesystem, not the directory it will cover.
  if (!v->options.empty() && v->options.count("type") && !is_mount_point(v->mountpoint)) mount_volume_fs(*v);
  UniqueFd root_fd = open_or_throw(rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
  struct open_how how = {};
  how.flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  size_t start = container_path.find_first_not_of('/');
  std::string rel = start == std::string::npos ? std::string(".") : container_path.substr(start);
  long fd;
  do {
    fd = sys_openat2(root_fd.get(), rel.c_str(), &how);
  } while (fd < 0 && errno == EAGAIN);
  if (fd < 0) {
    // Nothing in the image at the target (or not a directory): nothing to copy.
    if (errno == ENOENT || errno == ENOTDIR) {
      resume_copy_up(dir);
      return;
    }
    throw_errno("open " + container_path + " in " + rootfs);
  }
  UniqueFd src(static_cast<int>(fd));
  copy_up_into(dir, subpath, src.get(),
               rootfs + (container_path.empty() || container_path[0] != '/' ? "/" : "") + container_path);
}

// ---- reconciliation ----

void VolumeStore::reconcile() {
  {
    sql::Stmt s(db_, "SELECT 1 FROM volumes WHERE state != 'ready' LIMIT 1");
    if (s.step()) {
      FileLock lock(root_ + "/locks/volumes.lock", FileLock::Mode::Exclusive);
      reconcile_locked();
    }
  }
  // Orphan directories make volumes/ hold more subdirectories than there are rows; live creates
  // and removes only ever make it fewer (row first on create, row last on remove). Filesystems
  // that don't count subdirectories in st_nlink (btrfs: 1) skip the check.
  struct stat st;
  if (::stat((root_ + "/volumes").c_str(), &st) != 0 || st.st_nlink < 2) return;
  sql::Stmt c(db_, "SELECT count(*) FROM volumes");
  c.step();
  if (static_cast<int64_t>(st.st_nlink) - 2 > c.integer(0)) reconcile_orphans();
}

void VolumeStore::reconcile_locked() {
  std::vector<std::pair<std::string, std::string>> pending;
  {
    sql::Stmt s(db_, "SELECT name, state FROM volumes WHERE state != 'ready'");
    while (s.step()) pending.emplace_back(s.text(0), s.text(1));
  }
  for (const auto& [name, state] : pending) {
    if (state == "removing") {
      finish_remove(name);
      continue;
    }
    if (state != "creating") continue;
    std::string dir = volume_dir(name);
    bool keep = is_dir(dir + "/_data");
    if (!keep) {
      // Only rmdir: a directory holding anything is not ours to delete, so it becomes the volume.
      if (::rmdir(dir.c_str()) != 0 && errno != ENOENT) {
        if (errno != ENOTEMPTY && errno != EEXIST) throw_errno("rmdir " + dir);
        if (::mkdir((dir + "/_data").c_str(), 0755) != 0 && errno != EEXIST) throw_errno("mkdir " + dir + "/_data");
        keep = true;
      }
    }
    if (keep) {
      fsync_dir(dir);
      sql::Stmt up(db_, "UPDATE volumes SET state = 'ready' WHERE name = ? AND state = 'creating'");
      up.bind(1, name);
      up.run();
    } else {
      fsync_dir(root_ + "/volumes");
      sql::Stmt del(db_, "DELETE FROM volumes WHERE name = ? AND state = 'creating'");
      del.bind(1, name);
      del.run();
    }
  }
}

void VolumeStore::reconcile_orphans() {
  FileLock lock(root_ + "/locks/volumes.lock", FileLock::Mode::Exclusive);
  std::set<std::string> rows;
  {
    sql::Stmt s(db_, "SELECT name FROM volumes");
    while (s.step()) rows.insert(s.text(0));
  }
  std::string vols = root_ + "/volumes";
  std::vector<std::string> orphans;
  {
    DIR* d = ::opendir(vols.c_str());
    if (!d) throw_errno("opendir " + vols);
    while (struct dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n == "." || n == ".." || rows.count(n)) continue;
      try {
        storage::validate_volume_name(n);
      } catch (const Error&) {
        continue;  // not a volume's directory: not ours to judge
      }
      if (is_dir(vols + "/" + n)) orphans.push_back(n);
    }
    ::closedir(d);
  }
  for (const auto& n : orphans) {
    std::string dir = vols + "/" + n, data = dir + "/_data";
    // What create makes: the directory and an empty _data. Only that is removed, by rmdir.
    if (!is_mount_point(data)) ::rmdir(data.c_str());
    if (::rmdir(dir.c_str()) == 0 || errno == ENOENT) continue;
    if (!is_dir(data)) continue;  // something else lives here: leave it alone
    struct stat st;
    int64_t created = ::stat(dir.c_str(), &st) == 0
                          ? static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec
                          : now_ns();
    sql::Stmt ins(db_,
                  "INSERT OR IGNORE INTO volumes(name, driver, created_ns, labels, options, anonymous, state) "
                  "VALUES(?, 'local', ?, '{}', '{}', 0, 'ready')");
    ins.bind(1, n).bind(2, created);
    ins.run();
  }
}

}  // namespace berth::engine
