#include "cli/container_flags.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <sstream>

#include "storage/mount_spec.hpp"
#include "util/docker_syntax.hpp"
#include "util/strings.hpp"

namespace berth::cli {
namespace {

using nlohmann::json;

// The flag as pflag names it in errors: "-m, --memory" or "--cpus".
std::string flag_display(const std::string& name) {
  for (const auto& f : container_create_flags(true))
    if (f.name == name) return f.shorthand ? std::string("-") + f.shorthand + ", --" + name : "--" + name;
  return "--" + name;
}

// pflag's wrapping of a value's parse error.
[[noreturn]] void bad_value(const std::string& flag, std::string_view value, const std::string& why) {
  throw UsageError("invalid argument \"" + std::string(value) + "\" for \"" + flag_display(flag) + "\" flag: " + why);
}

// The shared parsers (util/docker_syntax.hpp) throw berth::Error; the CLI's are usage errors (exit 125).
template <typename F>
auto as_usage_error(F&& parse) {
  try {
    return parse();
  } catch (const Error& e) {
    throw UsageError(e.what());
  }
}

// A pflag int/int64 flag's value.
int64_t int_flag(const ParsedArgs& a, const std::string& name, int64_t min = std::numeric_limits<int64_t>::min(),
                 int64_t max = std::numeric_limits<int64_t>::max()) {
  std::string v = a.get(name);
  auto n = parse_go_int(v);
  if (!n) bad_value(name, v, "strconv.ParseInt: parsing \"" + v + "\": invalid syntax");
  if (*n < min || *n > max) bad_value(name, v, "strconv.ParseInt: parsing \"" + v + "\": value out of range");
  return *n;
}

// A size flag (--memory, --shm-size): docker's RAMInBytes.
int64_t bytes_flag(const ParsedArgs& a, const std::string& name) {
  std::string v = a.get(name);
  try {
    return storage::parse_ram_size(v);
  } catch (const Error& e) {
    bad_value(name, v, e.what());
  }
}

// Opens path for reading; throws Go's wording, "open PATH: no such file or directory", with the
// reason from errno (the message docker prints for a missing --env-file).
std::string read_whole_file(const std::string& path, const std::string& prefix = "") {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    std::string why = std::strerror(errno);
    if (!why.empty()) why[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(why[0])));
    throw UsageError(prefix + "open " + path + ": " + why);
  }
  std::string out;
  char buf[8192];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int err = errno;
      ::close(fd);
      if (n < 0) throw UsageError(prefix + "read " + path + ": " + std::strerror(err));
      return out;
    }
    out.append(buf, static_cast<size_t>(n));
  }
}

bool is_ip(std::string_view s) {
  std::string z(s);
  unsigned char buf[16];
  return inet_pton(AF_INET, z.c_str(), buf) == 1 || inet_pton(AF_INET6, z.c_str(), buf) == 1;
}

// KEY=VALUE strings → a map; a bare KEY maps to "".
json kv_map(const std::vector<std::string>& items) {
  json m = json::object();
  for (const auto& kv : items) {
    size_t eq = kv.find('=');
    m[kv.substr(0, eq)] = eq == std::string::npos ? std::string() : kv.substr(eq + 1);
  }
  return m;
}

// docker's opts.ValidateEnv: a bare NAME takes the CLI's environment value when set, and is sent
// as is otherwise (the daemon then unsets NAME in the container).
std::string validate_env(const std::string& kv) {
  size_t eq = kv.find('=');
  std::string key = kv.substr(0, eq);
  if (key.empty()) throw UsageError("invalid environment variable: " + kv);
  if (eq != std::string::npos) return kv;
  if (const char* v = std::getenv(key.c_str())) return key + "=" + v;
  return kv;
}

void validate_label(const std::string& kv) {
  std::string key = kv.substr(0, kv.find('='));
  if (key.empty()) throw UsageError("invalid label '" + kv + "': empty name");
  if (std::string(trim(key)) != key) throw UsageError("label '" + key + "' contains whitespaces");
}

// Go's utf8.Valid, for env and label files.
bool valid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k)
      if ((static_cast<unsigned char>(s[i + k]) >> 6) != 2) return false;
    i += n;
  }
  return true;
}

std::pair<uint64_t, uint64_t> port_range(std::string_view s) {
  auto one = [](std::string_view p) -> std::optional<uint64_t> {
    auto n = parse_go_int(p);
    if (!n || *n < 0 || *n > 65535 || p[0] == '+' || p[0] == '-') return std::nullopt;
    return static_cast<uint64_t>(*n);
  };
  size_t dash = s.find('-');
  auto a = one(s.substr(0, dash));
  auto b = dash == std::string_view::npos ? a : one(s.substr(dash + 1));
  if (s.empty() || !a || !b || *b < *a) throw UsageError("invalid port range: " + std::string(s));
  return {*a, *b};
}

// nat.SplitProtoPort: "80/udp" → {"udp", "80"}; no protocol is tcp.
std::pair<std::string, std::string> split_proto(std::string_view s) {
  size_t slash = s.find('/');
  if (slash == std::string_view::npos) return {"tcp", std::string(s)};
  std::string proto(s.substr(slash + 1));
  return {proto.empty() ? "tcp" : proto, std::string(s.substr(0, slash))};
}

// The long options of moby's --ulimit names (go-units ulimitNameMapping).
bool valid_ulimit_name(std::string_view n) {
  static const char* names[] = {"core",   "cpu",   "data", "fsize",  "locks",  "memlock",    "msgqueue", "nice",
                                "nofile", "nproc", "rss",  "rtprio", "rttime", "sigpending", "stack",    "as"};
  for (const char* x : names)
    if (n == x) return true;
  return false;
}

