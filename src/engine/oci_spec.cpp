#include "engine/oci_spec.hpp"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <optional>
#include <set>

#include "storage/mount_spec.hpp"
#include "util/error.hpp"
#include "util/fd.hpp"
#include "util/strings.hpp"

namespace berth::engine {

extern const char* const seccomp_default_json;  // generated from seccomp-default.json

namespace {

using nlohmann::json;

constexpr const char* kDefaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
constexpr const char* kInitPath = "/sbin/docker-init";
constexpr int64_t kDefaultShmSize = 64 * 1024 * 1024;

const json& member(const json& obj, const char* key) {
  static const json null_value;
  if (!obj.is_object()) return null_value;
  auto it = obj.find(key);
  return it == obj.end() ? null_value : *it;
}

bool is_set(const json& obj, const char* key) { return !member(obj, key).is_null(); }

// docker's StrSlice: an array of strings, or one string.
std::vector<std::string> strings(const json& v) {
  std::vector<std::string> out;
  if (v.is_string()) {
    out.push_back(v.get<std::string>());
  } else if (v.is_array()) {
    for (const auto& s : v)
      if (s.is_string()) out.push_back(s.get<std::string>());
  }
  return out;
}

std::string str(const json& obj, const char* key) {
  const json& v = member(obj, key);
  return v.is_string() ? v.get<std::string>() : std::string();
}

bool boolean(const json& obj, const char* key) {
  const json& v = member(obj, key);
  return v.is_boolean() && v.get<bool>();
}

int64_t integer(const json& obj, const char* key) {
  const json& v = member(obj, key);
  return v.is_number_integer() ? v.get<int64_t>() : 0;
}

bool empty_list(const json& v) { return v.is_null() || (v.is_array() && v.empty()); }

std::string env_key(const std::string& kv) { return kv.substr(0, kv.find('=')); }

// The image's config object: OCI and docker both store it under "config".
const json& image_conf(const json& image_config) {
  if (is_set(image_config, "config")) return image_config["config"];
  return member(image_config, "Config");
}

// Go's path.Clean of the path made absolute (storage::clean_path is path.Clean itself).
std::string clean_abs(const std::string& p) { return storage::clean_path("/" + p); }

size_t depth(const std::string& path) { return static_cast<size_t>(std::count(path.begin(), path.end(), '/')); }

// Reads etc/passwd or etc/group inside the rootfs, resolved in the root: the image may make them
// symlinks, and those must not reach the host's files.
std::string read_in_root(const std::string& rootfs, const char* rel) {
  if (rootfs.empty()) return {};
  UniqueFd root(::open(rootfs.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!root) throw_errno("open rootfs " + rootfs);
  struct open_how how;
  std::memset(&how, 0, sizeof how);
  how.flags = O_RDONLY | O_CLOEXEC;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  int fd = static_cast<int>(::syscall(SYS_openat2, root.get(), rel, &how, sizeof how));
  if (fd < 0 && errno == ENOSYS) fd = ::openat(root.get(), rel, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    if (errno == ENOENT || errno == ENOTDIR || errno == ELOOP) return {};
    throw_errno(std::string("open ") + rel + " in " + rootfs);
  }
  UniqueFd file(fd);
  std::string out;
  char buf[8192];
  for (;;) {
    ssize_t n = ::read(file.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw_errno(std::string("read ") + rel + " in " + rootfs);
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > (64u << 20)) throw Error(std::string(rel) + " in " + rootfs + " is too large");
  }
  return out;
}

std::vector<std::string> split(std::string_view s, char sep) {
  std::vector<std::string> out;
  for (;;) {
    size_t c = s.find(sep);
    out.emplace_back(s.substr(0, c));
    if (c == std::string_view::npos) return out;
    s = s.substr(c + 1);
  }
}

std::optional<int64_t> parse_int(std::string_view s) {
  int64_t v = 0;
  if (s.empty()) return std::nullopt;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

struct PwLine {
  std::string name;
  int64_t uid = 0, gid = 0;
  std::string home;
};
struct GrLine {
  std::string name;
  int64_t gid = 0;
  std::vector<std::string> members;
};

std::vector<PwLine> parse_passwd(std::string_view text) {
  std::vector<PwLine> out;
  for (const auto& line : split(text, '\n')) {
    auto f = split(line, ':');
    if (f.size() < 4 || f[0].empty() || f[0][0] == '#') continue;
    auto uid = parse_int(f[2]);
    auto gid = parse_int(f[3]);
    if (!uid || !gid) continue;
    out.push_back({f[0], *uid, *gid, f.size() > 5 ? f[5] : std::string()});
  }
  return out;
}

std::vector<GrLine> parse_group(std::string_view text) {
  std::vector<GrLine> out;
  for (const auto& line : split(text, '\n')) {
    auto f = split(line, ':');
    if (f.size() < 3 || f[0].empty() || f[0][0] == '#') continue;
    auto gid = parse_int(f[2]);
    if (!gid) continue;
    GrLine g{f[0], *gid, {}};
    if (f.size() > 3 && !f[3].empty())
      for (auto& m : split(f[3], ',')) g.members.push_back(std::string(trim(m)));
    out.push_back(std::move(g));
  }
  return out;
}

uint32_t checked_id(int64_t id) {
  if (id < 0 || id > 2147483647) throw Error("uids and gids must be in range 0-2147483647");
  return static_cast<uint32_t>(id);
}

// Moby's DefaultCapabilities, in its order.
const std::vector<std::string>& default_capabilities() {
  static const std::vector<std::string> caps = {
      "CAP_CHOWN",   "CAP_DAC_OVERRIDE", "CAP_FSETID",           "CAP_FOWNER",
      "CAP_MKNOD",   "CAP_NET_RAW",      "CAP_SETGID",           "CAP_SETUID",
      "CAP_SETFCAP", "CAP_SETPCAP",      "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT",
      "CAP_KILL",    "CAP_AUDIT_WRITE"};
  return caps;
}

std::string normalize_cap(const std::string& name) {
  std::string up;
  for (char c : name) up += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (up == "ALL") return up;
  if (up.rfind("CAP_", 0) != 0) up = "CAP_" + up;
  const auto& all = all_capabilities();
  if (std::find(all.begin(), all.end(), up) == all.end()) throw Error("unknown capability: \"" + up + "\"");
  return up;
}

bool contains(const std::vector<std::string>& v, std::string_view s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

// "4.8" vs "6.1.0-18-amd64": compares major.minor only, as moby does.
bool kernel_at_least(std::string_view release, std::string_view min) {
  auto parse = [](std::string_view s) {
    std::pair<int, int> v{0, 0};
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v.first);
    if (ec == std::errc() && p < s.data() + s.size() && *p == '.')
      std::from_chars(p + 1, s.data() + s.size(), v.second);
    return v;
  };
  if (release.empty()) return true;
  return parse(release) >= parse(min);
}

std::string go_arch_to_seccomp(std::string_view arch) {
  static const std::pair<const char*, const char*> table[] = {
      {"amd64", "SCMP_ARCH_X86_64"},    {"386", "SCMP_ARCH_X86"},
      {"arm64", "SCMP_ARCH_AARCH64"},   {"arm", "SCMP_ARCH_ARM"},
      {"ppc64le", "SCMP_ARCH_PPC64LE"}, {"ppc64", "SCMP_ARCH_PPC64"},
      {"s390x", "SCMP_ARCH_S390X"},     {"s390", "SCMP_ARCH_S390"},
      {"riscv64", "SCMP_ARCH_RISCV64"}, {"mips64le", "SCMP_ARCH_MIPSEL64"},
      {"mips64", "SCMP_ARCH_MIPS64"},   {"mipsle", "SCMP_ARCH_MIPSEL"},
      {"mips", "SCMP_ARCH_MIPS"},       {"loong64", "SCMP_ARCH_LOONGARCH64"}};
  for (auto& [go, scmp] : table)
    if (arch == go) return scmp;
  return {};
}

}  // namespace

const std::vector<std::string>& default_masked_paths() {
  static const std::vector<std::string> paths = {"/proc/asound",
                                                 "/proc/acpi",
                                                 "/proc/kcore",
                                                 "/proc/keys",
                                                 "/proc/latency_stats",
                                                 "/proc/timer_list",
                                                 "/proc/timer_stats",
                                                 "/proc/sched_debug",
                                                 "/proc/scsi",
                                                 "/sys/firmware",
                                                 "/sys/devices/virtual/powercap"};
  return paths;
}

const std::vector<std::string>& default_readonly_paths() {
  static const std::vector<std::string> paths = {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                                                 "/proc/sysrq-trigger"};
  return paths;
}

namespace {

// SecurityOpt entries docker's daemon accepts ("key=value", or the old "key:value").
struct SecurityOpts {
  bool no_new_privileges = false;
  bool seccomp_unconfined = false;
  bool systempaths_unconfined = false;
  std::string seccomp_profile;  // inline JSON (the CLI reads the file into the option)
};

SecurityOpts parse_security_opts(const std::vector<std::string>& opts) {
  SecurityOpts out;
  for (const auto& opt : opts) {
    if (opt == "no-new-privileges") {
      out.no_new_privileges = true;
      continue;
    }
    size_t sep = opt.find('=');
    if (sep == std::string::npos) sep = opt.find(':');
    if (sep == std::string::npos) throw Error("invalid --security-opt 1: \"" + opt + "\"");
    std::string key = opt.substr(0, sep), value = opt.substr(sep + 1);
    if (key == "no-new-privileges") {
      if (value != "true" && value != "false") throw Error("invalid --security-opt 2: \"" + opt + "\"");
      out.no_new_privileges = value == "true";
    } else if (key == "seccomp") {
      if (value == "unconfined")
        out.seccomp_unconfined = true;
      else
        out.seccomp_profile = value == "builtin" ? std::string() : value;  // builtin: the default profile
    } else if (key == "systempaths") {
      if (value != "unconfined") throw Error("invalid --security-opt 2: \"" + opt + "\"");
      out.systempaths_unconfined = true;
    } else if (key == "label" || key == "apparmor") {
      // No SELinux or AppArmor in berth: accepted and ignored.
    } else {
      throw Error("invalid --security-opt 2: \"" + opt + "\"");
    }
  }
  return out;
}

json mount_json(const std::string& dst, const std::string& type, const std::string& src,
                const std::vector<std::string>& options) {
  return {{"destination", dst}, {"type", type}, {"source", src}, {"options", options}};
}

std::string rlimit_name(const std::string& name) {
  std::string up = "RLIMIT_";
  for (char c : name) up += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return up;
}

}  // namespace

const std::vector<std::string>& all_capabilities() {
  static const std::vector<std::string> caps = {"CAP_CHOWN",
                                                "CAP_DAC_OVERRIDE",
                                                "CAP_DAC_READ_SEARCH",
                                                "CAP_FOWNER",
                                                "CAP_FSETID",
                                                "CAP_KILL",
                                                "CAP_SETGID",
                                                "CAP_SETUID",
                                                "CAP_SETPCAP",
                                                "CAP_LINUX_IMMUTABLE",
                                                "CAP_NET_BIND_SERVICE",
                                                "CAP_NET_BROADCAST",
                                                "CAP_NET_ADMIN",
                                                "CAP_NET_RAW",
                                                "CAP_IPC_LOCK",
                                                "CAP_IPC_OWNER",
                                                "CAP_SYS_MODULE",
                                                "CAP_SYS_RAWIO",
                                                "CAP_SYS_CHROOT",
                                                "CAP_SYS_PTRACE",
                                                "CAP_SYS_PACCT",
                                                "CAP_SYS_ADMIN",
                                                "CAP_SYS_BOOT",
                                                "CAP_SYS_NICE",
                                                "CAP_SYS_RESOURCE",
                                                "CAP_SYS_TIME",
                                                "CAP_SYS_TTY_CONFIG",
                                                "CAP_MKNOD",
                                                "CAP_LEASE",
                                                "CAP_AUDIT_WRITE",
                                                "CAP_AUDIT_CONTROL",
                                                "CAP_SETFCAP",
                                                "CAP_MAC_OVERRIDE",
                                                "CAP_MAC_ADMIN",
                                                "CAP_SYSLOG",
                                                "CAP_WAKE_ALARM",
                                                "CAP_BLOCK_SUSPEND",
                                                "CAP_AUDIT_READ",
                                                "CAP_PERFMON",
                                                "CAP_BPF",
                                                "CAP_CHECKPOINT_RESTORE"};
  return caps;
}

std::vector<std::string> effective_capabilities(const std::vector<std::string>& cap_add,
                                                const std::vector<std::string>& cap_drop, bool privileged) {
  std::vector<std::string> adds, drops;
  for (const auto& c : cap_add)
    if (auto n = normalize_cap(c); !contains(adds, n)) adds.push_back(n);
  for (const auto& c : cap_drop)
    if (auto n = normalize_cap(c); !contains(drops, n)) drops.push_back(n);
  if (privileged) return all_capabilities();
  std::vector<std::string> caps;
  if (contains(adds, "ALL")) {
    for (const auto& c : all_capabilities())
      if (!contains(drops, c)) caps.push_back(c);
  } else if (contains(drops, "ALL")) {
    caps = adds;  // drop everything, then exactly what was added
  } else {
    for (const auto& c : default_capabilities())
      if (!contains(drops, c)) caps.push_back(c);
    for (const auto& c : adds)
      if (!contains(caps, c)) caps.push_back(c);
  }
  return caps;
}

std::string_view native_go_arch() {
#if defined(__x86_64__)
  return "amd64";
#elif defined(__aarch64__)
  return "arm64";
#elif defined(__i386__)
  return "386";
#elif defined(__arm__)
  return "arm";
#elif defined(__powerpc64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  return "ppc64le";
#elif defined(__s390x__)
  return "s390x";
#elif defined(__riscv) && __riscv_xlen == 64
  return "riscv64";
#elif defined(__loongarch64)
  return "loong64";
#else
  return "unknown";
#endif
}

const json& default_seccomp_profile() {
  static const json profile = json::parse(seccomp_default_json);
  return profile;
}

json seccomp_profile_to_oci(const json& profile, const std::vector<std::string>& caps, std::string_view go_arch,
                            std::string_view kernel_release) {
  if (!profile.is_object() || !profile.contains("defaultAction")) throw Error("seccomp profile: missing defaultAction");
  json out = {{"defaultAction", profile["defaultAction"]}};
  if (is_set(profile, "defaultErrnoRet")) out["defaultErrnoRet"] = profile["defaultErrnoRet"];
  json arches = json::array();
  const std::string native = go_arch_to_seccomp(go_arch);
  if (is_set(profile, "archMap")) {
    for (const auto& a : profile["archMap"]) {
      if (str(a, "architecture") != native || native.empty()) continue;
      arches.push_back(native);
      for (const auto& sub : strings(member(a, "subArchitectures"))) arches.push_back(sub);
    }
  } else if (is_set(profile, "architectures")) {
    arches = profile["architectures"];
  }
  out["architectures"] = arches;
  if (is_set(profile, "flags")) out["flags"] = profile["flags"];
  if (is_set(profile, "listenerPath")) out["listenerPath"] = profile["listenerPath"];
  json rules = json::array();
  for (const auto& rule : member(profile, "syscalls")) {
    const json& ex = member(rule, "excludes");
    const json& in = member(rule, "includes");
    if (contains(strings(member(ex, "arches")), go_arch)) continue;
    bool skip = false;
    for (const auto& c : strings(member(ex, "caps"))) skip = skip || contains(caps, c);
    if (is_set(ex, "minKernel") && kernel_at_least(kernel_release, str(ex, "minKernel"))) skip = true;
    auto in_arches = strings(member(in, "arches"));
    if (!in_arches.empty() && !contains(in_arches, go_arch)) skip = true;
    for (const auto& c : strings(member(in, "caps"))) skip = skip || !contains(caps, c);
    if (is_set(in, "minKernel") && !kernel_at_least(kernel_release, str(in, "minKernel"))) skip = true;
    if (skip) continue;
    std::vector<std::string> names = strings(member(rule, "names"));
    if (names.empty() && is_set(rule, "name")) names.push_back(str(rule, "name"));
    if (names.empty()) continue;
    json r = {{"names", names}, {"action", member(rule, "action")}};
    if (is_set(rule, "errnoRet")) r["errnoRet"] = rule["errnoRet"];
    if (is_set(rule, "args")) {
      json args = json::array();
      for (const auto& a : rule["args"]) {
        json arg = {{"index", member(a, "index")}, {"value", member(a, "value")}, {"op", member(a, "op")}};
        if (is_set(a, "valueTwo")) arg["valueTwo"] = a["valueTwo"];
        args.push_back(arg);
      }
      r["args"] = args;
    }
    rules.push_back(std::move(r));
  }
  out["syscalls"] = rules;
  return out;
}

ResolvedUser resolve_user(std::string_view spec, std::string_view passwd_text, std::string_view group_text,
                          const std::vector<std::string>& group_add) {
  ResolvedUser r;
  std::string user_arg(spec.substr(0, spec.find(':')));
  bool has_group = spec.find(':') != std::string_view::npos;
  std::string group_arg = has_group ? std::string(spec.substr(spec.find(':') + 1)) : std::string();
  auto uid_arg = parse_int(user_arg);
  std::string matched;
  int64_t uid = 0, gid = 0;
  for (const auto& u : parse_passwd(passwd_text)) {
    bool match = user_arg.empty() ? u.uid == 0 : uid_arg ? u.uid == *uid_arg : u.name == user_arg;
    if (!match) continue;
    uid = u.uid;
    gid = u.gid;
    if (!u.home.empty()) r.home = u.home;
    matched = u.name;
    break;
  }
  if (matched.empty() && !user_arg.empty()) {
    if (!uid_arg) throw Error("unable to find user " + user_arg + ": no matching entries in passwd file");
    uid = *uid_arg;
  }
  r.uid = checked_id(uid);
  std::vector<GrLine> groups;
  if (!group_arg.empty() || !matched.empty() || !group_add.empty()) groups = parse_group(group_text);
  std::vector<uint32_t> sgids;
  if (!group_arg.empty()) {
    auto gid_arg = parse_int(group_arg);
    bool found = false;
    for (const auto& g : groups) {
      if (gid_arg ? g.gid == *gid_arg : g.name == group_arg) {
        gid = g.gid;
        found = true;
        break;
      }
    }
    if (!found) {
      if (!gid_arg) throw Error("unable to find group " + group_arg + ": no matching entries in group file");
      gid = *gid_arg;
    }
  } else if (!matched.empty()) {
    // Supplementary groups: those listing the user by name.
    for (const auto& g : groups)
      if (contains(g.members, matched)) sgids.push_back(checked_id(g.gid));
  }
  r.gid = checked_id(gid);
  for (const auto& ag : group_add) {
    std::optional<int64_t> found;
    for (const auto& g : groups)
      if (g.name == ag || std::to_string(g.gid) == ag) {
        found = g.gid;
        break;
      }
    if (!found) {
      found = parse_int(ag);
      if (!found) throw Error("Unable to find group " + ag + ": no matching entries in group file");
    }
    sgids.push_back(checked_id(*found));
  }
  // Primary gid first (moby lists it so a setgroups() can't drop it), no duplicates.
  r.additional_gids.push_back(r.gid);
  for (uint32_t g : sgids)
    if (std::find(r.additional_gids.begin(), r.additional_gids.end(), g) == r.additional_gids.end())
      r.additional_gids.push_back(g);
  return r;
}

json merge_config(const json& config, const json& image_config) {
  json user = config.is_object() ? config : json::object();
  const json& img = image_conf(image_config);
  if (!img.is_object()) return user;
  if (str(user, "User").empty() && is_set(img, "User")) user["User"] = img["User"];
  // ExposedPorts and Volumes: unions.
  for (const char* key : {"ExposedPorts", "Volumes"}) {
    const json& from = member(img, key);
    if (!from.is_object() || from.empty()) continue;
    if (!member(user, key).is_object()) user[key] = json::object();
    for (auto& [k, v] : from.items())
      if (!user[key].contains(k)) user[key][k] = v.is_null() ? json::object() : v;
  }
  // Env: the user's entries, then the image's whose key the user didn't set.
  std::vector<std::string> env = strings(member(user, "Env"));
  std::vector<std::string> keys;
  for (const auto& e : env) keys.push_back(env_key(e));
  for (const auto& e : strings(member(img, "Env")))
    if (!contains(keys, env_key(e))) env.push_back(e);
  if (!env.empty() || is_set(user, "Env")) user["Env"] = env;
  // Labels: the image's, overridden per key by the user's.
  const json& img_labels = member(img, "Labels");
  if (img_labels.is_object()) {
    if (!member(user, "Labels").is_object()) user["Labels"] = json::object();
    for (auto& [k, v] : img_labels.items())
      if (!user["Labels"].contains(k)) user["Labels"][k] = v;
  }
  // Entrypoint and Cmd: an explicit entrypoint (even [""], the reset) drops the image's Cmd.
  if (empty_list(member(user, "Entrypoint"))) {
    if (empty_list(member(user, "Cmd")) && is_set(img, "Cmd")) user["Cmd"] = img["Cmd"];
    if (!is_set(user, "Entrypoint") && is_set(img, "Entrypoint")) user["Entrypoint"] = img["Entrypoint"];
  }
  // Healthcheck: the user's fields, zero ones from the image's.
  const json& img_hc = member(img, "Healthcheck");
  if (img_hc.is_object()) {
    if (!member(user, "Healthcheck").is_object()) {
      user["Healthcheck"] = img_hc;
    } else {
      json& hc = user["Healthcheck"];
      if (empty_list(member(hc, "Test")) && is_set(img_hc, "Test")) hc["Test"] = img_hc["Test"];
      for (const char* k : {"Interval", "Timeout", "StartPeriod", "StartInterval", "Retries"})
        if (integer(hc, k) == 0 && is_set(img_hc, k)) hc[k] = img_hc[k];
    }
  }
  if (str(user, "WorkingDir").empty() && is_set(img, "WorkingDir")) user["WorkingDir"] = img["WorkingDir"];
  if (str(user, "StopSignal").empty() && is_set(img, "StopSignal")) user["StopSignal"] = img["StopSignal"];
  return user;
}

EffectiveConfig effective_config(const SpecInput& in) {
  json cfg = merge_config(in.config, in.image_config);
  EffectiveConfig e;
  e.entrypoint = strings(member(cfg, "Entrypoint"));
  if (e.entrypoint.size() == 1 && e.entrypoint[0].empty()) e.entrypoint.clear();  // --entrypoint "": reset
  e.cmd = strings(member(cfg, "Cmd"));
  e.args = e.entrypoint;
  e.args.insert(e.args.end(), e.cmd.begin(), e.cmd.end());
  if (e.args.empty()) throw Error("no command specified");
  e.hostname = str(cfg, "Hostname");
  if (e.hostname.empty()) e.hostname = in.id.substr(0, 12);
  e.domainname = str(cfg, "Domainname");
  e.user = str(cfg, "User");
  e.stop_signal = str(cfg, "StopSignal");
  std::string wd = str(cfg, "WorkingDir");
  if (!wd.empty()) {
    if (wd[0] != '/') throw Error("the working directory '" + wd + "' is invalid, it needs to be an absolute path");
    e.cwd = clean_abs(wd);
  }
  // docker's CreateDaemonEnvironment: PATH, HOSTNAME, TERM, then Config.Env replacing by key; an
  // entry without '=' unsets.
  e.env = {kDefaultPath, "HOSTNAME=" + e.hostname};
  if (boolean(cfg, "Tty")) e.env.push_back("TERM=xterm");
  for (const auto& kv : strings(member(cfg, "Env"))) {
    std::string key = env_key(kv);
    auto it = std::find_if(e.env.begin(), e.env.end(), [&](const std::string& x) { return env_key(x) == key; });
    if (kv.find('=') == std::string::npos) {
      if (it != e.env.end()) e.env.erase(it);
    } else if (it != e.env.end()) {
      *it = kv;
    } else {
      e.env.push_back(kv);
    }
  }
  return e;
}

int64_t memory_swap_limit(const json& hc) {
  int64_t swap = integer(hc, "MemorySwap");
  const int64_t mem = integer(hc, "Memory");
  return swap == 0 && mem > 0 ? 2 * mem : swap;  // the daemon's default: as much swap as memory
}

json resource_limits(const json& hc) {
  json limits = json::object();
  json memory = json::object();
  const int64_t mem = integer(hc, "Memory");
  if (mem > 0) memory["limit"] = mem;
  if (integer(hc, "MemoryReservation") > 0) memory["reservation"] = integer(hc, "MemoryReservation");
  if (int64_t swap = memory_swap_limit(hc); swap != 0) memory["swap"] = swap;
  if (member(hc, "MemorySwappiness").is_number_integer() && integer(hc, "MemorySwappiness") >= 0)
    memory["swappiness"] = integer(hc, "MemorySwappiness");
  if (boolean(hc, "OomKillDisable")) memory["disableOOMKiller"] = true;
  if (!memory.empty()) limits["memory"] = memory;

  json cpu = json::object();
  if (integer(hc, "CpuShares") > 0) cpu["shares"] = integer(hc, "CpuShares");
  if (integer(hc, "NanoCpus") > 0) {
    cpu["period"] = 100000;
    cpu["quota"] = integer(hc, "NanoCpus") * 100000 / 1000000000;
  } else {
    if (integer(hc, "CpuPeriod") > 0) cpu["period"] = integer(hc, "CpuPeriod");
    if (integer(hc, "CpuQuota") != 0) cpu["quota"] = integer(hc, "CpuQuota");
  }
  if (!str(hc, "CpusetCpus").empty()) cpu["cpus"] = str(hc, "CpusetCpus");
  if (!str(hc, "CpusetMems").empty()) cpu["mems"] = str(hc, "CpusetMems");
  if (!cpu.empty()) limits["cpu"] = cpu;
  if (member(hc, "PidsLimit").is_number_integer()) {
    int64_t pids = integer(hc, "PidsLimit");
    if (pids != 0)
      limits["pids"] = {{"limit", pids < 0 ? -1 : pids}};
    else
      limits["pids"] = {{"limit", -1}};
  }
  if (integer(hc, "BlkioWeight") > 0) limits["blockIO"] = {{"weight", integer(hc, "BlkioWeight")}};
  return limits;
}

json build_oci_spec(const SpecInput& in) {
  EffectiveConfig eff = effective_config(in);
  const json& cfg = in.config;
  const json& hc = in.host_config;
  const bool privileged = boolean(hc, "Privileged");
  SecurityOpts sec = parse_security_opts(strings(member(hc, "SecurityOpt")));
  const auto caps = effective_capabilities(strings(member(hc, "CapAdd")), strings(member(hc, "CapDrop")), privileged);

  // process
  ResolvedUser user = resolve_user(eff.user, read_in_root(in.rootfs, "etc/passwd"),
                                   read_in_root(in.rootfs, "etc/group"), strings(member(hc, "GroupAdd")));
  std::vector<std::string> args = eff.args;
  const bool init = boolean(hc, "Init");
  if (init) {
    if (in.init_path.empty()) throw Error("--init: no init binary (docker-init) configured");
    args.insert(args.begin(), {kInitPath, "--"});
  }
  json process = {
      {"terminal", boolean(cfg, "Tty")},
      {"user", {{"uid", user.uid}, {"gid", user.gid}, {"additionalGids", user.additional_gids}}},
      {"args", args},
      {"env", eff.env},
      {"cwd", eff.cwd},
      {"capabilities", {{"bounding", caps}, {"effective", caps}, {"permitted", caps}}},
      {"oomScoreAdj", integer(hc, "OomScoreAdj")},
  };
  // HostConfig.ConsoleSize is [height, width]; zeros mean unknown.
  const json& console = member(hc, "ConsoleSize");
  if (console.is_array() && console.size() == 2 && console[0].is_number_integer() && console[1].is_number_integer() &&
      console[0].get<int64_t>() > 0 && console[1].get<int64_t>() > 0)
    process["consoleSize"] = {{"height", console[0].get<int64_t>()}, {"width", console[1].get<int64_t>()}};
  if (sec.no_new_privileges) process["noNewPrivileges"] = true;
  json rlimits = json::array();
  for (const auto& u : member(hc, "Ulimits"))
    rlimits.push_back(
        {{"type", rlimit_name(str(u, "Name"))}, {"hard", integer(u, "Hard")}, {"soft", integer(u, "Soft")}});
  if (!rlimits.empty()) process["rlimits"] = rlimits;

  json spec = {{"ociVersion", "1.1.0"},
               {"process", process},
               {"root", {{"path", "rootfs"}, {"readonly", boolean(hc, "ReadonlyRootfs")}}}};

  // namespaces, in moby's order; "host" modes share the host's.
  const std::string net = str(hc, "NetworkMode");
  json namespaces = json::array({{{"type", "mount"}}});
  if (net.rfind("container:", 0) == 0) {
    if (in.netns_path.empty()) throw Error("network mode " + net + ": the container's network namespace is unknown");
    namespaces.push_back({{"type", "network"}, {"path", in.netns_path}});
  } else if (net != "host" && !in.netns_path.empty()) {
    namespaces.push_back({{"type", "network"}, {"path", in.netns_path}});  // berth made it (bridge networks)
  } else if (net != "host") {
    namespaces.push_back({{"type", "network"}});
  }
  const bool uts_host = str(hc, "UTSMode") == "host";
  if (!uts_host) namespaces.push_back({{"type", "uts"}});
  if (str(hc, "PidMode") != "host") namespaces.push_back({{"type", "pid"}});
  const std::string ipc = str(hc, "IpcMode");
  if (ipc != "host") namespaces.push_back({{"type", "ipc"}});
  const std::string cgroupns = str(hc, "CgroupnsMode").empty() ? in.default_cgroupns : str(hc, "CgroupnsMode");
  if (cgroupns != "host") namespaces.push_back({{"type", "cgroup"}});
  if (!uts_host) {
    spec["hostname"] = eff.hostname;
    if (!eff.domainname.empty()) spec["domainname"] = eff.domainname;
  }

  // mounts: moby's defaults, minus those a user mount replaces; then the user mounts and the
  // engine's /etc files, parents before children.
  std::vector<std::string> ro = {"ro"};
  std::vector<json> defaults = {
      mount_json("/proc", "proc", "proc", {"nosuid", "noexec", "nodev"}),
      mount_json("/dev", "tmpfs", "tmpfs", {"nosuid", "strictatime", "mode=755", "size=65536k"}),
      mount_json("/dev/pts", "devpts", "devpts",
                 {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}),
      mount_json("/sys", "sysfs", "sysfs",
                 privileged ? std::vector<std::string>{"nosuid", "noexec", "nodev"}
                            : std::vector<std::string>{"nosuid", "noexec", "nodev", "ro"}),
      mount_json("/sys/fs/cgroup", "cgroup", "cgroup",
                 privileged ? std::vector<std::string>{"nosuid", "noexec", "nodev"}
                            : std::vector<std::string>{"ro", "nosuid", "noexec", "nodev"}),
      mount_json("/dev/mqueue", "mqueue", "mqueue", {"nosuid", "noexec", "nodev"}),
  };
  if (ipc == "host") {
    defaults.push_back(mount_json("/dev/shm", "bind", "/dev/shm", {"rbind", "rprivate"}));
  } else if (ipc != "none") {
    int64_t shm = integer(hc, "ShmSize") > 0 ? integer(hc, "ShmSize") : kDefaultShmSize;
    defaults.push_back(mount_json("/dev/shm", "tmpfs", "shm",
                                  {"nosuid", "noexec", "nodev", "mode=1777", "size=" + std::to_string(shm)}));
  }
  std::vector<json> user_mounts;
  std::set<std::string> user_dests;
  for (const auto& m : in.mounts) {
    user_mounts.push_back(mount_json(m.destination, m.type, m.source, m.options));
    user_dests.insert(clean_abs(m.destination));
  }
  const bool readonly_root = boolean(hc, "ReadonlyRootfs");
  auto etc_file = [&](const std::string& src, const char* dst) {
    if (src.empty() || user_dests.count(dst)) return;
    std::vector<std::string> opts = {"rbind", "rprivate"};
    if (readonly_root) opts.push_back("ro");
    user_mounts.push_back(mount_json(dst, "bind", src, opts));
  };
  etc_file(in.resolv_conf_path, "/etc/resolv.conf");
  etc_file(in.hostname_path, "/etc/hostname");
  etc_file(in.hosts_path, "/etc/hosts");
  std::stable_sort(user_mounts.begin(), user_mounts.end(), [](const json& a, const json& b) {
    return depth(clean_abs(a["destination"])) < depth(clean_abs(b["destination"]));
  });
  json mounts = json::array();
  const bool user_dev = user_dests.count("/dev") > 0;
  for (auto& m : defaults) {
    std::string dst = m["destination"];
    if (user_dests.count(dst) || (user_dev && dst.rfind("/dev/", 0) == 0)) continue;
    mounts.push_back(m);
  }
  for (auto& m : user_mounts) mounts.push_back(m);
  if (init) mounts.push_back(mount_json(kInitPath, "bind", in.init_path, {"bind", "ro"}));
  spec["mounts"] = mounts;

  // linux
  json linux_ = {{"namespaces", namespaces},
                 {"cgroupsPath", in.cgroups_path.empty() ? "/berth/" + in.id : in.cgroups_path}};
  if (!privileged && !sec.systempaths_unconfined) {
    linux_["maskedPaths"] = default_masked_paths();
    linux_["readonlyPaths"] = default_readonly_paths();
  }

  json resources = json::object();
  json dev_rules = json::array();
  if (privileged) {
    dev_rules.push_back({{"allow", true}, {"access", "rwm"}});
  } else {
    dev_rules.push_back({{"allow", false}, {"access", "rwm"}});
    auto allow = [&](int64_t major, int64_t minor) {
      dev_rules.push_back({{"allow", true}, {"type", "c"}, {"major", major}, {"minor", minor}, {"access", "rwm"}});
    };
    allow(1, 5);  // zero
    allow(1, 3);  // null
    allow(1, 9);  // urandom
    allow(1, 8);  // random
    allow(5, 0);  // tty
    allow(5, 1);  // console
    dev_rules.push_back({{"allow", false}, {"type", "c"}, {"major", 10}, {"minor", 229}, {"access", "rwm"}});  // fuse
  }
  json devices = json::array();
  for (const auto& d : in.devices) {
    devices.push_back({{"path", d.path},
                       {"type", d.type},
                       {"major", d.major},
                       {"minor", d.minor},
                       {"fileMode", d.file_mode},
                       {"uid", d.uid},
                       {"gid", d.gid}});
    if (!privileged)
      dev_rules.push_back(
          {{"allow", true}, {"type", d.type}, {"major", d.major}, {"minor", d.minor}, {"access", d.permissions}});
  }
  if (!devices.empty()) linux_["devices"] = devices;
  resources["devices"] = dev_rules;

  resources.update(resource_limits(hc));
  linux_["resources"] = resources;

  json sysctl = json::object();
  if (net != "host") {
    // Unprivileged ports and ping for the container's own network namespace, as moby sets.
    sysctl["net.ipv4.ip_unprivileged_port_start"] = "0";
    sysctl["net.ipv4.ping_group_range"] = "0 2147483647";
  }
  const json& user_sysctls = member(hc, "Sysctls");
  if (user_sysctls.is_object())
    for (auto& [k, v] : user_sysctls.items()) sysctl[k] = v.is_string() ? v.get<std::string>() : v.dump();
  if (!sysctl.empty()) linux_["sysctl"] = sysctl;

  if (!privileged && !sec.seccomp_unconfined) {
    json profile;
    if (!sec.seccomp_profile.empty()) {
      try {
        profile = json::parse(sec.seccomp_profile);
      } catch (const json::parse_error& e) {
        throw Error(std::string("invalid seccomp profile in --security-opt: ") + e.what());
      }
    }
    const json& p = sec.seccomp_profile.empty() ? default_seccomp_profile() : profile;
    linux_["seccomp"] =
        seccomp_profile_to_oci(p, caps, in.arch.empty() ? native_go_arch() : in.arch, in.kernel_release);
  }
  // A shared or slave user mount needs the root's propagation to match, as moby sets it.
  for (const auto& m : in.mounts) {
    for (const auto& o : m.options) {
      if (o == "shared" || o == "rshared") linux_["rootfsPropagation"] = "rshared";
      if ((o == "slave" || o == "rslave") && !linux_.contains("rootfsPropagation"))
        linux_["rootfsPropagation"] = "rslave";
    }
  }
  spec["linux"] = linux_;
  const json& annotations = member(hc, "Annotations");
  if (annotations.is_object() && !annotations.empty()) spec["annotations"] = annotations;
  return spec;
}

}  // namespace berth::engine

namespace berth::engine {

MountPlan plan_mount(const storage::MountSpec& m, const std::string& host_source) {
  MountPlan p;
  p.destination = m.target;
  const std::string propagation = m.propagation.empty() ? "rprivate" : m.propagation;
  if (m.type == storage::MountType::Tmpfs) {
    // moby: noexec,nosuid,nodev and the propagation, then the user's options, a later option
    // replacing an earlier one of its kind (exec after noexec).
    p.type = "tmpfs";
    p.source = "tmpfs";
    std::vector<std::string> opts = {"noexec", "nosuid", "nodev", propagation};
    for (const auto& o : m.tmpfs_options) opts.push_back(o);
    if (m.tmpfs_size > 0) opts.push_back("size=" + std::to_string(m.tmpfs_size));
    if (m.tmpfs_mode != 0) {
      char mode[32];
      std::snprintf(mode, sizeof mode, "mode=%o", m.tmpfs_mode);
      opts.push_back(mode);
    }
    if (m.read_only) opts.push_back("ro");
    auto kind = [](const std::string& o) -> std::string {
      static const char* pairs[][2] = {{"exec", "noexec"},
                                       {"suid", "nosuid"},
                                       {"dev", "nodev"},
                                       {"ro", "rw"},
                                       {"sync", "async"},
                                       {"atime", "noatime"},
                                       {"diratime", "nodiratime"},
                                       {"relatime", "norelatime"},
                                       {"strictatime", "nostrictatime"},
                                       {"mand", "nomand"}};
      size_t eq = o.find('=');
      if (eq != std::string::npos) return o.substr(0, eq + 1);
      for (auto& pr : pairs)
        if (o == pr[0] || o == pr[1]) return pr[0];
      for (const char* prop : {"private", "rprivate", "shared", "rshared", "slave", "rslave"})
        if (o == prop) return "propagation";
      return o;
    };
    for (const auto& o : opts) {
      auto same =
          std::find_if(p.options.begin(), p.options.end(), [&](const std::string& x) { return kind(x) == kind(o); });
      if (same != p.options.end())
        *same = o;
      else
        p.options.push_back(o);
    }
    return p;
  }
  // Binds and volumes: a recursive bind unless asked otherwise, ro when read-only, rprivate.
  p.type = "bind";
  p.source = host_source;
  p.options = {m.bind_nonrecursive ? "bind" : "rbind"};
  if (m.read_only) p.options.push_back("ro");
  // bind-recursive=readonly: submounts read-only too (the runtime's mount_setattr option).
  if (m.read_only && m.bind_recursive == "readonly") p.options.push_back("rro");
  p.options.push_back(propagation);
  return p;
}

}  // namespace berth::engine
