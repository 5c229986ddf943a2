#include "image/store.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <ctime>
#include <deque>
#include <exception>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "image/digest.hpp"
#include "image/oci.hpp"
#include "image/reference.hpp"
#include "image/store_internal.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/sqlite.hpp"

namespace berth::image {

using detail::TempPath;

namespace {

const char* kSchema = R"(
CREATE TABLE IF NOT EXISTS images(
  id TEXT PRIMARY KEY,
  config TEXT NOT NULL,
  manifest_digest TEXT NOT NULL,
  size INTEGER NOT NULL,
  added INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS image_layers(
  image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
  idx INTEGER NOT NULL,
  chain_id TEXT NOT NULL,
  diff_id TEXT NOT NULL,
  blob_digest TEXT NOT NULL,
  media_type TEXT NOT NULL,
  blob_size INTEGER NOT NULL,
  PRIMARY KEY(image_id, idx));
CREATE INDEX IF NOT EXISTS image_layers_chain ON image_layers(chain_id);
CREATE TABLE IF NOT EXISTS image_refs(
  name TEXT PRIMARY KEY,
  image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
  is_digest INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS image_users(
  image_id TEXT NOT NULL REFERENCES images(id),
  user TEXT NOT NULL,
  PRIMARY KEY(image_id, user));
CREATE TABLE IF NOT EXISTS layers(
  chain_id TEXT PRIMARY KEY,
  diff_id TEXT NOT NULL,
  size INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS build_cache(
  parent TEXT NOT NULL,
  key TEXT NOT NULL,
  image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
  PRIMARY KEY(parent, key));
CREATE INDEX IF NOT EXISTS build_cache_image ON build_cache(image_id);
)";

}  // namespace

std::string short_id(std::string_view digest) {
  std::string_view hex = digest.substr(0, 7) == "sha256:" ? digest.substr(7) : digest;
  return std::string(hex.substr(0, 12));
}

ImageStore::ImageStore(const std::string& root) : root_(root) {
  for (const char* sub : {"content/blobs/sha256", "content/ingest", "layers/.tmp", "locks"})
    mkdir_p(path_join(root_, sub), 0700);
  db_ = std::make_unique<sql::Db>(path_join(root_, "state.db"));
  db_->apply_schema("images", kSchema, [this] {
    // Roots made before builds existed get images.parent (the image a build step started from).
    sql::Stmt has(*db_, "SELECT 1 FROM pragma_table_info('images') WHERE name='parent'");
    if (!has.step()) db_->exec("ALTER TABLE images ADD COLUMN parent TEXT NOT NULL DEFAULT ''");
    db_->exec("CREATE INDEX IF NOT EXISTS images_parent ON images(parent)");
  });
}

ImageStore::~ImageStore() = default;

FileLock ImageStore::writer_lease() { return FileLock(root_ + "/locks/gc.lock", FileLock::Mode::Shared); }

std::string ImageStore::blob_path(std::string_view digest) const {
  require_sha256_digest(digest, "blob");
  return root_ + "/content/blobs/sha256/" + std::string(digest_hex(digest));
}

bool ImageStore::has_blob(std::string_view digest) const { return path_exists(blob_path(digest)); }

std::string ImageStore::read_blob(std::string_view digest) const {
  auto data = read_file_if_exists(blob_path(digest));
  if (!data) throw Error("blob " + std::string(digest) + " is not in the content store");
  return *data;
}

std::string ImageStore::put_blob(std::string_view data, std::string_view expected) {
  std::string digest = sha256_digest(data);
  if (!expected.empty() && digest != expected)
    throw Error("digest mismatch: expected " + std::string(expected) + ", got " + digest);
  std::string path = blob_path(digest);
  if (path_exists(path)) return digest;
  TempPath tmp(root_ + "/content/ingest/put-" + random_suffix(), false);
  write_file(tmp.path(), data, O_CREAT | O_EXCL | O_WRONLY, 0644);
  if (::rename(tmp.path().c_str(), path.c_str()) < 0) throw_errno("rename " + tmp.path() + " to " + path);
  tmp.release();
  return digest;
}

std::string ImageStore::layer_dir(std::string_view chain_id) const {
  require_sha256_digest(chain_id, "layer chain");
  return root_ + "/layers/" + std::string(digest_hex(chain_id));
}

bool ImageStore::has_layer(std::string_view chain_id) const {
  // The rename into layers/ is the commit point of an unpack, so the directory is the truth.
  return path_exists(layer_dir(chain_id));
}

bool ImageStore::layer_ready(const LayerSpec& spec) const {
  if (spec.diff_id.empty() || spec.blob_digest.empty()) return false;
  return has_blob(spec.blob_digest) && has_layer(chain_id(spec.parent_chain_id, spec.diff_id));
}

void ImageStore::add_image(const ImageRecord& image) {
  require_sha256_digest(image.id, "image");
  sql::Transaction tx(*db_);
  int64_t size = 0;
  for (const auto& l : image.layers) size += l.size;
  sql::Stmt(*db_,
            "INSERT INTO images(id, config, manifest_digest, size, added, parent) VALUES(?,?,?,?,?,?) "
            "ON CONFLICT(id) DO UPDATE SET manifest_digest=excluded.manifest_digest")
      .bind(1, image.id)
      .bind(2, image.config)
      .bind(3, image.manifest_digest)
      .bind(4, size)
      .bind(5, static_cast<int64_t>(::time(nullptr)))
      .bind(6, image.parent)
      .run();
  sql::Stmt(*db_, "DELETE FROM image_layers WHERE image_id=?").bind(1, image.id).run();
  sql::Stmt ins(*db_,
                "INSERT INTO image_layers(image_id, idx, chain_id, diff_id, blob_digest, media_type, blob_size) "
                "VALUES(?,?,?,?,?,?,?)");
  for (size_t i = 0; i < image.layers.size(); i++) {
    const auto& l = image.layers[i];
    ins.reset();
    ins.bind(1, image.id)
        .bind(2, static_cast<int64_t>(i))
        .bind(3, l.chain_id)
        .bind(4, l.diff_id)
        .bind(5, l.blob_digest)
        .bind(6, l.media_type)
        .bind(7, l.blob_size)
        .run();
  }
  sql::Stmt ref(*db_, "INSERT OR REPLACE INTO image_refs(name, image_id, is_digest) VALUES(?,?,?)");
  for (const auto& t : image.repo_tags) {
    ref.reset();
    ref.bind(1, t).bind(2, image.id).bind(3, int64_t{0}).run();
  }
  for (const auto& d : image.repo_digests) {
    ref.reset();
    ref.bind(1, d).bind(2, image.id).bind(3, int64_t{1}).run();
  }
  tx.commit();
}

void ImageStore::add_ref(std::string_view image_id, std::string_view full_name, bool is_digest) {
  sql::Stmt(*db_, "INSERT OR REPLACE INTO image_refs(name, image_id, is_digest) VALUES(?,?,?)")
      .bind(1, full_name)
      .bind(2, image_id)
      .bind(3, int64_t{is_digest ? 1 : 0})
      .run();
}

bool ImageStore::remove_ref(std::string_view full_name) {
  sql::Stmt(*db_, "DELETE FROM image_refs WHERE name=?").bind(1, full_name).run();
  return db_->changes() > 0;
}

ImageRecord ImageStore::load_record(std::string_view id) const {
  sql::Stmt q(*db_, "SELECT config, manifest_digest, size, added, parent FROM images WHERE id=?");
  q.bind(1, id);
  if (!q.step()) throw Error("No such image: " + std::string(id));
  ImageRecord r;
  r.id = std::string(id);
  r.config = q.text(0);
  r.manifest_digest = q.text(1);
  r.size = q.integer(2);
  r.added = q.integer(3);
  r.parent = q.text(4);
  sql::Stmt l(*db_,
              "SELECT il.chain_id, il.diff_id, il.blob_digest, il.media_type, il.blob_size, COALESCE(ly.size, 0) "
              "FROM image_layers il LEFT JOIN layers ly ON ly.chain_id = il.chain_id WHERE il.image_id=? "
              "ORDER BY il.idx");
  l.bind(1, id);
  while (l.step()) r.layers.push_back({l.text(0), l.text(1), l.text(2), l.text(3), l.integer(4), l.integer(5)});
  sql::Stmt refs(*db_, "SELECT name, is_digest FROM image_refs WHERE image_id=? ORDER BY name");
  refs.bind(1, id);
  while (refs.step()) (refs.integer(1) ? r.repo_digests : r.repo_tags).push_back(refs.text(0));
  return r;
}

ImageRecord ImageStore::get(std::string_view id) const { return load_record(id); }

std::optional<ImageRecord> ImageStore::find(std::string_view text) const {
  auto by_id = [&](const std::string& id) -> std::optional<ImageRecord> {
    sql::Stmt q(*db_, "SELECT 1 FROM images WHERE id=?");
    q.bind(1, id);
    if (q.step()) return load_record(id);
    return std::nullopt;
  };
  if (is_sha256_digest(text)) return by_id(std::string(text));
  bool hex = !text.empty() && text.size() <= 64;
  for (char c : text)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) hex = false;
  if (text.size() == 64 && hex) return by_id("sha256:" + std::string(text));
  // A reference first (like docker: "abc" is the repository abc:latest before it is an ID prefix).
  try {
    Reference ref = parse_reference(text);
    sql::Stmt q(*db_, "SELECT image_id FROM image_refs WHERE name=?");
    q.bind(1, ref.digest.empty() ? ref.name() + ":" + ref.tag : ref.name() + "@" + ref.digest);
    if (q.step()) return load_record(q.text(0));
  } catch (const Error&) {
    if (!hex) throw;
  }
  if (!hex) return std::nullopt;
  std::string prefix = "sha256:" + std::string(text);
  sql::Stmt q(*db_, "SELECT id FROM images WHERE substr(id, 1, ?) = ?");
  q.bind(1, static_cast<int64_t>(prefix.size())).bind(2, prefix);
  std::vector<std::string> ids;
  while (q.step()) ids.push_back(q.text(0));
  if (ids.size() > 1) throw Error("image ID prefix \"" + std::string(text) + "\" is ambiguous");
  if (ids.empty()) return std::nullopt;
  return load_record(ids[0]);
}

std::vector<ImageRecord> ImageStore::list() const {
  std::vector<std::string> ids;
  sql::Stmt q(*db_, "SELECT id FROM images ORDER BY added DESC, id");
  while (q.step()) ids.push_back(q.text(0));
  std::vector<ImageRecord> out;
  for (const auto& id : ids) out.push_back(load_record(id));
  return out;
}

void ImageStore::delete_image_row(std::string_view id) {
  sql::Transaction tx(*db_);
  auto users = image_users(id);
  if (!users.empty())
    throw Error("conflict: unable to delete " + short_id(id) + " - image is being used by container " +
                short_id(users.front()));
  sql::Stmt(*db_, "DELETE FROM images WHERE id=?").bind(1, id).run();
  tx.commit();
}

std::vector<std::string> ImageStore::delete_image_and_parents(std::string_view id, bool prune_parents) {
  std::vector<std::string> deleted;
  std::string parent;
  {
    sql::Stmt q(*db_, "SELECT parent FROM images WHERE id=?");
    q.bind(1, id);
    if (q.step()) parent = q.text(0);
  }
  delete_image_row(id);
  deleted.emplace_back(id);
  while (prune_parents && !parent.empty()) {
    sql::Transaction tx(*db_);
    sql::Stmt q(*db_,
                "SELECT parent FROM images i WHERE id=? "
                "AND NOT EXISTS (SELECT 1 FROM image_refs r WHERE r.image_id=i.id) "
                "AND NOT EXISTS (SELECT 1 FROM image_users u WHERE u.image_id=i.id) "
                "AND NOT EXISTS (SELECT 1 FROM images c WHERE c.parent=i.id)");
    q.bind(1, parent);
    if (!q.step()) break;
    std::string next = q.text(0);
    sql::Stmt(*db_, "DELETE FROM images WHERE id=?").bind(1, parent).run();
    tx.commit();
    deleted.push_back(parent);
    parent = next;
  }
  collect_garbage();
  return deleted;
}

std::pair<std::vector<ImageRecord>, int64_t> ImageStore::prune_images(
    const std::function<bool(const ImageRecord&)>& select) {
  std::vector<ImageRecord> deleted;
  for (bool more = true; more;) {
    more = false;
    for (const auto& img : list()) {
      if (!image_users(img.id).empty() || !children(img.id).empty() || !select(img)) continue;
      delete_image_row(img.id);
      deleted.push_back(img);
      more = true;
    }
  }
  int64_t reclaimed = collect_garbage();
  return {deleted, reclaimed};
}

int64_t ImageStore::clear_build_cache() {
  sql::Stmt(*db_, "DELETE FROM build_cache").run();
  return static_cast<int64_t>(db_->changes());
}

std::vector<std::string> ImageStore::children(std::string_view id) const {
  sql::Stmt q(*db_, "SELECT id FROM images WHERE parent=? ORDER BY id");
  q.bind(1, id);
  std::vector<std::string> out;
  while (q.step()) out.push_back(q.text(0));
  return out;
}

std::optional<std::string> ImageStore::cached_step(std::string_view parent, std::string_view key) const {
  sql::Stmt q(*db_, "SELECT image_id FROM build_cache WHERE parent=? AND key=?");
  q.bind(1, parent).bind(2, key);
  if (q.step()) return q.text(0);
  return std::nullopt;
}

void ImageStore::record_step(std::string_view parent, std::string_view key, std::string_view image_id) {
  sql::Stmt(*db_, "INSERT OR REPLACE INTO build_cache(parent, key, image_id) VALUES(?,?,?)")
      .bind(1, parent)
      .bind(2, key)
      .bind(3, image_id)
      .run();
}

void ImageStore::add_image_user(std::string_view image_id, std::string_view user) {
  sql::Stmt(*db_, "INSERT OR IGNORE INTO image_users(image_id, user) VALUES(?,?)")
      .bind(1, image_id)
      .bind(2, user)
      .run();
}

void ImageStore::remove_image_user(std::string_view image_id, std::string_view user) {
  sql::Stmt(*db_, "DELETE FROM image_users WHERE image_id=? AND user=?").bind(1, image_id).bind(2, user).run();
}

std::vector<std::string> ImageStore::image_users(std::string_view image_id) const {
  sql::Stmt q(*db_, "SELECT user FROM image_users WHERE image_id=? ORDER BY user");
  q.bind(1, image_id);
  std::vector<std::string> out;
  while (q.step()) out.push_back(q.text(0));
  return out;
}

void ImageStore::delete_image(std::string_view id) {
  delete_image_row(id);
  collect_garbage();
}

int64_t ImageStore::collect_garbage() {
  FileLock gc(root_ + "/locks/gc.lock", FileLock::Mode::Exclusive);
  int64_t reclaimed = 0;
  // Layers: anything under layers/ that no image references (orphans of a crash included).
  std::set<std::string> keep_layers;
  {
    sql::Stmt q(*db_, "SELECT DISTINCT chain_id FROM image_layers");
    while (q.step()) keep_layers.insert(std::string(digest_hex(q.text(0))));
  }
  std::set<std::string> keep_blobs;
  {
    sql::Stmt q(*db_,
                "SELECT blob_digest FROM image_layers UNION SELECT id FROM images "
                "UNION SELECT manifest_digest FROM images WHERE manifest_digest != '' "
                "UNION SELECT substr(name, instr(name, '@') + 1) FROM image_refs WHERE is_digest = 1");
    while (q.step()) {
      std::string d = q.text(0);
      if (is_sha256_digest(d)) keep_blobs.insert(std::string(digest_hex(d)));
    }
  }
  auto sweep = [&](const std::string& dir, const std::set<std::string>& keep, bool dirs) {
    DIR* d = ::opendir(dir.c_str());
    if (!d) return;
    std::vector<std::string> names;
    while (dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n == "." || n == ".." || n == ".tmp") continue;
      if (!keep.count(n)) names.push_back(n);
    }
    ::closedir(d);
    for (const auto& n : names) {
      std::string p = dir + "/" + n;
      if (dirs) {
        sql::Stmt q(*db_, "SELECT size FROM layers WHERE chain_id=?");
        q.bind(1, "sha256:" + n);
        if (q.step()) reclaimed += q.integer(0);
        // Out of layers/ first: a half-removed tree must never look like a complete layer.
        std::string trash = root_ + "/layers/.tmp/rm-" + n;
        if (::rename(p.c_str(), trash.c_str()) == 0) p = trash;
        remove_tree(p);
        sql::Stmt(*db_, "DELETE FROM layers WHERE chain_id=?").bind(1, "sha256:" + n).run();
      } else {
        struct stat st {};
        if (::stat(p.c_str(), &st) == 0) reclaimed += st.st_size;
        ::unlink(p.c_str());
      }
    }
  };
  sweep(root_ + "/layers", keep_layers, true);
  sweep(root_ + "/content/blobs/sha256", keep_blobs, false);
  // Partial ingestions: nobody writes while we hold gc.lock exclusively.
  remove_tree(root_ + "/layers/.tmp");
  mkdir_p(root_ + "/layers/.tmp", 0700);
  remove_tree(root_ + "/content/ingest");
  mkdir_p(root_ + "/content/ingest", 0700);
  return reclaimed;
}

}  // namespace berth::image