// --device /dev/x[:/dev/y][:rwm]
json parse_device(const std::string& v) {
  std::vector<std::string> parts;
  std::stringstream ss(v);
  for (std::string p; std::getline(ss, p, ':');) parts.push_back(p);
  auto valid_mode = [](const std::string& m) {
    if (m.empty() || m.size() > 3) return false;
    for (char c : m)
      if (c != 'r' && c != 'w' && c != 'm') return false;
    return true;
  };
  std::string src, dst, perms = "rwm";
  switch (parts.size()) {
    case 3:
      if (!valid_mode(parts[2])) bad_value("device", v, "invalid device mode: " + parts[2]);
      perms = parts[2];
      [[fallthrough]];
    case 2:
      if (parts.size() == 2 && valid_mode(parts[1])) {
        perms = parts[1];
      } else {
        dst = parts[1];
      }
      [[fallthrough]];
    case 1:
      src = parts[0];
      break;
    default:
      bad_value("device", v, "bad format for path: " + v);
  }
  if (dst.empty()) dst = src;
  if (src.empty() || src[0] != '/') bad_value("device", v, src + " is not an absolute path");
  if (dst[0] != '/') bad_value("device", v, dst + " is not an absolute path");
  return {{"PathOnHost", src}, {"PathInContainer", dst}, {"CgroupPermissions", perms}};
}

// --device-cgroup-rule 'c 1:3 rwm'
void validate_cgroup_rule(const std::string& v) {
  auto bad = [&] { bad_value("device-cgroup-rule", v, "invalid device cgroup format '" + v + "'"); };
  std::stringstream ss(v);
  std::string type, nums, access, extra;
  ss >> type >> nums >> access;
  if (ss >> extra || (type != "a" && type != "b" && type != "c") || access.empty() || access.size() > 3) bad();
  for (char c : access)
    if (c != 'r' && c != 'w' && c != 'm') bad();
  size_t colon = nums.find(':');
  if (colon == std::string::npos) bad();
  for (const std::string& n : {nums.substr(0, colon), nums.substr(colon + 1)})
    if (n != "*" && (n.empty() || !std::all_of(n.begin(), n.end(), ::isdigit))) bad();
}

// --add-host host:ip (or host=ip): stored as docker's "host:ip".
std::string parse_extra_host(const std::string& v) {
  size_t sep = v.find('=');
  if (sep == std::string::npos) sep = v.find(':');
  if (sep == std::string::npos || sep == 0) bad_value("add-host", v, "bad format for add-host: \"" + v + "\"");
  std::string host = v.substr(0, sep), ip = v.substr(sep + 1);
  if (ip.size() > 2 && ip.front() == '[' && ip.back() == ']') ip = ip.substr(1, ip.size() - 2);
  if (ip != "host-gateway" && !is_ip(ip)) bad_value("add-host", v, "invalid IP address in add-host: \"" + ip + "\"");
  return host + ":" + ip;
}

bool valid_dns_search(const std::string& d) {
  if (d == ".") return true;
  std::string s = d;
  if (!s.empty() && s.back() == '.') s.pop_back();
  if (s.empty() || s.size() > 255 || s[0] == '-' || s[0] == '.') return false;
  for (char c : s)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '.') return false;
  return true;
}

// docker's ValidateSysctl: namespaced sysctls only.
void validate_sysctl(const std::string& v) {
  size_t eq = v.find('=');
  std::string key = v.substr(0, eq);
  static const char* exact[] = {"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
                                "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"};
  bool ok = eq != std::string::npos &&
            (std::any_of(std::begin(exact), std::end(exact), [&](const char* e) { return key == e; }) ||
             key.rfind("net.", 0) == 0 || key.rfind("fs.mqueue.", 0) == 0);
  if (!ok) bad_value("sysctl", v, "sysctl '" + v + "' is not allowed");
}

// --security-opt: seccomp=FILE is read and sent inline, compacted, as docker's CLI does.
std::string parse_security_opt(const std::string& opt) {
  if (opt == "no-new-privileges") return opt;
  size_t sep = opt.find('=');
  if (sep == std::string::npos) sep = opt.find(':');
  if (sep == std::string::npos || sep + 1 == opt.size()) throw UsageError("Invalid --security-opt: \"" + opt + "\"");
  std::string key = opt.substr(0, sep), value = opt.substr(sep + 1);
  if (key != "seccomp" || value == "unconfined" || value == "builtin") return opt;
  std::string text = read_whole_file(value, "opening seccomp profile (" + value + ") failed: ");
  try {
    return "seccomp=" + json::parse(text).dump();
  } catch (const json::exception& e) {
    throw UsageError("compacting json for seccomp profile (" + value + ") failed: " + e.what());
  }
}

// The namespace-mode checks of docker's CLI ("--ipc: invalid IPC mode"), naming the value.
void validate_mode(const std::string& flag, const std::string& v, std::initializer_list<const char*> allowed,
                   bool container_ok, const std::string& what) {
  for (const char* a : allowed)
    if (v == a) return;
  if (container_ok && v.rfind("container:", 0) == 0 && v.size() > 10) return;
  throw UsageError("--" + flag + ": invalid " + what + " mode: " + v);
}

bool valid_container_name(const std::string& name) {
  std::string n = name[0] == '/' ? name.substr(1) : name;
  if (n.size() < 2 || !std::isalnum(static_cast<unsigned char>(n[0]))) return false;
  for (char c : n)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.' && c != '-') return false;
  return true;
}

