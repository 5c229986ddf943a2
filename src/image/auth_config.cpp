#include "image/auth_config.hpp"

#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/passwd.hpp"

namespace berth::image {

namespace {

using json = nlohmann::json;

constexpr std::string_view kIndexServer = "https://index.docker.io/v1/";

bool is_docker_hub(std::string_view domain) { return domain == "docker.io" || domain == "index.docker.io"; }

// docker's ConvertToHostname: "https://host:port/v1/" -> "host:port".
std::string key_hostname(std::string_view key) {
  if (key.starts_with("http://")) key.remove_prefix(7);
  if (key.starts_with("https://")) key.remove_prefix(8);
  return std::string(key.substr(0, key.find('/')));
}

bool key_matches_domain(std::string_view key, std::string_view domain) {
  std::string host = key_hostname(key);
  if (is_docker_hub(domain)) return host == "index.docker.io" || host == "docker.io" || host == "registry-1.docker.io";
  return host == domain;
}

std::string resolve_path(const std::string& path) { return path.empty() ? default_auth_config_path() : path; }

// The file's JSON object, or an empty object when the file doesn't exist.
json read_config(const std::string& path) {
  auto text = read_file_if_exists(path);
  if (!text || text->find_first_not_of(" \t\r\n") == std::string::npos) return json::object();
  json doc;
  try {
    doc = json::parse(*text);
  } catch (const json::exception& e) {
    throw Error(path + ": invalid JSON: " + e.what());
  }
  if (!doc.is_object()) throw Error(path + ": not a JSON object");
  if (doc.contains("auths") && !doc["auths"].is_object()) throw Error(path + ": auths: not a JSON object");
  return doc;
}

std::optional<Credentials> decode_entry(const std::string& path, const std::string& key, const json& entry) {
  if (!entry.is_object()) throw Error(path + ": auths." + key + ": not a JSON object");
  auto string_field = [&](const char* name) -> std::string {
    auto it = entry.find(name);
    if (it == entry.end() || it->is_null()) return {};
    if (!it->is_string()) throw Error(path + ": auths." + key + "." + name + ": not a string");
    return it->get<std::string>();
  };
  std::string auth = string_field("auth");
  if (!auth.empty()) {
    std::string plain;
    try {
      plain = base64_decode(auth);
    } catch (const Error& e) {
      throw Error(path + ": auths." + key + ".auth: " + e.what());
    }
    size_t colon = plain.find(':');
    if (colon == std::string::npos) throw Error(path + ": auths." + key + ".auth: not base64 of user:password");
    return Credentials{plain.substr(0, colon), plain.substr(colon + 1)};
  }
  // Older files carry the fields in the clear.
  std::string user = string_field("username");
  if (user.empty()) return std::nullopt;
  return Credentials{user, string_field("password")};
}

// Removes the temporary file unless it was renamed into place.
struct TempFile {
  std::string path;
  bool committed = false;
  ~TempFile() {
    if (!committed && !path.empty()) ::unlink(path.c_str());
  }
};

// Replaces path atomically: a new file in the same directory, mode 0600, fsynced, renamed over.
void write_config(const std::string& path, const json& doc) {
  std::string target = path;
  // A symlinked config.json (dotfile managers) is updated where it points.
  char resolved[PATH_MAX];
  struct stat st;
  if (::lstat(path.c_str(), &st) == 0 && S_ISLNK(st.st_mode) && ::realpath(path.c_str(), resolved)) target = resolved;
  size_t slash = target.find_last_of('/');
  std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : target.substr(0, slash));
  if (!path_exists(dir)) mkdir_p(dir, 0700);

  TempFile tmp;
  std::string tmpl = (dir == "/" ? "" : dir) + "/.config.json.XXXXXX";
  int fd = ::mkostemp(tmpl.data(), O_CLOEXEC);
  if (fd < 0) throw_errno("create a temporary file in " + dir);
  UniqueFd owner(fd);
  tmp.path = tmpl;
  if (::fchmod(fd, 0600) != 0) throw_errno("chmod " + tmpl);
  write_all(fd, doc.dump(1, '\t') + "\n", "write " + tmpl);
  if (::fsync(fd) != 0) throw_errno("fsync " + tmpl);
  if (::rename(tmpl.c_str(), target.c_str()) != 0) throw_errno("rename " + tmpl + " to " + target);
  tmp.committed = true;
}

}  // namespace

