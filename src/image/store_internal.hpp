// What store.cpp and store_ingest.cpp share: a temporary path that goes away unless released.
// (ingest lives in its own file so that a binary using only the store's metadata does not link
// the unpacker and libarchive.)
#pragma once

#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <string>
#include <utility>

#include "util/error.hpp"
#include "util/fs.hpp"

namespace berth::image::detail {

// Removes a partial blob or layer unless released.
class TempPath {
 public:
  explicit TempPath(std::string path, bool dir) : path_(std::move(path)), dir_(dir) {}
  ~TempPath() {
    if (path_.empty()) return;
    try {
      if (dir_)
        remove_tree(path_);
      else
        ::unlink(path_.c_str());
    } catch (...) {
    }
  }
  TempPath(const TempPath&) = delete;
  TempPath& operator=(const TempPath&) = delete;
  const std::string& path() const { return path_; }
  void release() { path_.clear(); }

 private:
  std::string path_;
  bool dir_;
};

inline int64_t file_size(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) < 0) throw_errno("stat " + path);
  return st.st_size;
}

}  // namespace berth::image::detail