json mount_to_json(const storage::MountSpec& m) {
  json j = {{"Type", std::string(storage::to_string(m.type))}, {"Target", m.target}};
  if (!m.source.empty()) j["Source"] = m.source;
  if (m.read_only) j["ReadOnly"] = true;
  if (!m.consistency.empty()) j["Consistency"] = m.consistency;
  if (m.type == storage::MountType::Bind) {
    json b = json::object();
    if (!m.propagation.empty()) b["Propagation"] = m.propagation;
    if (m.bind_nonrecursive) b["NonRecursive"] = true;
    if (m.create_host_path) b["CreateMountpoint"] = true;
    if (m.bind_recursive == "writable") b["ReadOnlyNonRecursive"] = true;
    if (m.bind_recursive == "readonly") b["ReadOnlyForceRecursive"] = true;
    if (!b.empty()) j["BindOptions"] = b;
  } else if (m.type == storage::MountType::Volume) {
    json v = json::object();
    if (m.nocopy) v["NoCopy"] = true;
    if (!m.labels.empty()) v["Labels"] = m.labels;
    if (!m.subpath.empty()) v["Subpath"] = m.subpath;
    if ((!m.driver.empty() && m.driver != "local") || !m.driver_opts.empty()) {
      json d = json::object();
      if (!m.driver.empty()) d["Name"] = m.driver;
      if (!m.driver_opts.empty()) d["Options"] = m.driver_opts;
      v["DriverConfig"] = d;
    }
    if (!v.empty()) j["VolumeOptions"] = v;
  } else {
    json t = json::object();
    if (m.tmpfs_size) t["SizeBytes"] = m.tmpfs_size;
    if (m.tmpfs_mode) t["Mode"] = m.tmpfs_mode;
    if (!m.tmpfs_options.empty()) {
      json opts = json::array();
      for (const auto& o : m.tmpfs_options) {
        size_t eq = o.find('=');
        opts.push_back(eq == std::string::npos ? json::array({o}) : json::array({o.substr(0, eq), o.substr(eq + 1)}));
      }
      t["Options"] = opts;
    }
    if (!t.empty()) j["TmpfsOptions"] = t;
  }
  return j;
}

}  // namespace

std::vector<FlagSpec> container_create_flags(bool run) {
  std::vector<FlagSpec> f = {
      {"add-host", 0, true, "Add a custom host-to-IP mapping (host:ip)", "list"},
      {"annotation", 0, true, "Add an annotation to the container (passed through to the OCI runtime)", "map"},
      {"attach", 'a', true, "Attach to STDIN, STDOUT or STDERR", "list"},
      {"blkio-weight", 0, true, "Block IO (relative weight), between 10 and 1000, or 0 to disable", "uint16"},
      {"cap-add", 0, true, "Add Linux capabilities", "list"},
      {"cap-drop", 0, true, "Drop Linux capabilities", "list"},
      {"cgroup-parent", 0, true, "Optional parent cgroup for the container", "string"},
      {"cgroupns", 0, true, "Cgroup namespace to use (host|private)", "string"},
      {"cidfile", 0, true, "Write the container ID to the file", "string"},
      {"cpu-period", 0, true, "Limit CPU CFS (Completely Fair Scheduler) period", "int"},
      {"cpu-quota", 0, true, "Limit CPU CFS (Completely Fair Scheduler) quota", "int"},
      {"cpu-shares", 'c', true, "CPU shares (relative weight)", "int"},
      {"cpus", 0, true, "Number of CPUs", "decimal"},
      {"cpuset-cpus", 0, true, "CPUs in which to allow execution (0-3, 0,1)", "string"},
      {"cpuset-mems", 0, true, "MEMs in which to allow execution (0-3, 0,1)", "string"},
      {"device", 0, true, "Add a host device to the container", "list"},
      {"device-cgroup-rule", 0, true, "Add a rule to the cgroup allowed devices list", "list"},
      {"disable-content-trust", 0, false, "Skip image verification (default true)", ""},
      {"dns", 0, true, "Set custom DNS servers", "list"},
      {"dns-option", 0, true, "Set DNS options", "list"},
      {"dns-search", 0, true, "Set custom DNS search domains", "list"},
      {"domainname", 0, true, "Container NIS domain name", "string"},
      {"entrypoint", 0, true, "Overwrite the default ENTRYPOINT of the image", "string"},
      {"env", 'e', true, "Set environment variables", "list"},
      {"env-file", 0, true, "Read in a file of environment variables", "list"},
      {"expose", 0, true, "Expose a port or a range of ports", "list"},
      {"group-add", 0, true, "Add additional groups to join", "list"},
      {"health-cmd", 0, true, "Command to run to check health", "string"},
      {"health-interval", 0, true, "Time between running the check (ms|s|m|h) (default 0s)", "duration"},
      {"health-retries", 0, true, "Consecutive failures needed to report unhealthy", "int"},
      {"health-start-interval", 0, true, "Time between running the check during the start period", "duration"},
      {"health-start-period", 0, true, "Start period for the container to initialize", "duration"},
      {"health-timeout", 0, true, "Maximum time to allow one check to run (ms|s|m|h) (default 0s)", "duration"},
      {"hostname", 'h', true, "Container host name", "string"},
      {"init", 0, false, "Run an init inside the container that forwards signals and reaps processes", ""},
      {"interactive", 'i', false, "Keep STDIN open even if not attached", ""},
      {"ip", 0, true, "IPv4 address (e.g., 172.30.100.104)", "string"},
      {"ip6", 0, true, "IPv6 address (e.g., 2001:db8::33)", "string"},
      {"ipc", 0, true, "IPC mode to use", "string"},
      {"isolation", 0, true, "Container isolation technology", "string"},
      {"label", 'l', true, "Set meta data on a container", "list"},
      {"label-file", 0, true, "Read in a line delimited file of labels", "list"},
      {"link", 0, true, "Add link to another container", "list"},
      {"log-driver", 0, true, "Logging driver for the container", "string"},
      {"log-opt", 0, true, "Log driver options", "list"},
      {"mac-address", 0, true, "Container MAC address (e.g., 92:d0:c6:0a:29:33)", "string"},
      {"memory", 'm', true, "Memory limit", "bytes"},
      {"memory-reservation", 0, true, "Memory soft limit", "bytes"},
      {"memory-swap", 0, true, "Swap limit equal to memory plus swap: '-1' to enable unlimited swap", "bytes"},
      {"memory-swappiness", 0, true, "Tune container memory swappiness (0 to 100) (default -1)", "int"},
      {"mount", 0, true, "Attach a filesystem mount to the container", "mount"},
      {"name", 0, true, "Assign a name to the container", "string"},
      {"network", 0, true, "Connect a container to a network", "network"},
      {"net", 0, true, "Connect a container to a network", "network"},
      {"network-alias", 0, true, "Add network-scoped alias for the container", "list"},
      {"no-healthcheck", 0, false, "Disable any container-specified HEALTHCHECK", ""},
      {"oom-kill-disable", 0, false, "Disable OOM Killer", ""},
      {"oom-score-adj", 0, true, "Tune host's OOM preferences (-1000 to 1000)", "int"},
      {"pid", 0, true, "PID namespace to use", "string"},
      {"pids-limit", 0, true, "Tune container pids limit (set -1 for unlimited)", "int"},
      {"platform", 0, true, "Set platform if server is multi-platform capable", "string"},
      {"privileged", 0, false, "Give extended privileges to this container", ""},
      {"publish", 'p', true, "Publish a container's port(s) to the host", "list"},
      {"publish-all", 'P', false, "Publish all exposed ports to random ports", ""},
      {"pull", 0, true, "Pull image before creating (\"always\", \"missing\", \"never\") (default \"missing\")",
       "string"},
      {"quiet", 'q', false, "Suppress the pull output", ""},
      {"read-only", 0, false, "Mount the container's root filesystem as read only", ""},
      {"restart", 0, true, "Restart policy to apply when a container exits (default \"no\")", "string"},
      {"rm", 0, false, "Automatically remove the container and its associated anonymous volumes when it exits", ""},
      {"runtime", 0, true, "Runtime to use for this container", "string"},
      {"security-opt", 0, true, "Security Options", "list"},
      {"shm-size", 0, true, "Size of /dev/shm", "bytes"},
      {"stop-signal", 0, true, "Signal to stop the container", "string"},
      {"stop-timeout", 0, true, "Timeout (in seconds) to stop a container", "int"},
      {"storage-opt", 0, true, "Storage driver options for the container", "list"},
      {"sysctl", 0, true, "Sysctl options", "map"},
      {"tmpfs", 0, true, "Mount a tmpfs directory", "list"},
      {"tty", 't', false, "Allocate a pseudo-TTY", ""},
      {"ulimit", 0, true, "Ulimit options", "ulimit"},
      {"user", 'u', true, "Username or UID (format: <name|uid>[:<group|gid>])", "string"},
      {"userns", 0, true, "User namespace to use", "string"},
      {"uts", 0, true, "UTS namespace to use", "string"},
      {"volume", 'v', true, "Bind mount a volume", "list"},
      {"volume-driver", 0, true, "Optional volume driver for the container", "string"},
      {"volumes-from", 0, true, "Mount volumes from the specified container(s)", "list"},
      {"workdir", 'w', true, "Working directory inside the container", "string"},
  };
  if (run) {
    f.push_back({"detach", 'd', false, "Run container in background and print container ID", ""});
    f.push_back({"detach-keys", 0, true, "Override the key sequence for detaching a container", "string"});
    f.push_back({"sig-proxy", 0, false, "Proxy received signals to the process (default true)", ""});
  }
  std::sort(f.begin(), f.end(), [](const FlagSpec& a, const FlagSpec& b) { return a.name < b.name; });
  return f;
}

