// ImageStore::ingest_layer: one pass over a layer blob that hashes, stores and unpacks it.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <mutex>
#include <optional>
#include <thread>

#include "image/digest.hpp"
#include "image/oci.hpp"
#include "image/store.hpp"
#include "image/store_internal.hpp"
#include "image/unpack.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/sqlite.hpp"

namespace berth::image {

using detail::file_size;
using detail::TempPath;

namespace {

// A bounded byte queue from the producer (network or file) to the unpacking thread.
class ByteChannel {
 public:
  void push(const char* data, size_t len) {
    std::unique_lock lk(mu_);
    space_.wait(lk, [&] { return queued_ < kCapacity || aborted_; });
    if (aborted_) throw Error("layer unpack stopped");
    chunks_.emplace_back(data, len);
    queued_ += len;
    ready_.notify_one();
  }
  void close() {
    std::lock_guard lk(mu_);
    closed_ = true;
    ready_.notify_all();
  }
  // Stops both ends: the producer's next push throws, the reader sees an error.
  void abort() {
    std::lock_guard lk(mu_);
    aborted_ = true;
    space_.notify_all();
    ready_.notify_all();
  }
  size_t read(char* buf, size_t len) {
    std::unique_lock lk(mu_);
    ready_.wait(lk, [&] { return !chunks_.empty() || closed_ || aborted_; });
    if (aborted_) throw Error("layer stream aborted");
    if (chunks_.empty()) return 0;
    std::string& front = chunks_.front();
    size_t n = std::min(len, front.size() - offset_);
    std::memcpy(buf, front.data() + offset_, n);
    offset_ += n;
    if (offset_ == front.size()) {
      queued_ -= front.size();
      chunks_.pop_front();
      offset_ = 0;
      space_.notify_one();
    }
    return n;
  }

