// Small file helpers; all throw berth::Error with the path and errno.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>

#include "util/fd.hpp"

namespace berth {

std::string read_file(const std::string& path);
// nullopt when the file does not exist; throws on other errors.
std::optional<std::string> read_file_if_exists(const std::string& path);
// Writes without O_CREAT semantics beyond the default (used for /proc and cgroup files too).
void write_file(const std::string& path, std::string_view content, int flags = 0, mode_t mode = 0644);
// Writes to a temporary sibling and renames: readers see old or new, never half.
// durable: fsync first (for data that must survive power loss, not /run state).
void write_file_atomic(const std::string& path, std::string_view content, mode_t mode = 0644, bool durable = false);
void mkdir_p(const std::string& path, mode_t mode = 0755);
bool path_exists(const std::string& path);
// Removes a directory tree without following symlinks; missing is fine.
void remove_tree(const std::string& path);
UniqueFd open_or_throw(const std::string& path, int flags, mode_t mode = 0);
std::string path_join(std::string_view a, std::string_view b);
// 16 random hex digits, for names of temporary files and directories.
std::string random_suffix();
// Writes the whole buffer, retrying on EINTR and short writes.
void write_all(int fd, std::string_view data, std::string_view what);

}  // namespace berth