int64_t parse_go_duration(std::string_view text) {
  return as_usage_error([&] { return berth::parse_go_duration(text); });
}

int64_t parse_nano_cpus(std::string_view text) {
  return as_usage_error([&] { return berth::parse_nano_cpus(text); });
}

json parse_restart_policy(std::string_view text) {
  return as_usage_error([&] { return berth::parse_restart_policy(text); });
}

json parse_ulimit(std::string_view text) {
  size_t eq = text.find('=');
  if (eq == std::string_view::npos) throw UsageError("invalid ulimit argument: " + std::string(text));
  std::string name(text.substr(0, eq)), vals(text.substr(eq + 1));
  if (!valid_ulimit_name(name)) throw UsageError("invalid ulimit type: " + name);
  std::vector<std::string> parts;
  std::stringstream ss(vals);
  for (std::string p; std::getline(ss, p, ':');) parts.push_back(p);
  if (vals.empty() || vals.back() == ':') parts.push_back("");
  if (parts.size() > 2)
    throw UsageError("too many limit value arguments - " + vals + ", can only have up to two, `soft[:hard]`");
  auto num = [](const std::string& s) {
    auto n = parse_go_int(s);
    if (!n) throw UsageError("strconv.ParseInt: parsing \"" + s + "\": invalid syntax");
    return *n;
  };
  int64_t soft = num(parts[0]);
  int64_t hard = parts.size() == 2 ? num(parts[1]) : soft;
  if (hard != -1 && soft > hard)
    throw UsageError("ulimit soft limit must be less than or equal to hard limit: " + std::to_string(soft) + " > " +
                     std::to_string(hard));
  return {{"Name", name}, {"Soft", soft}, {"Hard", hard}};
}

void parse_publish(std::string_view spec, json& exposed, json& port_bindings) {
  std::string raw(spec);
  // nat.ParsePortSpec: [ip:[hostPort:]]containerPort[/proto]; an IPv6 ip in brackets.
  std::vector<std::string> parts;
  std::stringstream ss(raw);
  for (std::string p; std::getline(ss, p, ':');) parts.push_back(p);
  if (raw.empty() || raw.back() == ':') parts.push_back("");
  std::string ip, host_port, container_port = parts.back();
  size_t n = parts.size();
  if (n == 2) {
    host_port = parts[0];
  } else if (n >= 3) {
    host_port = parts[n - 2];
    for (size_t i = 0; i + 2 < n; ++i) ip += (i ? ":" : "") + parts[i];
  }
  auto [proto, cport] = split_proto(container_port);
  if (!ip.empty() && ip.front() == '[') {
    if (ip.back() != ']') throw UsageError("invalid IP address " + ip + ": missing ']' in address");
    ip = ip.substr(1, ip.size() - 2);
  }
  if (!ip.empty() && !is_ip(ip)) throw UsageError("invalid IP address: " + ip);
  if (cport.empty()) throw UsageError("no port specified: " + raw + "<empty>");
  std::pair<uint64_t, uint64_t> cr, hr{0, 0};
  try {
    cr = port_range(cport);
  } catch (const UsageError&) {
    throw UsageError("invalid containerPort: " + cport);
  }
  if (!host_port.empty()) {
    try {
      hr = port_range(host_port);
    } catch (const UsageError&) {
      throw UsageError("invalid hostPort: " + host_port);
    }
  }
  if (!host_port.empty() && cr.second - cr.first != hr.second - hr.first && cr.second != cr.first)
    throw UsageError("invalid ranges specified for container and host Ports: " + cport + " and " + host_port);
  std::string lproto = lower(proto);
  if (lproto != "tcp" && lproto != "udp" && lproto != "sctp") throw UsageError("invalid proto: " + proto);
  if (!exposed.is_object()) exposed = json::object();
  if (!port_bindings.is_object()) port_bindings = json::object();
  for (uint64_t i = 0; i <= cr.second - cr.first; ++i) {
    std::string key = std::to_string(cr.first + i) + "/" + lproto;
    std::string hp;
    if (!host_port.empty()) {
      hp = std::to_string(hr.first + i);
      if (cr.first == cr.second && hr.first != hr.second) hp += "-" + std::to_string(hr.second);
    }
    exposed[key] = json::object();
    if (!port_bindings.contains(key)) port_bindings[key] = json::array();
    port_bindings[key].push_back({{"HostIp", ip}, {"HostPort", hp}});
  }
}

