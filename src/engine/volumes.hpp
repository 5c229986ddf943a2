// Named and anonymous volumes of the "local" driver: rows in state.db's volumes table, data under
// <root>/volumes/<name>/_data.
//
// Crash safety: every multi-step change records its intent in the row first (state creating or
// removing) and reconcile() finishes or undoes it. Data is sacred: only remove() (the user asked
// for that volume to go) deletes a volume's data; rollbacks use rmdir, which cannot delete data.
//
// Concurrency: create, remove, prune and reconcile hold <root>/locks/volumes.lock exclusively (so a
// reconcile never takes another process's in-flight create for a crashed one); mount_source and
// copy_up hold a flock on the volume's directory. remove() flips the row to removing in the same
// transaction that checks container_volumes, so the engine must add its container_volumes rows in
// a transaction that checks the volume's state is 'ready'.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace berth::sql {
class Db;
}

namespace berth::engine {

// docker's label on volumes created for a container's anonymous mounts.
inline constexpr const char* kAnonymousLabel = "com.docker.volume.anonymous";

struct Volume {
  std::string name, driver;
  std::string mountpoint;  // <root>/volumes/<name>/_data
  int64_t created_ns = 0;
  std::map<std::string, std::string> labels, options;
  bool anonymous = false;
};

// A --filter label=K / label=K=V / label!=K / label!=K=V.
struct LabelFilter {
  std::string key;
  std::optional<std::string> value;
  bool negate = false;

  // "K" or "K=V"; negate for the "label!" filter key.
  static LabelFilter parse(const std::string& text, bool negate);
  bool matches(const std::map<std::string, std::string>& labels) const;
};

struct PruneResult {
  std::vector<std::string> removed;
  int64_t reclaimed = 0;  // bytes of the removed volumes' data
};

class VolumeStore {
 public:
  // root: the data root (ctx.root). Creates the tables (ensure_schema) and <root>/volumes.
  VolumeStore(sql::Db& db, std::string root);

  // name empty → an anonymous volume with a random 64-hex name (labelled kAnonymousLabel when
  // anonymous). An existing name is returned as is (docker's behaviour) unless the driver differs.
  // Driver: "" or "local". Options: type, device, o (device and type need each other, o needs
  // both); "invalid option key: \"x\"" for anything else.
  Volume create(const std::string& name, const std::string& driver, const std::map<std::string, std::string>& options,
                const std::map<std::string, std::string>& labels, bool anonymous);
  // Ready volumes only (one being created or removed is not there yet / any more).
  std::optional<Volume> find(const std::string& name);
  std::vector<Volume> list();  // by name
  // Names of the containers using the volume (their IDs when a container row is missing).
  std::vector<std::string> users(const std::string& name);
  std::vector<std::string> user_ids(const std::string& name);
  // Records that container_id uses the volume (its container_volumes row) in one transaction with
  // the check that the volume is ready, so a concurrent remove or prune either sees this user or
  // has already taken the volume (then this throws "get NAME: no such volume"). The engine's way
  // to claim a volume it just created or found.
  void add_user(const std::string& name, const std::string& container_id, bool anonymous);
  // Every volume some container uses (for dangling filters without a query per volume).
  std::set<std::string> in_use();

  // Refused while the volume has users: "remove NAME: volume is in use - [ID1, ID2]" (container
  // IDs, docker's words). Missing: "get NAME: no such volume", unless force.
  void remove(const std::string& name, bool force);
  // Unused volumes matching every filter; anonymous ones only unless all.
  PruneResult prune(bool all, const std::vector<LabelFilter>& filters);

  // The host path to bind for this volume at container start. A plain local volume: its _data.
  // With type/device/o: that filesystem is mounted on _data first if it isn't yet (tmpfs, a bind
  // of a device path, other types through mount(2) with o's flags and data) and stays mounted
  // until the volume is removed. Also finishes a copy-up a crash cut short.
  std::string mount_source(const Volume& volume);

  // docker's copy-up: when the volume (or its subpath, which must exist) is empty and
  // container_path inside the mounted rootfs is a directory, copies its content (owners, modes,
  // timestamps, xattrs, symlinks, hardlinks within the tree, devices, fifos) into the volume and
  // gives the volume root that directory's owner and mode. A non-empty volume is never merged
  // into. container_path is resolved with RESOLVE_IN_ROOT, so image symlinks can't reach the
  // host. Crash-safe: see copy_up.hpp.
  void copy_up(const Volume& volume, const std::string& rootfs, const std::string& container_path,
               const std::string& subpath = "");

  // Finishes or undoes what a crash left: creating → ready when its _data exists, else the row
  // and the empty skeleton go; removing → the removal is finished. Cheap when nothing is pending
  // (one indexed query, one stat). When the number of directories under volumes/ disagrees with
  // the rows, reconcile_orphans() runs too.
  void reconcile();
  // Directories under volumes/ without a row: removed when they hold nothing but what create
  // makes (an empty dir or an empty _data), otherwise adopted as ready volumes (data is never
  // deleted; the user sees it in `volume ls` and decides).
  void reconcile_orphans();

  const std::string& root() const { return root_; }
  std::string volume_dir(const std::string& name) const;

 private:
  void finish_remove(const std::string& name);
  void reconcile_locked();
  std::optional<Volume> load(const std::string& name, bool ready_only);

  sql::Db& db_;
  std::string root_;
};

// The local driver's option rules (pure; exposed for tests).
void validate_local_options(const std::map<std::string, std::string>& options);

}  // namespace berth::engine