 private:
  static constexpr size_t kCapacity = 16 << 20;
  std::mutex mu_;
  std::condition_variable ready_, space_;
  std::deque<std::string> chunks_;
  size_t offset_ = 0, queued_ = 0;
  bool closed_ = false, aborted_ = false;
};

}  // namespace

LayerResult ImageStore::ingest_layer(const LayerSpec& spec, const Producer& produce) {
  FileLock lease = writer_lease();
  if (!spec.blob_digest.empty()) require_sha256_digest(spec.blob_digest, "layer blob");
  if (!spec.diff_id.empty()) require_sha256_digest(spec.diff_id, "layer diff_id");
  std::optional<FileLock> blob_lock, layer_lock;
  if (!spec.blob_digest.empty())
    blob_lock.emplace(root_ + "/locks/blob-" + std::string(digest_hex(spec.blob_digest)) + ".lock",
                      FileLock::Mode::Exclusive);
  std::string chain = spec.diff_id.empty() ? "" : chain_id(spec.parent_chain_id, spec.diff_id);
  if (!chain.empty())
    layer_lock.emplace(root_ + "/locks/layer-" + std::string(digest_hex(chain)) + ".lock", FileLock::Mode::Exclusive);

  LayerResult r;
  r.media_type = spec.media_type;
  bool need_blob = spec.blob_digest.empty() || !has_blob(spec.blob_digest);
  bool need_layer = chain.empty() || !has_layer(chain);
  auto layer_size = [&](const std::string& c) -> int64_t {
    sql::Stmt q(*db_, "SELECT size FROM layers WHERE chain_id=?");
    q.bind(1, c);
    return q.step() ? q.integer(0) : 0;
  };
  if (!need_blob && !need_layer) {
    r.blob_digest = spec.blob_digest;
    r.diff_id = spec.diff_id;
    r.chain_id = chain;
    r.blob_size = file_size(blob_path(spec.blob_digest));
    r.size = layer_size(chain);
    return r;
  }

  std::optional<TempPath> blob_tmp, layer_tmp;
  UniqueFd blob_fd;
  if (need_blob) {
    blob_tmp.emplace(root_ + "/content/ingest/layer-" + random_suffix(), false);
    blob_fd = open_or_throw(blob_tmp->path(), O_CREAT | O_EXCL | O_WRONLY, 0644);
  }
  ByteChannel channel;
  UnpackResult unpacked;
  std::exception_ptr unpack_error;
  // Which side stopped the stream first: its error is the cause, the other's a consequence.
  std::atomic<bool> producer_failed{false};
  bool unpacker_failed_first = false;
  std::thread unpacker;
  if (need_layer) {
    layer_tmp.emplace(root_ + "/layers/.tmp/" + random_suffix(), true);
    if (::mkdir(layer_tmp->path().c_str(), 0755) < 0) throw_errno("mkdir " + layer_tmp->path());
    unpacker = std::thread([&] {
      try {
        unpacked = unpack_layer([&](char* buf, size_t len) { return channel.read(buf, len); }, layer_tmp->path());
      } catch (...) {
        unpack_error = std::current_exception();
        unpacker_failed_first = !producer_failed;
        channel.abort();
      }
    });
  }
  Sha256 blob_hash;
  int64_t blob_size = 0;
  try {
    produce([&](const char* data, size_t len) {
      blob_hash.update(data, len);
      blob_size += static_cast<int64_t>(len);
      if (blob_fd) write_all(blob_fd.get(), std::string_view(data, len), "write " + blob_tmp->path());
      if (need_layer) channel.push(data, len);
    });
  } catch (...) {
    producer_failed = true;
    channel.abort();
    if (unpacker.joinable()) unpacker.join();
    // The unpacker's refusal (a hostile entry) is the real cause when it stopped the stream.
    if (unpack_error && unpacker_failed_first) std::rethrow_exception(unpack_error);
    throw;
  }
  channel.close();
  if (unpacker.joinable()) unpacker.join();
  if (unpack_error) std::rethrow_exception(unpack_error);

  r.blob_digest = blob_hash.digest();
  r.blob_size = blob_size;
  if (!spec.blob_digest.empty() && r.blob_digest != spec.blob_digest)
    throw Error("layer blob digest mismatch: expected " + spec.blob_digest + ", got " + r.blob_digest);
  if (need_layer) {
    r.diff_id = unpacked.diff_id;
    r.size = static_cast<int64_t>(unpacked.content_bytes);
    if (!spec.diff_id.empty() && r.diff_id != spec.diff_id)
      throw Error("layer " + r.blob_digest + ": diff_id mismatch: the image config says " + spec.diff_id +
                  ", the uncompressed layer is " + r.diff_id);
  } else {
    r.diff_id = spec.diff_id;
    r.size = layer_size(chain);
  }
  if (chain.empty()) {
    chain = chain_id(spec.parent_chain_id, r.diff_id);
    layer_lock.emplace(root_ + "/locks/layer-" + std::string(digest_hex(chain)) + ".lock", FileLock::Mode::Exclusive);
  }
  r.chain_id = chain;
  r.fetched = true;

  if (blob_tmp) {
    std::string dest = blob_path(r.blob_digest);
    if (!path_exists(dest)) {
      if (::rename(blob_tmp->path().c_str(), dest.c_str()) < 0) throw_errno("rename " + blob_tmp->path());
      blob_tmp->release();
    }
  }
  if (layer_tmp && !has_layer(chain)) {
    std::string dest = layer_dir(chain);
    if (::rename(layer_tmp->path().c_str(), dest.c_str()) < 0) throw_errno("rename " + layer_tmp->path());
    layer_tmp->release();
  }
  sql::Stmt ins(*db_, "INSERT OR REPLACE INTO layers(chain_id, diff_id, size) VALUES(?,?,?)");
  ins.bind(1, chain).bind(2, r.diff_id).bind(3, r.size).run();
  return r;
}

}  // namespace berth::image