std::vector<std::string> read_kv_file(const std::string& path, bool lookup_env) {
  std::istringstream in(read_whole_file(path));
  std::vector<std::string> out;
  std::string line;
  for (int lineno = 1; std::getline(in, line); ++lineno) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (lineno == 1 && line.rfind("\xEF\xBB\xBF", 0) == 0) line = line.substr(3);  // UTF-8 BOM
    if (!valid_utf8(line))
      throw UsageError("env file " + path + " contains invalid utf8 bytes at line " + std::to_string(lineno));
    std::string_view t = line;
    while (!t.empty() && is_space(t.front())) t.remove_prefix(1);
    if (t.empty() || t[0] == '#') continue;
    size_t eq = t.find('=');
    std::string key(t.substr(0, eq));
    if (key.empty()) throw UsageError("no variable name on line '" + line + "'");
    if (std::any_of(key.begin(), key.end(), [](char c) { return is_space(c); }))
      throw UsageError("variable '" + key + "' contains whitespaces");
    if (eq != std::string_view::npos) {
      out.push_back(key + "=" + std::string(t.substr(eq + 1)));  // the value as written, untrimmed
    } else if (lookup_env) {
      std::string k(trim(key));
      if (const char* v = std::getenv(k.c_str())) out.push_back(k + "=" + v);
    } else {
      out.push_back(std::string(trim(t)));
    }
  }
  return out;
}

std::vector<FlagSpec> container_update_flags() {
  // create's flags of the same names (same help).
  static const std::set<std::string> names = {
      "blkio-weight", "cpu-period", "cpu-quota",          "cpu-shares",  "cpus",       "cpuset-cpus",
      "cpuset-mems",  "memory",     "memory-reservation", "memory-swap", "pids-limit", "restart"};
  std::vector<FlagSpec> flags;
  for (auto& f : container_create_flags(false))
    if (names.count(f.name)) flags.push_back(std::move(f));
  return flags;
}

json update_body_from_flags(const ParsedArgs& a) {
  json body = json::object();
  if (a.has("blkio-weight")) body["BlkioWeight"] = int_flag(a, "blkio-weight", 0, 65535);
  if (a.has("cpu-period")) body["CpuPeriod"] = int_flag(a, "cpu-period");
  if (a.has("cpu-quota")) body["CpuQuota"] = int_flag(a, "cpu-quota");
  if (a.has("cpu-shares")) body["CpuShares"] = int_flag(a, "cpu-shares");
  if (a.has("cpus")) {
    try {
      body["NanoCpus"] = parse_nano_cpus(a.get("cpus"));
    } catch (const UsageError& e) {
      bad_value("cpus", a.get("cpus"), e.what());
    }
  }
  if (a.has("cpuset-cpus")) body["CpusetCpus"] = a.get("cpuset-cpus");
  if (a.has("cpuset-mems")) body["CpusetMems"] = a.get("cpuset-mems");
  if (a.has("memory")) body["Memory"] = bytes_flag(a, "memory");
  if (a.has("memory-reservation")) body["MemoryReservation"] = bytes_flag(a, "memory-reservation");
  if (a.has("memory-swap")) body["MemorySwap"] = a.get("memory-swap") == "-1" ? -1 : bytes_flag(a, "memory-swap");
  if (a.has("pids-limit")) body["PidsLimit"] = int_flag(a, "pids-limit");
  if (a.has("restart")) body["RestartPolicy"] = parse_restart_policy(a.get("restart"));
  // docker's CLI refuses an update that changes nothing.
  if (body.empty()) throw UsageError("you must provide one or more flags when using this command");
  return body;
}