std::string auth_server_key(std::string_view domain) {
  return is_docker_hub(domain) ? std::string(kIndexServer) : std::string(domain);
}

std::string default_auth_config_path() {
  const char* dc = std::getenv("DOCKER_CONFIG");
  if (dc && *dc) return path_join(dc, "config.json");
  const char* home = std::getenv("HOME");
  std::string h = home && *home ? home : "";
  if (h.empty()) {
    auto pw = lookup_passwd_uid("/etc/passwd", ::getuid());
    if (!pw || pw->home.empty())
      throw Error("cannot locate the credentials file: neither DOCKER_CONFIG nor HOME is set");
    h = pw->home;
  }
  return path_join(path_join(h, ".docker"), "config.json");
}

std::optional<Credentials> load_credentials(std::string_view domain, const std::string& path_arg) {
  std::string path = resolve_path(path_arg);
  json doc = read_config(path);
  auto auths = doc.find("auths");
  if (auths == doc.end()) return std::nullopt;
  std::string key = auth_server_key(domain);
  if (auto it = auths->find(key); it != auths->end()) return decode_entry(path, key, *it);
  for (auto& [k, v] : auths->items())
    if (key_matches_domain(k, domain)) return decode_entry(path, k, v);
  return std::nullopt;
}

void store_credentials(std::string_view domain, const Credentials& creds, const std::string& path_arg) {
  if (creds.username.find(':') != std::string::npos)
    throw Error("invalid username \"" + creds.username + "\": it may not contain ':'");
  std::string path = resolve_path(path_arg);
  json doc = read_config(path);
  std::string key = auth_server_key(domain);
  json& auths = doc["auths"];
  // Drop legacy spellings of the same server so the new credentials are the ones found.
  std::vector<std::string> stale;
  if (auths.is_object())
    for (auto& [k, v] : auths.items())
      if (k != key && key_matches_domain(k, domain)) stale.push_back(k);
  for (auto& k : stale) auths.erase(k);
  auths[key] = json{{"auth", base64_encode(creds.username + ":" + creds.password)}};
  write_config(path, doc);
}

bool erase_credentials(std::string_view domain, const std::string& path_arg) {
  std::string path = resolve_path(path_arg);
  json doc = read_config(path);
  auto auths = doc.find("auths");
  if (auths == doc.end()) return false;
  std::vector<std::string> keys;
  for (auto& [k, v] : auths->items())
    if (k == auth_server_key(domain) || key_matches_domain(k, domain)) keys.push_back(k);
  if (keys.empty()) return false;
  for (auto& k : keys) auths->erase(k);
  write_config(path, doc);
  return true;
}

std::string base64_encode(std::string_view data) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((data.size() + 2) / 3 * 4);
  size_t i = 0;
  auto byte = [&](size_t k) { return static_cast<unsigned>(static_cast<unsigned char>(data[k])); };
  for (; i + 3 <= data.size(); i += 3) {
    unsigned v = byte(i) << 16 | byte(i + 1) << 8 | byte(i + 2);
    out += {kAlphabet[v >> 18], kAlphabet[(v >> 12) & 63], kAlphabet[(v >> 6) & 63], kAlphabet[v & 63]};
  }
  if (data.size() - i == 1) {
    unsigned v = byte(i) << 16;
    out += {kAlphabet[v >> 18], kAlphabet[(v >> 12) & 63], '=', '='};
  } else if (data.size() - i == 2) {
    unsigned v = byte(i) << 16 | byte(i + 1) << 8;
    out += {kAlphabet[v >> 18], kAlphabet[(v >> 12) & 63], kAlphabet[(v >> 6) & 63], '='};
  }
  return out;
}

std::string base64_decode(std::string_view text) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  // Padding is optional on input; anything else outside the alphabet is an error.
  while (!text.empty() && text.back() == '=') text.remove_suffix(1);
  if (text.size() % 4 == 1) throw Error("invalid base64: truncated");
  std::string out;
  out.reserve(text.size() * 3 / 4);
  unsigned acc = 0;
  int bits = 0;
  for (char c : text) {
    int v = value(c);
    if (v < 0) throw Error("invalid base64: unexpected character");
    acc = (acc << 6) | static_cast<unsigned>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return out;
}

}  // namespace berth::image