json create_body_from_flags(const ParsedArgs& a, bool run, const std::string& cwd) {
  const std::string cmd_name = run ? "berth run" : "berth create";
  if (a.positionals.empty()) throw UsageError("\"" + cmd_name + "\" requires at least 1 argument.");
  json config = {{"Hostname", a.get("hostname")},
                 {"Domainname", a.get("domainname")},
                 {"User", a.get("user")},
                 {"AttachStdin", false},
                 {"AttachStdout", false},
                 {"AttachStderr", false},
                 {"Tty", a.has("tty")},
                 {"OpenStdin", a.has("interactive")},
                 {"StdinOnce", false},
                 {"Env", json::array()},
                 {"Image", a.positionals[0]},
                 {"WorkingDir", a.get("workdir")},
                 {"Labels", json::object()}};
  json host = json::object();

  // Name: dockerd's rule, checked up front.
  const std::string name = a.get("name");
  if (a.has("name") && (name.empty() || !valid_container_name(name)))
    throw UsageError("Invalid container name (" + name + "), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed");

  // Command line: IMAGE [COMMAND [ARG...]]; --entrypoint "" resets the image's.
  if (a.positionals.size() > 1)
    config["Cmd"] = std::vector<std::string>(a.positionals.begin() + 1, a.positionals.end());
  if (a.has("entrypoint")) {
    std::string ep = a.get("entrypoint");
    config["Entrypoint"] = json::array({ep});
  }

  // Streams: -a picks them; otherwise stdout and stderr, plus stdin with -i. run -d attaches none.
  bool att_in = false, att_out = false, att_err = false;
  for (const auto& s : a.all("attach")) {
    std::string l = lower(s);
    if (l == "stdin")
      att_in = true;
    else if (l == "stdout")
      att_out = true;
    else if (l == "stderr")
      att_err = true;
    else
      bad_value("attach", s, "valid streams are STDIN, STDOUT and STDERR");
  }
  if (a.has("interactive")) att_in = true;
  if (a.all("attach").empty()) att_out = att_err = true;
  if (run && a.has("detach")) {
    if (!a.all("attach").empty()) throw UsageError("Conflicting options: -a and -d");
    att_in = att_out = att_err = false;
  }
  config["AttachStdin"] = att_in;
  config["AttachStdout"] = att_out;
  config["AttachStderr"] = att_err;
  config["StdinOnce"] = a.has("interactive") && att_in;

  // Environment: --env-file entries first, then -e, as docker's ReadKVEnvStrings orders them.
  std::vector<std::string> env;
  for (const auto& f : a.all("env-file")) {
    auto lines = read_kv_file(f, true);
    env.insert(env.end(), lines.begin(), lines.end());
  }
  for (const auto& e : a.all("env")) env.push_back(validate_env(e));
  config["Env"] = env;

  // Labels: files first, -l overrides.
  std::vector<std::string> labels;
  for (const auto& f : a.all("label-file")) {
    auto lines = read_kv_file(f, false);
    labels.insert(labels.end(), lines.begin(), lines.end());
  }
  for (const auto& l : a.all("label")) labels.push_back(l);
  for (const auto& l : labels) validate_label(l);
  config["Labels"] = kv_map(labels);

  const std::string wd = a.get("workdir");
  if (a.has("workdir") && !wd.empty() && wd[0] != '/')
    throw UsageError("the working directory '" + wd + "' is invalid, it needs to be an absolute path");

  if (a.has("stop-signal")) config["StopSignal"] = a.get("stop-signal");
  if (a.has("stop-timeout")) config["StopTimeout"] = int_flag(a, "stop-timeout", INT32_MIN, INT32_MAX);
  if (a.has("mac-address")) config["MacAddress"] = a.get("mac-address");

  // Healthcheck.
  const bool have_health = !a.get("health-cmd").empty() || a.has("health-interval") || a.has("health-timeout") ||
                           a.has("health-start-period") || a.has("health-start-interval") || a.has("health-retries");
  if (a.has("no-healthcheck")) {
    if (have_health) throw UsageError("--no-healthcheck conflicts with --health-* options");
    config["Healthcheck"] = {{"Test", {"NONE"}}};
  } else if (have_health) {
    json hc = json::object();
    if (!a.get("health-cmd").empty()) hc["Test"] = {"CMD-SHELL", a.get("health-cmd")};
    auto dur = [&](const char* flag, const char* field, const char* what) {
      if (!a.has(flag)) return;
      int64_t ns;
      try {
        ns = parse_go_duration(a.get(flag));
      } catch (const UsageError& e) {
        bad_value(flag, a.get(flag), e.what());
      }
      if (ns < 0) throw UsageError(std::string("--") + what + " cannot be negative");
      hc[field] = ns;
    };
    dur("health-interval", "Interval", "health-interval");
    dur("health-timeout", "Timeout", "health-timeout");
    dur("health-start-period", "StartPeriod", "health-start-period");
    dur("health-start-interval", "StartInterval", "health-start-interval");
    if (a.has("health-retries")) {
      int64_t r = int_flag(a, "health-retries", INT32_MIN, INT32_MAX);
      if (r < 0) throw UsageError("--health-retries cannot be negative");
      hc["Retries"] = r;
    }
    config["Healthcheck"] = hc;
  }

  // Ports: --expose and -p both expose; -p also binds.
  json exposed = json::object(), bindings = json::object();
  for (const auto& e : a.all("expose")) {
    if (e.find(':') != std::string::npos) throw UsageError("invalid port format for --expose: " + e);
    auto [proto, port] = split_proto(e);
    std::pair<uint64_t, uint64_t> r;
    try {
      r = port_range(port);
    } catch (const UsageError& err) {
      throw UsageError("invalid range format for --expose: " + e + ", error: " + err.what());
    }
    for (uint64_t p = r.first; p <= r.second; ++p) exposed[std::to_string(p) + "/" + lower(proto)] = json::object();
  }
  for (const auto& p : a.all("publish")) parse_publish(p, exposed, bindings);
  if (!exposed.empty()) config["ExposedPorts"] = exposed;

  // Mounts: parsed now so a bad spec fails before anything exists; Binds keep docker's strings
  // (a relative source made absolute, as docker's CLI does), anonymous -v go to Config.Volumes.
  std::vector<storage::MountSpec> specs;
  json binds = json::array(), volumes = json::object(), mounts = json::array(), tmpfs = json::object();
  for (const auto& v : a.all("volume")) {
    storage::MountSpec m;
    try {
      m = storage::parse_volume_flag(v, cwd);
    } catch (const Error& e) {
      throw UsageError(e.what());
    }
    specs.push_back(m);
    if (m.type == storage::MountType::Volume && m.source.empty()) {
      volumes[m.target] = json::object();
      continue;
    }
    std::string bind = v;
    if (m.type == storage::MountType::Bind && !v.empty() && v[0] == '.') {
      size_t colon = v.find(':');
      bind = m.source + (colon == std::string::npos ? std::string() : v.substr(colon));
    }
    binds.push_back(bind);
  }
  for (const auto& v : a.all("mount")) {
    storage::MountSpec m;
    try {
      m = storage::parse_mount_flag(v, cwd);
    } catch (const Error& e) {
      throw UsageError(e.what());
    }
    specs.push_back(m);
    mounts.push_back(mount_to_json(m));
  }
  for (const auto& v : a.all("tmpfs")) {
    storage::MountSpec m;
    try {
      m = storage::parse_tmpfs_flag(v);
    } catch (const Error& e) {
      throw UsageError(e.what());
    }
    specs.push_back(m);
    size_t colon = v.find(':');
    tmpfs[m.target] = colon == std::string::npos ? std::string() : v.substr(colon + 1);
  }
  try {
    storage::check_duplicate_targets(specs);
  } catch (const Error& e) {
    throw UsageError(e.what());
  }
  if (!volumes.empty()) config["Volumes"] = volumes;
  host["Binds"] = binds.empty() ? json(nullptr) : binds;
  if (!mounts.empty()) host["Mounts"] = mounts;
  if (!tmpfs.empty()) host["Tmpfs"] = tmpfs;
  host["VolumesFrom"] = a.all("volumes-from").empty() ? json(nullptr) : json(a.all("volumes-from"));
  host["VolumeDriver"] = a.get("volume-driver");
  host["ContainerIDFile"] = a.get("cidfile");

  // Restart policy and --rm.
  json restart = parse_restart_policy(a.has("restart") ? a.get("restart") : "no");
  const bool auto_remove = a.has("rm");
  if (auto_remove && restart["Name"] != "no" && restart["Name"] != "")
    throw UsageError("conflicting options: cannot specify both --restart and --rm");
  host["RestartPolicy"] = restart;
  host["AutoRemove"] = auto_remove;

  // Networking: the first --network is the mode; more networks go to NetworkingConfig.
  std::vector<std::string> nets = a.all("network");
  for (const auto& n : a.all("net")) nets.push_back(n);
  std::string net_mode = nets.empty() ? "default" : nets[0];
  if (net_mode.empty()) net_mode = "default";
  if (net_mode == "container:" || net_mode == "container")
    throw UsageError("invalid container format container:<name|id>");
  host["NetworkMode"] = net_mode;
  json endpoints = json::object();
  const bool user_net = net_mode != "default" && net_mode != "bridge" && net_mode != "host" && net_mode != "none" &&
                        net_mode.rfind("container:", 0) != 0;
  if (nets.size() > 1) {
    for (const auto& n : nets) {
      if (n == "host" || n == "none" || n.rfind("container:", 0) == 0)
        throw UsageError("conflicting options: cannot attach both user-defined and non-user-defined network-modes");
      endpoints[n] = json::object();
    }
  }
  if (!a.all("network-alias").empty() || a.has("ip") || a.has("ip6")) {
    if (!user_net && !a.all("network-alias").empty())
      throw UsageError("network-scoped aliases are only supported for user-defined networks");
    json& ep = endpoints[net_mode];
    if (!ep.is_object()) ep = json::object();
    if (!a.all("network-alias").empty()) ep["Aliases"] = a.all("network-alias");
    json ipam = json::object();
    if (a.has("ip")) {
      if (!is_ip(a.get("ip")) || a.get("ip").find(':') != std::string::npos)
        bad_value("ip", a.get("ip"), "invalid IPv4 address: " + a.get("ip"));
      ipam["IPv4Address"] = a.get("ip");
    }
    if (a.has("ip6")) {
      if (!is_ip(a.get("ip6")) || a.get("ip6").find(':') == std::string::npos)
        bad_value("ip6", a.get("ip6"), "invalid IPv6 address: " + a.get("ip6"));
      ipam["IPv6Address"] = a.get("ip6");
    }
    if (!ipam.empty()) ep["IPAMConfig"] = ipam;
  }
  host["PortBindings"] = bindings;
  host["PublishAllPorts"] = a.has("publish-all");
  std::vector<std::string> dns = a.all("dns");
  for (const auto& d : dns)
    if (!is_ip(d)) bad_value("dns", d, d + " is not an ip address");
  host["Dns"] = dns;
  for (const auto& d : a.all("dns-search"))
    if (!valid_dns_search(d)) bad_value("dns-search", d, d + " is not a valid domain");
  host["DnsSearch"] = a.all("dns-search");
  host["DnsOptions"] = a.all("dns-option");
  std::vector<std::string> hosts;
  for (const auto& h : a.all("add-host")) hosts.push_back(parse_extra_host(h));
  host["ExtraHosts"] = hosts.empty() ? json(nullptr) : json(hosts);
  if (!a.all("link").empty()) host["Links"] = a.all("link");

  // Namespaces and isolation modes.
  const std::string ipc = a.get("ipc"), pid = a.get("pid"), uts = a.get("uts"), userns = a.get("userns"),
                    cgroupns = a.get("cgroupns");
  validate_mode("ipc", ipc, {"", "none", "private", "shareable", "host"}, true, "IPC");
  validate_mode("pid", pid, {"", "host"}, true, "PID");
  validate_mode("uts", uts, {"", "host"}, false, "UTS");
  validate_mode("userns", userns, {"", "host", "private"}, false, "USER");
  validate_mode("cgroupns", cgroupns, {"", "host", "private"}, false, "CGROUP");
  host["IpcMode"] = ipc;
  host["PidMode"] = pid;
  host["UTSMode"] = uts;
  host["UsernsMode"] = userns;
  host["CgroupnsMode"] = cgroupns;
  host["Cgroup"] = "";
  host["CgroupParent"] = a.get("cgroup-parent");
  host["Isolation"] = a.get("isolation");
  if (a.has("runtime")) host["Runtime"] = a.get("runtime");

  // Security.
  host["Privileged"] = a.has("privileged");
  host["ReadonlyRootfs"] = a.has("read-only");
  host["CapAdd"] = a.all("cap-add").empty() ? json(nullptr) : json(a.all("cap-add"));
  host["CapDrop"] = a.all("cap-drop").empty() ? json(nullptr) : json(a.all("cap-drop"));
  std::vector<std::string> secopts;
  for (const auto& s : a.all("security-opt")) secopts.push_back(parse_security_opt(s));
  host["SecurityOpt"] = secopts.empty() ? json(nullptr) : json(secopts);
  host["GroupAdd"] = a.all("group-add").empty() ? json(nullptr) : json(a.all("group-add"));
  if (a.has("init")) host["Init"] = true;
  if (!a.all("annotation").empty()) host["Annotations"] = kv_map(a.all("annotation"));
  json sysctls = json::object();
  for (const auto& s : a.all("sysctl")) {
    validate_sysctl(s);
    size_t eq = s.find('=');
    sysctls[s.substr(0, eq)] = s.substr(eq + 1);
  }
  if (!sysctls.empty()) host["Sysctls"] = sysctls;
  if (!a.all("storage-opt").empty()) host["StorageOpt"] = kv_map(a.all("storage-opt"));

  // Resources.
  host["Memory"] = a.has("memory") ? bytes_flag(a, "memory") : 0;
  host["MemoryReservation"] = a.has("memory-reservation") ? bytes_flag(a, "memory-reservation") : 0;
  int64_t swap = 0;
  if (a.has("memory-swap")) swap = a.get("memory-swap") == "-1" ? -1 : bytes_flag(a, "memory-swap");
  host["MemorySwap"] = swap;
  if (a.has("memory-swappiness")) {
    int64_t s = int_flag(a, "memory-swappiness");
    if (s != -1 && (s < 0 || s > 100))
      throw UsageError("invalid value: " + std::to_string(s) + ". Valid memory swappiness range is 0-100");
    if (s != -1) host["MemorySwappiness"] = s;
  }
  if (a.has("memory-swap") && swap > 0 && host["Memory"].get<int64_t>() > 0 && swap < host["Memory"].get<int64_t>())
    throw UsageError("Minimum memoryswap limit should be larger than memory limit, see usage");
  if (swap > 0 && host["Memory"].get<int64_t>() == 0)
    throw UsageError("You should always set the Memory limit when using Memoryswap limit, see usage");
  if (host["Memory"].get<int64_t>() > 0 && host["Memory"].get<int64_t>() < 6 * 1024 * 1024)
    throw UsageError("Minimum memory limit allowed is 6MB");
  int64_t nano = 0;
  if (a.has("cpus")) {
    try {
      nano = parse_nano_cpus(a.get("cpus"));
    } catch (const UsageError& e) {
      bad_value("cpus", a.get("cpus"), e.what());
    }
    if (nano < 0) throw UsageError("Range of CPUs is from 0.01 to the number of CPUs available");
  }
  host["NanoCpus"] = nano;
  host["CpuShares"] = a.has("cpu-shares") ? int_flag(a, "cpu-shares") : 0;
  host["CpuPeriod"] = a.has("cpu-period") ? int_flag(a, "cpu-period") : 0;
  host["CpuQuota"] = a.has("cpu-quota") ? int_flag(a, "cpu-quota") : 0;
  if (nano > 0 && host["CpuPeriod"] != 0)
    throw UsageError("Conflicting options: Nano CPUs and CPU Period cannot both be set");
  if (nano > 0 && host["CpuQuota"] != 0)
    throw UsageError("Conflicting options: Nano CPUs and CPU Quota cannot both be set");
  host["CpusetCpus"] = a.get("cpuset-cpus");
  host["CpusetMems"] = a.get("cpuset-mems");
  if (a.has("blkio-weight")) {
    int64_t w = int_flag(a, "blkio-weight", 0, 65535);
    if (w != 0 && (w < 10 || w > 1000)) throw UsageError("Range of blkio weight is from 10 to 1000");
    host["BlkioWeight"] = w;
  } else {
    host["BlkioWeight"] = 0;
  }
  if (a.has("pids-limit")) host["PidsLimit"] = int_flag(a, "pids-limit");
  if (a.has("oom-kill-disable")) host["OomKillDisable"] = true;
  int64_t oom = a.has("oom-score-adj") ? int_flag(a, "oom-score-adj", INT32_MIN, INT32_MAX) : 0;
  if (oom < -1000 || oom > 1000)
    throw UsageError("Invalid value " + std::to_string(oom) + ", range for oom score adj is [-1000, 1000]");
  host["OomScoreAdj"] = oom;
  host["ShmSize"] = a.has("shm-size") ? bytes_flag(a, "shm-size") : 0;
  json ulimits = json::array();
  for (const auto& u : a.all("ulimit")) {
    json parsed;
    try {
      parsed = parse_ulimit(u);
    } catch (const UsageError& e) {
      bad_value("ulimit", u, e.what());
    }
    auto same =
        std::find_if(ulimits.begin(), ulimits.end(), [&](const json& x) { return x["Name"] == parsed["Name"]; });
    if (same != ulimits.end())
      *same = parsed;  // a later --ulimit of the same name wins
    else
      ulimits.push_back(parsed);
  }
  host["Ulimits"] = ulimits.empty() ? json(nullptr) : ulimits;
  json devices = json::array();
  for (const auto& d : a.all("device")) devices.push_back(parse_device(d));
  host["Devices"] = devices;
  for (const auto& r : a.all("device-cgroup-rule")) validate_cgroup_rule(r);
  host["DeviceCgroupRules"] = a.all("device-cgroup-rule").empty() ? json(nullptr) : json(a.all("device-cgroup-rule"));

  // Logging.
  const std::string driver = a.get("log-driver");
  json log_opts = kv_map(a.all("log-opt"));
  if (driver == "none" && !log_opts.empty()) throw UsageError("invalid logging opts for driver none");
  host["LogConfig"] = {{"Type", driver}, {"Config", log_opts}};

  // Flags the CLI acts on itself; validated here so they fail as early as docker's.
  if (a.has("pull")) {
    const std::string p = a.get("pull");
    if (p != "always" && p != "missing" && p != "never")
      throw UsageError("invalid pull option: '" + p + "': must be one of \"always\", \"missing\" or \"never\"");
  }

  json body = {{"Name", name}, {"Config", config}, {"HostConfig", host}};
  if (!endpoints.empty()) body["NetworkingConfig"] = {{"EndpointsConfig", endpoints}};
  return body;
}

}  // namespace berth::cli
