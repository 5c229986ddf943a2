#include "engine/engine.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <thread>

#include "engine/mounts.hpp"
#include "engine/names.hpp"
#include "engine/networks.hpp"
#include "engine/oci_spec.hpp"
#include "engine/process.hpp"
#include "engine/schema.hpp"
#include "engine/volumes.hpp"
#include "image/store.hpp"
#include "logs/json_file.hpp"
#include "shim/protocol.hpp"
#include "storage/overlay.hpp"
#include "util/fault.hpp"
#include "util/fd_limit.hpp"
#include "util/fs.hpp"
#include "util/sqlite.hpp"
#include "util/strings.hpp"

namespace berth::engine {

namespace {

using nlohmann::json;

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The shim holds shim.lock exclusively for its whole life.
bool shim_alive(const std::string& state_dir) {
  UniqueFd fd(::open((state_dir + "/shim.lock").c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return false;
  if (::flock(fd.get(), LOCK_SH | LOCK_NB) == 0) return false;
  return errno == EWOULDBLOCK;
}

json read_json_file(const std::string& path) {
  auto text = read_file_if_exists(path);
  if (!text) return nullptr;
  json j = json::parse(*text, nullptr, false);
  return j.is_discarded() ? json(nullptr) : j;
}

std::string jstr(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// HostConfig.Devices → the nodes to create in the container: each PathOnHost a device node, or a
// directory whose device nodes are all added (as docker walks it); type, numbers, mode and owner
// come from the host node.
std::vector<DevicePlan> device_plans(const json& devices) {
  std::vector<DevicePlan> out;
  if (!devices.is_array()) return out;
  for (const auto& d : devices) {
    std::string host = jstr(d, "PathOnHost"), inside = jstr(d, "PathInContainer");
    std::string perms = jstr(d, "CgroupPermissions");
    if (inside.empty()) inside = host;
    if (perms.empty()) perms = "rwm";
    auto node = [&](const std::string& host_path, const std::string& container_path, bool must) {
      struct stat st {};
      if (::stat(host_path.c_str(), &st) != 0) {
        if (!must) return;
        std::string reason = std::strerror(errno);  // Go's lower-case error text, as docker prints it
        reason[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(reason[0])));
        throw StatusError(
            "error gathering device information while adding custom device \"" + host_path + "\": " + reason, 125);
      }
      if (!S_ISCHR(st.st_mode) && !S_ISBLK(st.st_mode)) {
        if (!must) return;
        throw StatusError(
            "error gathering device information while adding custom device \"" + host_path + "\": not a device node",
            125);
      }
      DevicePlan p;
      p.path = container_path;
      p.type = S_ISCHR(st.st_mode) ? "c" : "b";
      p.major = major(st.st_rdev);
      p.minor = minor(st.st_rdev);
      p.file_mode = st.st_mode & 07777;
      p.uid = st.st_uid;
      p.gid = st.st_gid;
      p.permissions = perms;
      out.push_back(p);
    };
    struct stat st {};
    if (::stat(host.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
      std::error_code ec;
      for (auto it = std::filesystem::recursive_directory_iterator(host, ec);
           !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
        std::string rel = it->path().string().substr(host.size());
        node(it->path().string(), inside + rel, false);
      }
      continue;
    }
    node(host, inside, true);
  }
  return out;
}

int64_t jint(const json& j, const char* key, int64_t def = 0) {
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<int64_t>() : def;
}

// The argv of the container's health check (docker's Config.Healthcheck.Test: CMD-SHELL runs in
// the container's Shell, /bin/sh -c by default); empty for none (NONE, no test, an unknown type).
std::vector<std::string> health_check_args(const json& config) {
  auto hc = config.find("Healthcheck");
  if (hc == config.end() || !hc->is_object()) return {};
  auto test = hc->find("Test");
  if (test == hc->end() || !test->is_array() || test->empty() || !(*test)[0].is_string()) return {};
  std::vector<std::string> words;
  for (const auto& w : *test)
    if (w.is_string()) words.push_back(w.get<std::string>());
  if (words[0] == "CMD" && words.size() > 1) return {words.begin() + 1, words.end()};
  if (words[0] != "CMD-SHELL" || words.size() < 2) return {};
  std::vector<std::string> argv = {"/bin/sh", "-c"};
  auto shell = config.find("Shell");
  if (shell != config.end() && shell->is_array() && !shell->empty()) {
    argv.clear();
    for (const auto& w : *shell)
      if (w.is_string()) argv.push_back(w.get<std::string>());
  }
  argv.push_back(words[1]);
  return argv;
}

bool is_mountpoint(const std::string& path) {
  struct stat here, parent;
  if (::stat(path.c_str(), &here) != 0) return false;
  if (::stat((path + "/..").c_str(), &parent) != 0) return false;
  return here.st_dev != parent.st_dev;
}

// Engine::claim_removal's file. Next to the container's lock file, not in its directory: it goes
// only once the removal has finished (the row is gone), and creating it can't race a removal of
// that directory.
std::string removal_claim_path(const std::string& root, const std::string& id) {
  return root + "/locks/container-" + id + ".claim";
}

// Per-container lock: start, stop, rm and reconcile of one container never interleave.
class ContainerLock {
 public:
  ContainerLock(const std::string& root, const std::string& id, bool wait) {
    mkdir_p(root + "/locks", 0700);
    path_ = root + "/locks/container-" + id + ".lock";
    for (;;) {
      fd_ = UniqueFd(::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
      if (!fd_) throw_errno("open " + path_);
      while (::flock(fd_.get(), LOCK_EX | (wait ? 0 : LOCK_NB)) != 0) {
        if (errno == EINTR) continue;
        if (errno == EWOULDBLOCK) {
          fd_.reset();
          return;
        }
        throw_errno("flock " + path_);
      }
      // The holder before us may have unlinked the file (remove_file): a lock on an unlinked
      // inode excludes nobody, so take it again on the file that is there now.
      struct stat held, now;
      if (::fstat(fd_.get(), &held) == 0 && ::stat(path_.c_str(), &now) == 0 && held.st_ino == now.st_ino &&
          held.st_dev == now.st_dev)
        return;
    }
  }
  bool held() const { return static_cast<bool>(fd_); }
  // After the container is gone: the lock file goes too (a late waiter finds no container).
  void remove_file() { ::unlink(path_.c_str()); }

 private:
  std::string path_;
  UniqueFd fd_;
};

const char* kColumns =
    "id,name,image_id,image_name,created_ns,state,config,mounts,pid,exit_code,started_at,finished_at,"
    "restart_count,error";

Container row_to_container(sql::Stmt& s) {
  Container c;
  c.id = s.text(0);
  c.name = s.text(1);
  c.image_id = s.text(2);
  c.image_name = s.text(3);
  c.created_ns = s.integer(4);
  c.state = s.text(5);
  c.config = json::parse(s.text(6), nullptr, false);
  if (c.config.is_discarded()) c.config = json::object();
  c.mounts = json::parse(s.text(7), nullptr, false);
  if (c.mounts.is_discarded()) c.mounts = json::array();
  c.pid = static_cast<int>(s.integer(8));
  c.exit_code = static_cast<int>(s.integer(9));
  c.started_at = s.text(10);
  c.finished_at = s.text(11);
  c.restart_count = static_cast<int>(s.integer(12));
  c.error = s.text(13);
  return c;
}

// For list_summaries(): the config column replaced by one JSON array of the parts a ps row reads
// (one parse of the stored text inside SQLite; a malformed document gives NULL, as an empty one).
const char* kSummaryColumns =
    "id,name,image_id,image_name,created_ns,state,"
    "CASE WHEN json_valid(config) THEN json_extract(config,'$.Config.Labels','$.Config.Healthcheck',"
    "'$.Config.Shell','$.HostConfig.NetworkMode','$.BerthNetworks','$.Args') END,"
    "mounts,pid,exit_code,started_at,finished_at,restart_count,error";

Container row_to_summary(sql::Stmt& s) {
  Container c = row_to_container(s);  // config parses to the small array, or {} when NULL
  json parts = std::move(c.config);
  c.config = json::object();
  if (!parts.is_array() || parts.size() != 6) return c;
  json inner = json::object();
  if (!parts[0].is_null()) inner["Labels"] = std::move(parts[0]);
  if (!parts[1].is_null()) inner["Healthcheck"] = std::move(parts[1]);
  if (!parts[2].is_null()) inner["Shell"] = std::move(parts[2]);
  c.config["Config"] = std::move(inner);
  c.config["HostConfig"] = json::object();
  if (!parts[3].is_null()) c.config["HostConfig"]["NetworkMode"] = std::move(parts[3]);
  if (!parts[4].is_null()) c.config["BerthNetworks"] = std::move(parts[4]);
  if (!parts[5].is_null()) c.config["Args"] = std::move(parts[5]);
  return c;
}

}  // namespace

int parse_signal_name(const std::string& text) {
  static const std::pair<const char*, int> names[] = {
      {"HUP", SIGHUP},   {"INT", SIGINT},       {"QUIT", SIGQUIT}, {"ILL", SIGILL},     {"TRAP", SIGTRAP},
      {"ABRT", SIGABRT}, {"IOT", SIGIOT},       {"BUS", SIGBUS},   {"FPE", SIGFPE},     {"KILL", SIGKILL},
      {"USR1", SIGUSR1}, {"SEGV", SIGSEGV},     {"USR2", SIGUSR2}, {"PIPE", SIGPIPE},   {"ALRM", SIGALRM},
      {"TERM", SIGTERM}, {"STKFLT", SIGSTKFLT}, {"CHLD", SIGCHLD}, {"CONT", SIGCONT},   {"STOP", SIGSTOP},
      {"TSTP", SIGTSTP}, {"TTIN", SIGTTIN},     {"TTOU", SIGTTOU}, {"URG", SIGURG},     {"XCPU", SIGXCPU},
      {"XFSZ", SIGXFSZ}, {"VTALRM", SIGVTALRM}, {"PROF", SIGPROF}, {"WINCH", SIGWINCH}, {"IO", SIGIO},
      {"PWR", SIGPWR},   {"SYS", SIGSYS}};
  std::string t = text;
  if (!t.empty() && t.find_first_not_of("0123456789") == std::string::npos) {
    int n = std::atoi(t.c_str());
    if (n > 0 && n < 65) return n;
    throw Error("invalid signal: " + text);
  }
  for (auto& ch : t) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  if (t.rfind("SIG", 0) == 0) t = t.substr(3);
  if (t.rfind("RTMIN", 0) == 0 || t.rfind("RTMAX", 0) == 0) {
    int base = t[2] == 'M' && t[3] == 'I' ? SIGRTMIN : SIGRTMAX;
    std::string rest = t.substr(5);
    if (rest.empty()) return base;
    int off = std::atoi(rest.c_str());
    return base + off;
  }
  for (const auto& [n, v] : names)
    if (t == n) return v;
  throw Error("invalid signal: " + text);
}

std::vector<std::string> container_networks(const json& stored, const std::string& mode) {
  std::vector<std::string> out;
  if (stored.contains("BerthNetworks") && stored["BerthNetworks"].is_array()) {
    for (const auto& n : stored["BerthNetworks"])
      if (n.is_string()) out.push_back(n.get<std::string>());
    return out;
  }
  out.push_back(mode);
  if (stored.contains("NetworkingConfig") && stored["NetworkingConfig"].is_object()) {
    json eps = stored["NetworkingConfig"].value("EndpointsConfig", json::object());
    if (eps.is_object())
      for (auto& [k, v] : eps.items())
        if (k != mode) out.push_back(k);
  }
  return out;
}

namespace {

// docker's /etc/hosts: localhost lines, --add-host entries, then the container's own address(es)
// with its hostname. host-gateway is the first network's gateway.
std::string hosts_file(const json& config, const json& host_config, const std::vector<Endpoint>& endpoints = {}) {
  std::string out =
      "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::\tip6-localnet\n"
      "ff00::\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n";
  if (auto e = host_config.find("ExtraHosts"); e != host_config.end() && e->is_array()) {
    for (const auto& h : *e) {
      if (!h.is_string()) continue;
      std::string s = h.get<std::string>();
      size_t sep = s.find_first_of(":=");
      if (sep == std::string::npos) continue;
      std::string ip = s.substr(sep + 1);
      if (ip == "host-gateway") {
        if (endpoints.empty()) continue;
        ip = endpoints.front().gateway;
      }
      out += ip + "\t" + s.substr(0, sep) + "\n";
    }
  }
  std::string hostname = jstr(config, "Hostname");
  for (const auto& e : endpoints) {
    std::string names = hostname;
    if (std::string domain = jstr(config, "Domainname"); !domain.empty())
      names = hostname + "." + domain + " " + hostname;
    out += e.ip + "\t" + names + "\n";
  }
  return out;
}

// The host's resolv.conf, with --dns/--dns-search/--dns-option replacing its lines. Loopback
// nameservers can't be reached from a private network namespace, so docker drops them there.
// On a user-defined network the nameserver is berth's responder on the gateway, and --dns
// servers are its upstreams (docker's embedded DNS), not resolv.conf lines.
std::string resolv_conf(const json& host_config, bool host_network, const std::string& responder = "") {
  std::string host = read_file_if_exists("/etc/resolv.conf").value_or("");
  std::vector<std::string> servers, search, options, other;
  size_t pos = 0;
  while (pos < host.size()) {
    size_t nl = host.find('\n', pos);
    std::string line = host.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
    pos = nl == std::string::npos ? host.size() : nl + 1;
    std::string t(trim(line));
    if (t.rfind("nameserver", 0) == 0) {
      std::string ip(trim(t.substr(10)));
      if (host_network || (ip.rfind("127.", 0) != 0 && ip != "::1")) servers.push_back(ip);
    } else if (t.rfind("search", 0) == 0) {
      search.emplace_back(trim(t.substr(6)));
    } else if (t.rfind("options", 0) == 0) {
      options.emplace_back(trim(t.substr(7)));
    }
  }
  auto list = [&](const char* key) {
    std::vector<std::string> v;
    if (auto it = host_config.find(key); it != host_config.end() && it->is_array())
      for (const auto& x : *it)
        if (x.is_string()) v.push_back(x.get<std::string>());
    return v;
  };
  if (auto d = list("Dns"); !d.empty()) servers = d;
  if (!responder.empty()) servers = {responder};
  if (auto d = list("DnsSearch"); !d.empty())
    search = {[&] {
      std::string s;
      for (const auto& x : d) s += (s.empty() ? "" : " ") + x;
      return s;
    }()};
  if (auto d = list("DnsOptions"); !d.empty())
    options = {[&] {
      std::string s;
      for (const auto& x : d) s += (s.empty() ? "" : " ") + x;
      return s;
    }()};
  std::string out;
  for (const auto& s : search) out += "search " + s + "\n";
  for (const auto& s : servers) out += "nameserver " + s + "\n";
  for (const auto& o : options) out += "options " + o + "\n";
  return out;
}

std::string restart_policy_arg(const json& host_config) {
  auto rp = host_config.find("RestartPolicy");
  if (rp == host_config.end() || !rp->is_object()) return "no";
  std::string name = jstr(*rp, "Name");
  if (name.empty() || name == "no") return "no";
  if (name == "on-failure") {
    int64_t n = jint(*rp, "MaximumRetryCount");
    return n > 0 ? "on-failure:" + std::to_string(n) : "on-failure";
  }
  return name;
}

bool bridged_mode(const std::string& mode) {
  return mode != "host" && mode != "none" && mode.rfind("container:", 0) != 0;
}

// The networks and ports a container asks for, from its stored config: NetworkMode first (it
// gets the default route), then NetworkingConfig's other endpoints.
ContainerNetRequest net_request(const std::string& id, const std::string& name, const json& stored) {
  static const json empty = json::object();
  const json& config = stored.contains("Config") && stored["Config"].is_object() ? stored["Config"] : empty;
  const json& hc = stored.contains("HostConfig") && stored["HostConfig"].is_object() ? stored["HostConfig"] : empty;
  ContainerNetRequest r;
  r.id = id;
  r.name = name;
  r.hostname = jstr(config, "Hostname");
  std::string mode = jstr(hc, "NetworkMode");
  if (mode.empty() || mode == "default") mode = "bridge";
  json eps = json::object();
  if (stored.contains("NetworkingConfig") && stored["NetworkingConfig"].is_object())
    eps = stored["NetworkingConfig"].value("EndpointsConfig", json::object());
  if (!eps.is_object()) eps = json::object();
  auto add = [&](const std::string& net, const json& ep) {
    EndpointRequest e;
    e.network = net;
    if (ep.is_object()) {
      if (ep.contains("Aliases") && ep["Aliases"].is_array())
        for (const auto& a : ep["Aliases"])
          if (a.is_string()) e.aliases.push_back(a.get<std::string>());
      if (ep.contains("IPAMConfig") && ep["IPAMConfig"].is_object()) e.ip = jstr(ep["IPAMConfig"], "IPv4Address");
      e.mac = jstr(ep, "MacAddress");
    }
    r.networks.push_back(std::move(e));
  };
  for (const auto& n : container_networks(stored, mode)) add(n, eps.contains(n) ? eps[n] : json::object());
  if (!r.networks.empty() && r.networks[0].network == mode && r.networks[0].mac.empty())
    r.networks[0].mac = jstr(config, "MacAddress");
  r.port_bindings = hc.value("PortBindings", json::object());
  if (!r.port_bindings.is_object()) r.port_bindings = json::object();
  r.publish_all = hc.value("PublishAllPorts", false);
  if (config.contains("ExposedPorts") && config["ExposedPorts"].is_object())
    for (auto& [k, v] : config["ExposedPorts"].items()) r.exposed.push_back(k);
  if (hc.contains("Dns") && hc["Dns"].is_array())
    for (const auto& d : hc["Dns"])
      if (d.is_string()) r.upstream_dns.push_back(d.get<std::string>());
  return r;
}

// Rewrites a running container's hosts and resolv.conf in place (they are bind-mounted files).
// The DNS responder a container's resolv.conf names: its first user-defined network's gateway
// (docker's embedded DNS serves containers with any user-defined network), else none.
std::string responder_for(NetworkStore& nets, const std::vector<Endpoint>& eps) {
  for (const auto& e : eps)
    if (auto n = nets.find(e.network_id); n && n->user_defined()) return n->gateway;
  return "";
}

void write_in_place(const std::string& path, const std::string& content) {
  write_file(path, content, O_WRONLY | O_CREAT | O_TRUNC, 0644);
}

}  // namespace

void validate_container_name(const std::string& name) {
  std::string n = !name.empty() && name[0] == '/' ? name.substr(1) : name;
  bool ok = n.size() >= 2 && std::isalnum(static_cast<unsigned char>(n[0]));
  for (char ch : n) ok = ok && (std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '.' || ch == '-');
  if (!ok) throw StatusError("Invalid container name (" + n + "), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", 125);
}

namespace {

// Adds a container's labels to an event's attributes (the attributes' own keys win, as docker's).
void add_label_attributes(json& attributes, const json& stored) {
  if (!stored.is_object() || !stored.contains("Config") || !stored["Config"].is_object()) return;
  const json& labels = stored["Config"].value("Labels", json::object());
  if (!labels.is_object()) return;
  for (auto& [k, v] : labels.items())
    if (v.is_string() && !attributes.contains(k)) attributes[k] = v;
}

}  // namespace

struct Engine::Impl {
  image::ImageStore& images;
  VolumeStore& volumes;
  sql::Db& db;
  NetworkStore networks;

  void add_event(const std::string& type, const std::string& action, const std::string& actor, json attributes) {
    // docker's container events carry the container's labels (compose filters on them).
    if (type == "container") {
      sql::Stmt s(db, "SELECT config FROM containers WHERE id=?");
      s.bind(1, actor);
      if (s.step()) add_label_attributes(attributes, json::parse(s.text(0), nullptr, false));
    }
    sql::Stmt(db, "INSERT INTO events(time_ns,type,action,actor_id,attributes) VALUES(?,?,?,?,?)")
        .bind(1, now_ns())
        .bind(2, type)
        .bind(3, action)
        .bind(4, actor)
        .bind(5, attributes.dump())
        .run();
  }
};

Engine::Engine(std::string root, image::ImageStore& images, VolumeStore& volumes)
    : impl_(new Impl{images, volumes, images.db(), NetworkStore(images.db(), root, run_dir())}),
      root_(std::move(root)) {
  ensure_schema(impl_->db);
}

NetworkStore& Engine::networks() { return impl_->networks; }

Engine::~Engine() = default;

sql::Db& Engine::db() { return impl_->db; }

std::string Engine::container_dir(const std::string& id) const { return root_ + "/containers/" + id; }
std::string Engine::state_dir(const std::string& id) const { return run_dir() + "/" + id; }
std::string Engine::log_path(const std::string& id) const { return container_dir(id) + "/" + id + "-json.log"; }
std::string Engine::runtime_path() const { return self_dir() + "berth-runtime"; }
std::string Engine::shim_path() const { return self_dir() + "berth-shim"; }
std::string Engine::berth_path() const { return self_dir() + "berth"; }
std::string Engine::runtime_root() const { return run_dir() + "/runtime"; }

namespace {

// Folds what the shim recorded into the row (and the database, when it changed).
void refresh(Engine& engine, sql::Db& db, Container& c) {
  const bool has_check =
      c.config.is_object() && c.config.contains("Config") && !health_check_args(c.config["Config"]).empty();
  if (!c.running() && !has_check) return;
  std::string dir = engine.container_dir(c.id);
  json status = read_json_file(dir + "/status.json");
  // The shim's health (docker's State.Health), kept with the status file, not in the database.
  if (has_check && status.is_object() && status.contains("health") && status["health"].is_object())
    c.health = status["health"];
  if (!c.running()) return;
  bool alive = shim_alive(engine.state_dir(c.id));
  // The shim records the exit and then ends: when it is gone, what it recorded last is read
  // again, or an exit between the two reads would look like a shim that died unrecorded.
  if (!alive) status = read_json_file(dir + "/status.json");
  Container before = c;
  if (status.is_object()) c.log_dropped = jint(status, "log_dropped");
  std::string sstate = status.is_object() ? jstr(status, "state") : "";
  if (sstate == "exited") {
    c.state = "exited";
    c.exit_code = static_cast<int>(jint(status, "exit_code"));
    c.finished_at = jstr(status, "finished_at");
    c.restart_count = static_cast<int>(jint(status, "restart_count", c.restart_count));
    c.error = jstr(status, "error");
    c.pid = 0;
  } else if (alive) {
    if (sstate == "running" || sstate == "restarting") {
      if (c.state != "paused" || sstate == "restarting") c.state = sstate;
      c.pid = static_cast<int>(jint(status, "pid", c.pid));
      if (!jstr(status, "started_at").empty()) c.started_at = jstr(status, "started_at");
      c.restart_count = static_cast<int>(jint(status, "restart_count", c.restart_count));
      if (sstate == "restarting") {
        c.exit_code = static_cast<int>(jint(status, "exit_code"));
        c.finished_at = jstr(status, "finished_at");
      }
    }
  } else {
    // The shim died without recording an exit (kill -9, reboot): whatever is left of the
    // container goes, and it is marked exited.
    bool runtime_has_it = path_exists(engine.runtime_root() + "/" + c.id);
    if (runtime_has_it)
      run_process({engine.runtime_path(), "--root", engine.runtime_root(), "delete", "--force", c.id});
    c.state = "exited";
    c.exit_code = runtime_has_it ? 137 : 255;
    c.finished_at = logs::format_time(now_ns());
    c.error = "the container's shim exited unexpectedly";
    c.pid = 0;
  }
  if (c.state == before.state && c.pid == before.pid && c.exit_code == before.exit_code &&
      c.finished_at == before.finished_at && c.restart_count == before.restart_count &&
      c.started_at == before.started_at)
    return;
  // The row and its "die" event in one commit (one WAL sync, not two), unless the caller's
  // transaction holds both already.
  std::optional<sql::Transaction> tx;
  if (!db.in_transaction()) tx.emplace(db);
  sql::Stmt(db,
            "UPDATE containers SET state=?,pid=?,exit_code=?,started_at=?,finished_at=?,restart_count=?,error=? "
            "WHERE id=? AND state=?")
      .bind(1, c.state)
      .bind(2, static_cast<int64_t>(c.pid))
      .bind(3, static_cast<int64_t>(c.exit_code))
      .bind(4, c.started_at)
      .bind(5, c.finished_at)
      .bind(6, static_cast<int64_t>(c.restart_count))
      .bind(7, c.error)
      .bind(8, c.id)
      .bind(9, before.state)
      .run();
  // Only the process whose update moved the row on records the exit: two readers of the same
  // exit (a waiting CLI and the API server) would otherwise each log a "die".
  if (db.changes() == 0) {
    if (tx) tx->commit();
    return;
  }
  if (c.state == "exited" && before.state != "exited") {
    sql::Stmt(db, "INSERT INTO events(time_ns,type,action,actor_id,attributes) VALUES(?,?,?,?,?)")
        .bind(1, now_ns())
        .bind(2, "container")
        .bind(3, "die")
        .bind(4, c.id)
        .bind(
            5,
            [&] {
              json attributes = {{"name", c.name}, {"image", c.image_name}, {"exitCode", std::to_string(c.exit_code)}};
              add_label_attributes(attributes, c.config);
              return attributes.dump();
            }())
        .run();
  }
  if (tx) tx->commit();
}

// Sends sig to the container's init, if the shim still looks after it.
bool signal_container(Engine& engine, const Container& c, int sig) {
  if (c.pid <= 0 || !shim_alive(engine.state_dir(c.id))) return false;
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, c.pid, 0));
  if (pidfd < 0) return false;
  UniqueFd guard(pidfd);
  if (::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0) != 0) {
    if (errno == ESRCH) return false;
    throw_errno("signal container " + c.id);
  }
  return true;
}

bool exited(Engine& engine, const std::string& id) {
  json status = read_json_file(engine.container_dir(id) + "/status.json");
  if (status.is_object() && jstr(status, "state") == "exited") return true;
  return !shim_alive(engine.state_dir(id));
}

// Polls (status file, shim lock) until the container has exited or the deadline passed.
bool wait_exited(Engine& engine, const std::string& id, std::chrono::steady_clock::time_point deadline) {
  auto delay = std::chrono::milliseconds(1);
  while (!exited(engine, id)) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(delay);
    if (delay < std::chrono::milliseconds(20)) delay *= 2;
  }
  return true;
}

// Blocks until the container's shim has ended (recorded the exit and deleted the runtime's state)
// or the deadline passed: on the shim's pidfd, taken while shim.lock is held so that it is the
// shim's own (a live process's pid cannot be reused). Only for a shim that will not restart the
// container (stop file written, or exited). Polls shim.lock when there is no pid to wait on.
bool wait_shim_gone(Engine& engine, const std::string& id, std::chrono::steady_clock::time_point deadline) {
  UniqueFd pidfd = engine.shim_pidfd(id);
  if (!pidfd) {
    auto delay = std::chrono::milliseconds(1);
    while (shim_alive(engine.state_dir(id))) {
      if (std::chrono::steady_clock::now() >= deadline) return false;
      std::this_thread::sleep_for(delay);
      if (delay < std::chrono::milliseconds(20)) delay *= 2;
    }
    return true;
  }
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{pidfd.get(), POLLIN, 0};
    int rc = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), 1 << 30)));
    if (rc > 0) return true;
    if (rc < 0 && errno != EINTR) throw_errno("poll the shim of container " + id);
  }
}

}  // namespace

namespace {

// The row of a container named by ID, name or ID prefix, as stored (get() refreshes it).
Container lookup(sql::Db& db, const std::string& ref_in) {
  std::string ref = !ref_in.empty() && ref_in[0] == '/' ? ref_in.substr(1) : ref_in;
  if (ref.empty()) throw NotFound("No such container: " + ref_in);
  auto load = [&](const std::string& where, const std::string& value) -> std::optional<Container> {
    sql::Stmt s(db, std::string("SELECT ") + kColumns + " FROM containers WHERE " + where);
    s.bind(1, value);
    std::optional<Container> found;
    while (s.step()) {
      if (found) throw Error("Multiple IDs found with provided prefix: " + ref);
      found = row_to_container(s);
    }
    return found;
  };
  std::optional<Container> c = load("id=?", ref);
  if (!c) c = load("name=?", ref);
  if (!c && ref.find_first_not_of("0123456789abcdef") == std::string::npos) {
    // An ID prefix: a range scan of the primary key.
    sql::Stmt s(db, std::string("SELECT ") + kColumns + " FROM containers WHERE id >= ? AND id < ?");
    std::string upper = ref;
    upper.back() = static_cast<char>(upper.back() + 1);
    s.bind(1, ref).bind(2, upper);
    while (s.step()) {
      if (c) throw Error("Multiple IDs found with provided prefix: " + ref);
      c = row_to_container(s);
    }
  }
  if (!c || c->state == "creating" || c->state == "removing" || c->state == "removing-volumes")
    throw NotFound("No such container: " + ref_in);
  return std::move(*c);
}

}  // namespace

bool Container::auto_remove() const {
  const auto hc = config.is_object() ? config.find("HostConfig") : config.end();
  return hc != config.end() && hc->is_object() && hc->value("AutoRemove", false);
}

Container Engine::get(const std::string& ref) {
  Container c = lookup(impl_->db, ref);
  refresh(*this, impl_->db, c);
  return c;
}

bool Engine::exists(const std::string& id) {
  sql::Stmt s(impl_->db, "SELECT 1 FROM containers WHERE id=?");
  s.bind(1, id);
  return s.step();
}

std::vector<Container> Engine::list() { return list_rows(false); }

std::vector<Container> Engine::list_summaries() { return list_rows(true); }

std::vector<Container> Engine::list_rows(bool summaries) {
  std::vector<Container> out;
  {
    sql::Stmt s(impl_->db, std::string("SELECT ") + (summaries ? kSummaryColumns : kColumns) +
                               " FROM containers WHERE state NOT IN ('creating','removing','removing-volumes') "
                               "ORDER BY created_ns DESC");
    while (s.step()) out.push_back(summaries ? row_to_summary(s) : row_to_container(s));
  }
  bool any_running = false;
  for (const auto& c : out) any_running = any_running || c.running();
  if (any_running) {
    sql::Transaction tx(impl_->db);
    for (auto& c : out) refresh(*this, impl_->db, c);
    tx.commit();
  }
  return out;
}

void Engine::reconcile() {
  std::vector<std::pair<std::string, std::string>> pending;
  {
    sql::Stmt s(impl_->db, "SELECT id,state FROM containers WHERE state IN ('creating','removing','removing-volumes')");
    while (s.step()) pending.emplace_back(s.text(0), s.text(1));
  }
  for (const auto& entry : pending) {
    const std::string& id = entry.first;
    ContainerLock lock(root_, id, false);
    if (!lock.held()) continue;  // its creator or remover is still at work
    // It may have finished between the query and the lock: only what is still pending now is ours.
    std::string state;
    {
      sql::Stmt s(impl_->db, "SELECT state FROM containers WHERE id=?");
      s.bind(1, id);
      if (s.step()) state = s.text(0);
    }
    if (state != "creating" && state != "removing" && state != "removing-volumes") continue;
    // Both finish the same way: whatever was made goes, the row last.
    std::vector<std::pair<std::string, bool>> vols;
    {
      sql::Stmt s(impl_->db, "SELECT volume,anonymous FROM container_volumes WHERE container_id=?");
      s.bind(1, id);
      while (s.step()) vols.emplace_back(s.text(0), s.integer(1) != 0);
    }
    std::string image_id;
    {
      sql::Stmt s(impl_->db, "SELECT image_id FROM containers WHERE id=?");
      s.bind(1, id);
      if (s.step()) image_id = s.text(0);
    }
    if (path_exists(runtime_root() + "/" + id))
      run_process({runtime_path(), "--root", runtime_root(), "delete", "--force", id});
    impl_->networks.teardown(id);
    storage::unmount_overlay(container_dir(id) + "/rootfs");
    remove_tree(container_dir(id));
    remove_tree(state_dir(id));
    {
      sql::Transaction tx(impl_->db);
      sql::Stmt(impl_->db, "DELETE FROM container_volumes WHERE container_id=?").bind(1, id).run();
      sql::Stmt(impl_->db, "DELETE FROM containers WHERE id=?").bind(1, id).run();
      tx.commit();
    }
    if (!image_id.empty()) impl_->images.remove_image_user(image_id, id);
    // An interrupted create's anonymous volumes were never used; an interrupted rm -v asked for them to go.
    for (const auto& [name, anonymous] : vols)
      if (anonymous && state != "removing") impl_->volumes.remove(name, true);
    ::unlink(removal_claim_path(root_, id).c_str());
    lock.remove_file();
  }
  impl_->volumes.reconcile();
  impl_->networks.reconcile([&](const std::string& id) {
    ContainerLock lock(root_, id, false);
    if (!lock.held()) return;  // being started, stopped or removed right now
    bool running = false, exists = true;
    try {
      running = get(id).running();
    } catch (const NotFound&) {
      exists = false;
    }
    if (!running) impl_->networks.teardown(id);
    if (!exists) lock.remove_file();
  });
}

namespace {

// The container's networks as the BerthNetworks list connect/disconnect store.
json network_list(const json& stored) { return container_networks(stored, jstr(stored["HostConfig"], "NetworkMode")); }

}  // namespace

void Engine::connect(const std::string& network, const std::string& ref, const EndpointRequest& request) {
  Network n = impl_->networks.get(network);
  Container c = get(ref);
  ContainerLock lock(root_, c.id, true);
  c = get(c.id);
  json stored = c.config;
  std::string mode = jstr(stored["HostConfig"], "NetworkMode");
  if (!bridged_mode(mode))
    throw StatusError(
        "container sharing network namespace with another container or host cannot be connected to "
        "any other network",
        1);
  if (n.driver != "bridge")
    throw StatusError("container cannot be disconnected from host network or connected to host network", 1);
  json list = network_list(stored);
  for (const auto& x : list) {
    auto other = impl_->networks.find(x.get<std::string>());
    if (x == n.name || (other && other->id == n.id))
      throw StatusError("endpoint with name " + c.name + " already exists in network " + n.name, 1);
  }
  EndpointRequest req = request;
  req.network = n.name;
  if (!n.user_defined() && !req.aliases.empty())
    throw StatusError("network-scoped alias is supported only for containers in user defined networks", 1);
  if (c.running()) {
    impl_->networks.connect(net_request(c.id, c.name, stored), req);
    try {
      auto eps = impl_->networks.endpoints(c.id);
      write_in_place(container_dir(c.id) + "/hosts", hosts_file(stored["Config"], stored["HostConfig"], eps));
      write_in_place(container_dir(c.id) + "/resolv.conf",
                     resolv_conf(stored["HostConfig"], false, responder_for(impl_->networks, eps)));
    } catch (...) {
      impl_->networks.disconnect(c.id, n.id);
      throw;
    }
  }
  json ep = json::object();
  if (!req.aliases.empty()) ep["Aliases"] = req.aliases;
  if (!req.ip.empty()) ep["IPAMConfig"] = {{"IPv4Address", req.ip}};
  if (!stored.contains("NetworkingConfig") || !stored["NetworkingConfig"].is_object())
    stored["NetworkingConfig"] = json::object();
  if (!stored["NetworkingConfig"].contains("EndpointsConfig") ||
      !stored["NetworkingConfig"]["EndpointsConfig"].is_object())
    stored["NetworkingConfig"]["EndpointsConfig"] = json::object();
  stored["NetworkingConfig"]["EndpointsConfig"][n.name] = ep;
  list.push_back(n.name);
  stored["BerthNetworks"] = list;
  sql::Transaction tx(impl_->db);
  sql::Stmt(impl_->db, "UPDATE containers SET config=? WHERE id=?").bind(1, stored.dump()).bind(2, c.id).run();
  impl_->add_event("network", "connect", n.id, {{"container", c.id}, {"name", n.name}, {"type", n.driver}});
  tx.commit();
}

void Engine::disconnect(const std::string& network, const std::string& ref, bool force) {
  std::optional<Network> n = impl_->networks.find(network);
  if (!n && !force) throw NotFound("network " + network + " not found");
  Container c = get(ref);
  ContainerLock lock(root_, c.id, true);
  c = get(c.id);
  json stored = c.config;
  std::string mode = jstr(stored["HostConfig"], "NetworkMode");
  if (!bridged_mode(mode))
    throw StatusError("container cannot be disconnected from host network or connected to host network", 1);
  json list = network_list(stored), kept = json::array();
  bool found = false;
  for (const auto& x : list) {
    std::string name = x.get<std::string>();
    auto other = impl_->networks.find(name);
    bool same = name == network || (n && (name == n->name || (other && other->id == n->id)));
    if (same) {
      found = true;
      if (stored.contains("NetworkingConfig") && stored["NetworkingConfig"].is_object() &&
          stored["NetworkingConfig"].contains("EndpointsConfig"))
        stored["NetworkingConfig"]["EndpointsConfig"].erase(name);
    } else {
      kept.push_back(x);
    }
  }
  if (!found) {
    if (force) return;
    throw StatusError("container " + c.id + " is not connected to network " + network, 1);
  }
  if (c.running() && n) {
    impl_->networks.disconnect(c.id, n->id);
    auto eps = impl_->networks.endpoints(c.id);
    write_in_place(container_dir(c.id) + "/hosts", hosts_file(stored["Config"], stored["HostConfig"], eps));
    write_in_place(container_dir(c.id) + "/resolv.conf",
                   resolv_conf(stored["HostConfig"], false, responder_for(impl_->networks, eps)));
  }
  stored["BerthNetworks"] = kept;
  sql::Transaction tx(impl_->db);
  sql::Stmt(impl_->db, "UPDATE containers SET config=? WHERE id=?").bind(1, stored.dump()).bind(2, c.id).run();
  if (n)
    impl_->add_event("network", "disconnect", n->id, {{"container", c.id}, {"name", n->name}, {"type", n->driver}});
  tx.commit();
}

void Engine::cleanup(const std::string& ref) {
  Container c = get(ref);
  ContainerLock lock(root_, c.id, true);
  c = get(c.id);
  if (!c.running()) impl_->networks.teardown(c.id);
}

std::string Engine::create(const json& body) {
  json config = body.value("Config", json::object());
  json host_config = body.value("HostConfig", json::object());
  if (!config.is_object() || !host_config.is_object()) throw StatusError("invalid create body", 125);
  std::string image_ref = jstr(config, "Image");
  if (image_ref.empty()) throw StatusError("No image specified", 125);
  auto image = impl_->images.find(image_ref);
  if (!image) throw NotFound("No such image: " + image_ref);
  json image_config = json::parse(image->config, nullptr, false);
  if (image_config.is_discarded()) image_config = json::object();
  json image_volumes = image_config.contains("config") && image_config["config"].is_object()
                           ? image_config["config"].value("Volumes", json::object())
                           : json::object();
  if (image_volumes.is_null()) image_volumes = json::object();

  // Everything that can be refused is checked before anything is created.
  {
    json& lc = host_config["LogConfig"];
    if (!lc.is_object()) lc = json::object();
    if (jstr(lc, "Type").empty()) lc["Type"] = "json-file";
    if (!lc.contains("Config") || !lc["Config"].is_object()) lc["Config"] = json::object();
    std::string type = jstr(lc, "Type");
    if (type != "json-file" && type != "local" && type != "none")
      throw StatusError("logger: no log driver named '" + type + "' is registered", 125);
    static const char* known[] = {"max-size",  "max-file", "labels",   "labels-regex", "env",
                                  "env-regex", "tag",      "compress", "mode",         "max-buffer-size"};
    for (auto& [key, value] : lc["Config"].items()) {
      bool ok = false;
      for (const char* k : known) ok = ok || key == k;
      if (!ok || type == "none") throw StatusError("unknown log opt '" + key + "' for " + type + " log driver", 125);
      std::string v = value.is_string() ? value.get<std::string>() : value.dump();
      try {
        if (key == "max-size") logs::parse_max_size(v);
        if (key == "max-file") logs::parse_max_file(v);
      } catch (const Error& e) {
        throw StatusError(e.what(), 125);
      }
    }
  }
  std::vector<std::pair<json, std::string>> volumes_from;
  if (auto vf = host_config.find("VolumesFrom"); vf != host_config.end() && vf->is_array()) {
    for (const auto& v : *vf) {
      std::string spec = v.get<std::string>();
      std::string mode;
      size_t colon = spec.find(':');
      if (colon != std::string::npos) {
        mode = spec.substr(colon + 1);
        spec = spec.substr(0, colon);
        if (mode != "ro" && mode != "rw") throw StatusError("invalid mode for volumes-from: " + mode, 125);
      }
      Container other = get(spec);
      volumes_from.emplace_back(other.mounts, mode);
    }
  }
  std::vector<RequestedMount> mounts;
  try {
    mounts = requested_mounts(config, host_config, image_volumes, volumes_from);
  } catch (const Error& e) {
    throw StatusError(e.what(), 125);
  }
  for (const auto& m : mounts) {
    if (m.spec.type != storage::MountType::Bind || m.spec.create_host_path) continue;
    if (!path_exists(m.spec.source))
      throw StatusError("invalid mount config for type \"bind\": bind source path does not exist: " + m.spec.source,
                        125);
  }
  for (const auto& m : mounts)
    if (m.spec.type == storage::MountType::Volume && !m.spec.driver.empty() && m.spec.driver != "local")
      throw StatusError("volume driver " + m.spec.driver + " is not available (berth has only \"local\")", 125);

  std::string name = jstr(body, "Name");
  if (!name.empty()) {
    validate_container_name(name);
    if (name[0] == '/') name = name.substr(1);
  }
  // Networks: "default" is the bridge; the networks, static addresses and fixed host ports are
  // checked now so that a bad one creates nothing.
  json networking = body.value("NetworkingConfig", json::object());
  if (!networking.is_object()) networking = json::object();
  std::string net_mode = jstr(host_config, "NetworkMode");
  if (net_mode.empty() || net_mode == "default") net_mode = "bridge";
  if (net_mode.rfind("container:", 0) == 0) {
    Container other = get(net_mode.substr(10));
    net_mode = "container:" + other.id;
  } else if (net_mode != "host" && net_mode != "none") {
    // A network named by ID prefix is stored by name, as docker does for its mode.
    auto n = impl_->networks.find(net_mode);
    if (!n) impl_->networks.ensure_predefined(), n = impl_->networks.find(net_mode);
    if (!n) throw StatusError("network " + net_mode + " not found", 125);
    if (n->driver == "host" || n->driver == "null") net_mode = n->name;
  }
  host_config["NetworkMode"] = net_mode;
  // The CLI keys the first network's settings (--ip, --network-alias) by the mode it was given.
  if (networking.contains("EndpointsConfig") && networking["EndpointsConfig"].is_object()) {
    json& eps = networking["EndpointsConfig"];
    for (const char* alias : {"default", ""})
      if (eps.contains(alias) && !eps.contains(net_mode)) {
        eps[net_mode] = eps[alias];
        eps.erase(alias);
      }
  }
  if (bridged_mode(net_mode))
    impl_->networks.validate(
        net_request("", "", {{"Config", config}, {"HostConfig", host_config}, {"NetworkingConfig", networking}}));
  else if (networking.contains("EndpointsConfig") && networking["EndpointsConfig"].is_object() &&
           networking["EndpointsConfig"].size() > 1)
    throw StatusError(
        "container cannot be connected to multiple networks with one of the networks in " + net_mode + " mode", 125);
  std::string id = generate_id();
  ContainerLock lock(root_, id, true);
  json stored = {{"Config", config}, {"HostConfig", host_config}, {"NetworkingConfig", networking}};
  {
    sql::Transaction tx(impl_->db);
    for (int attempt = 0; name.empty() || attempt == 0; attempt++) {
      std::string candidate = name.empty() ? generate_name(attempt) : name;
      sql::Stmt s(impl_->db, "SELECT id FROM containers WHERE name=?");
      s.bind(1, candidate);
      if (!s.step()) {
        name = candidate;
        break;
      }
      if (!name.empty())
        throw StatusError("Conflict. The container name \"/" + name + "\" is already in use by container \"" +
                              s.text(0) +
                              "\". You have to remove (or rename) that container to be able to reuse that name.",
                          125);
      if (attempt > 50) throw StatusError("cannot generate a unique container name", 125);
    }
    sql::Stmt(impl_->db,
              "INSERT INTO containers(id,name,image_id,image_name,created_ns,state,config) VALUES(?,?,?,?,?,?,?)")
        .bind(1, id)
        .bind(2, name)
        .bind(3, image->id)
        .bind(4, image_ref)
        .bind(5, now_ns())
        .bind(6, "creating")
        .bind(7, stored.dump())
        .run();
    // Same transaction: the image is pinned from the moment the row exists.
    impl_->images.add_image_user(image->id, id);
    tx.commit();
  }
  fault_point("create.row");

  std::string dir = container_dir(id);
  std::string rootfs = dir + "/rootfs";
  std::vector<std::string> anonymous_created;
  try {
    mkdir_p(dir + "/upper", 0755);
    mkdir_p(dir + "/work", 0700);
    mkdir_p(rootfs, 0755);
    std::vector<std::string> lowers;
    for (size_t i = image->layers.size(); i-- > 0;)
      lowers.push_back(impl_->images.layer_dir(image->layers[i].chain_id));
    if (lowers.empty()) throw StatusError("image " + image_ref + " has no layers", 125);
    // A --rm container's writable layer goes with it: never written back (as podman does).
    storage::mount_overlay(lowers, dir + "/upper", dir + "/work", rootfs, host_config.value("AutoRemove", false));
    fault_point("create.mount");

    bool host_network = jstr(host_config, "NetworkMode") == "host";
    std::string hostname = jstr(config, "Hostname");
    if (hostname.empty()) hostname = host_network ? "" : id.substr(0, 12);
    if (hostname.empty()) {
      char buf[256] = {};
      ::gethostname(buf, sizeof buf - 1);
      hostname = buf;
    }
    write_file_atomic(dir + "/hostname", hostname + "\n");
    write_file_atomic(dir + "/hosts",
                      host_network ? read_file_if_exists("/etc/hosts").value_or("") : hosts_file(config, host_config));
    write_file_atomic(dir + "/resolv.conf", resolv_conf(host_config, host_network));

    // Mounts: binds as given (-v makes a missing host directory, like docker), volumes created on
    // first use and filled from the image when empty.
    std::vector<MountPlan> plans;
    json docker_mounts = json::array();
    for (const auto& m : mounts) {
      const auto& s = m.spec;
      MountPlan p;
      p.destination = s.target;
      if (s.type == storage::MountType::Tmpfs) {
        p.type = "tmpfs";
        p.source = "tmpfs";
        p.options = {"nosuid", "nodev", "noexec"};
        bool exec_given = false;
        for (const auto& o : s.tmpfs_options) {
          if (o == "exec" || o == "noexec") exec_given = true;
        }
        if (exec_given) p.options = {"nosuid", "nodev"};
        for (const auto& o : s.tmpfs_options) p.options.push_back(o);
        if (s.tmpfs_size > 0) p.options.push_back("size=" + std::to_string(s.tmpfs_size));
        if (s.tmpfs_mode != 0) {
          char mode[32];
          std::snprintf(mode, sizeof mode, "mode=%o", s.tmpfs_mode);
          p.options.push_back(mode);
        }
        if (s.read_only) p.options.push_back("ro");
        plans.push_back(p);
        // docker lists --mount type=tmpfs in Mounts[], not --tmpfs.
        if (!host_config.contains("Tmpfs") || !host_config["Tmpfs"].contains(s.target))
          docker_mounts.push_back({{"Type", "tmpfs"},
                                   {"Source", ""},
                                   {"Destination", s.target},
                                   {"Mode", ""},
                                   {"RW", !s.read_only},
                                   {"Propagation", ""}});
        continue;
      }
      p.type = "bind";
      std::string propagation = s.propagation.empty() ? "rprivate" : s.propagation;
      if (s.type == storage::MountType::Bind) {
        if (s.create_host_path && !path_exists(s.source)) mkdir_p(s.source, 0755);
        p.source = s.source;
        docker_mounts.push_back({{"Type", "bind"},
                                 {"Source", s.source},
                                 {"Destination", s.target},
                                 {"Mode", m.mode},
                                 {"RW", !s.read_only},
                                 {"Propagation", propagation}});
      } else {
        bool anonymous = s.source.empty();
        Volume vol =
            impl_->volumes.create(s.source, s.driver.empty() ? "local" : s.driver, s.driver_opts, s.labels, anonymous);
        if (anonymous) anonymous_created.push_back(vol.name);
        // Checks the volume is still there and records the use in one step (a concurrent
        // `volume rm` either sees this container or has already removed the volume).
        impl_->volumes.add_user(vol.name, id, anonymous);
        fault_point("create.volume");
        impl_->volumes.mount_source(vol);
        if (!s.nocopy && s.subpath.empty()) impl_->volumes.copy_up(vol, rootfs, s.target);
        p.source = s.subpath.empty() ? vol.mountpoint : vol.mountpoint + "/" + s.subpath;
        if (!s.subpath.empty() && !path_exists(p.source))
          throw StatusError("cannot access path " + p.source + ": volume subpath does not exist", 125);
        docker_mounts.push_back({{"Type", "volume"},
                                 {"Name", vol.name},
                                 {"Source", vol.mountpoint},
                                 {"Destination", s.target},
                                 {"Driver", vol.driver},
                                 {"Mode", m.mode.empty() && m.from_binds ? "z" : m.mode},
                                 {"RW", !s.read_only},
                                 {"Propagation", ""}});
        propagation = "rprivate";
      }
      p.options = {s.bind_nonrecursive ? "bind" : "rbind", s.read_only ? "ro" : "rw", propagation};
      // ro is recursive unless asked otherwise (bind-recursive=writable).
      if (s.read_only && !s.bind_nonrecursive && s.bind_recursive != "writable") p.options.push_back("rro");
      plans.push_back(p);
    }

    SpecInput in;
    in.id = id;
    in.config = config;
    if (host_network && jstr(config, "Hostname").empty()) in.config["Hostname"] = hostname;
    in.host_config = host_config;
    in.image_config = image_config;
    in.rootfs = rootfs;
    in.mounts = plans;
    in.devices = device_plans(host_config.value("Devices", json::array()));
    in.hosts_path = dir + "/hosts";
    in.resolv_conf_path = dir + "/resolv.conf";
    in.hostname_path = dir + "/hostname";
    if (bridged_mode(net_mode)) {
      in.netns_path = impl_->networks.netns_path(id);
    } else if (net_mode.rfind("container:", 0) == 0) {
      in.netns_path = impl_->networks.netns_path(net_mode.substr(10));
    }
    if (host_config.value("Init", false)) in.init_path = self_dir() + "berth-init";
    json spec = build_oci_spec(in);
    write_file_atomic(dir + "/config.json", spec.dump(), 0600, true);
    fault_point("create.spec");
    {
      sql::Transaction tx(impl_->db);
      // inspect shows the Config with the image's defaults filled in, as docker stores it.
      json merged = {{"Config", merge_config(config, image_config)},
                     {"HostConfig", host_config},
                     {"NetworkingConfig", networking}};
      merged["Config"]["Image"] = image_ref;
      if (jstr(merged["Config"], "Hostname").empty()) merged["Config"]["Hostname"] = hostname;
      // The process's command line, for ps and inspect without reading config.json.
      // As docker, without the --init binary in front: Path is the container's own command.
      if (spec.contains("process") && spec["process"].contains("args")) {
        json args = spec["process"]["args"];
        if (!in.init_path.empty() && args.size() >= 2 && args[1] == "--") args.erase(args.begin(), args.begin() + 2);
        merged["Args"] = args;
      }
      sql::Stmt(impl_->db, "UPDATE containers SET state='created', mounts=?, config=? WHERE id=?")
          .bind(1, docker_mounts.dump())
          .bind(2, merged.dump())
          .bind(3, id)
          .run();
      impl_->add_event("container", "create", id, {{"name", name}, {"image", image_ref}});
      tx.commit();
    }
  } catch (...) {
    // Undo everything this create made; the row goes last so a crash in here is reconciled.
    storage::unmount_overlay(rootfs);
    remove_tree(dir);
    {
      sql::Transaction tx(impl_->db);
      sql::Stmt(impl_->db, "DELETE FROM container_volumes WHERE container_id=?").bind(1, id).run();
      sql::Stmt(impl_->db, "DELETE FROM containers WHERE id=?").bind(1, id).run();
      tx.commit();
    }
    impl_->images.remove_image_user(image->id, id);
    for (const auto& v : anonymous_created) {
      try {
        impl_->volumes.remove(v, true);
      } catch (...) {
      }
    }
    lock.remove_file();
    throw;
  }
  return id;
}

void Engine::start(const std::string& ref, const StartOptions& options) {
  Container c = get(ref);
  ContainerLock lock(root_, c.id, true);
  c = get(c.id);
  if (c.running()) return;
  std::string dir = container_dir(c.id);
  std::string sdir = state_dir(c.id);
  // After a reboot the mounts are gone: put them back.
  if (!is_mountpoint(dir + "/rootfs")) {
    auto image = impl_->images.get(c.image_id);
    std::vector<std::string> lowers;
    for (size_t i = image.layers.size(); i-- > 0;) lowers.push_back(impl_->images.layer_dir(image.layers[i].chain_id));
    storage::mount_overlay(lowers, dir + "/upper", dir + "/work", dir + "/rootfs", c.auto_remove());
  }
  {
    std::vector<std::string> names;
    sql::Stmt s(impl_->db, "SELECT volume FROM container_volumes WHERE container_id=?");
    s.bind(1, c.id);
    while (s.step()) names.push_back(s.text(0));
    for (const auto& n : names)
      if (auto v = impl_->volumes.find(n)) impl_->volumes.mount_source(*v);
  }
  mkdir_p(sdir, 0700);
  ::unlink((sdir + "/stop").c_str());
  ::unlink((dir + "/status.json").c_str());
  if (path_exists(runtime_root() + "/" + c.id))
    run_process({runtime_path(), "--root", runtime_root(), "delete", "--force", c.id});

  const json& config = c.config["Config"];
  const json& host_config = c.config["HostConfig"];
  const std::string net_mode = jstr(host_config, "NetworkMode");
  // The network namespace with its endpoints and ports, before the process exists; torn down
  // again by whatever ends the container (stop, rm, the shim's exit command, reconcile).
  bool networked = bridged_mode(net_mode.empty() ? "bridge" : net_mode);
  if (networked) {
    std::vector<Endpoint> eps = impl_->networks.setup(net_request(c.id, c.name, c.config));
    try {
      write_in_place(dir + "/hosts", hosts_file(config, host_config, eps));
      write_in_place(dir + "/resolv.conf", resolv_conf(host_config, false, responder_for(impl_->networks, eps)));
    } catch (...) {
      impl_->networks.teardown(c.id);
      throw;
    }
  } else if (net_mode.rfind("container:", 0) == 0) {
    std::string other = net_mode.substr(10);
    if (!path_exists(impl_->networks.netns_path(other)))
      throw StatusError("cannot join network namespace of container " + other + ": it is not running", 125);
  }
  struct TeardownOnError {
    Engine::Impl& impl;
    std::string id;
    bool armed;
    ~TeardownOnError() {
      if (!armed) return;
      try {
        impl.networks.teardown(id);
      } catch (...) {
      }
    }
  } teardown_on_error{*impl_, c.id, networked};
  std::vector<std::string> args = {shim_path(),
                                   "--id",
                                   c.id,
                                   "--bundle",
                                   dir,
                                   "--runtime",
                                   runtime_path(),
                                   "--builtin-runtime",
                                   "--runtime-root",
                                   runtime_root(),
                                   "--state-dir",
                                   sdir,
                                   "--status-file",
                                   dir + "/status.json",
                                   "--sync-fd",
                                   "3"};
  json log_config = host_config.value("LogConfig", json::object());
  std::string log_type = log_config.is_object() ? jstr(log_config, "Type") : "";
  if (log_type.empty() || log_type == "json-file" || log_type == "local") {
    logs::Limits limits;
    if (log_config.is_object() && log_config.contains("Config") && log_config["Config"].is_object()) {
      const json& lc = log_config["Config"];
      if (!jstr(lc, "max-size").empty()) limits.max_size = logs::parse_max_size(jstr(lc, "max-size"));
      if (!jstr(lc, "max-file").empty()) limits.max_files = logs::parse_max_file(jstr(lc, "max-file"));
    }
    args.insert(args.end(), {"--log-path", log_path(c.id), "--log-max-size", std::to_string(limits.max_size),
                             "--log-max-file", std::to_string(limits.max_files)});
  }
  if (config.value("Tty", false)) args.push_back("--tty");
  if (config.value("OpenStdin", false)) args.push_back("--stdin");
  if (config.value("StdinOnce", false)) args.push_back("--stdin-once");
  if (options.wait_attach) args.push_back("--wait-attach");
  std::string restart = restart_policy_arg(host_config);
  if (restart != "no") args.insert(args.end(), {"--restart", restart});
  if (c.auto_remove())
    args.insert(args.end(),
                {"--exit-command", berth_path(), "--exit-arg", "--root", "--exit-arg", root_, "--exit-arg", "rm",
                 "--exit-arg", "-v", "--exit-arg", c.id, "--removal-claim", removal_claim_path(root_, c.id)});
  else if (networked)
    args.insert(args.end(), {"--exit-command", berth_path(), "--exit-arg", "--root", "--exit-arg", root_, "--exit-arg",
                             "network", "--exit-arg", "cleanup", "--exit-arg", c.id});
  // Health check: the shim runs it with `RUNTIME exec --process` (the container's own process, as exec).
  if (std::vector<std::string> check = health_check_args(config); !check.empty()) {
    json process = json::parse(read_file(dir + "/config.json")).value("process", json::object());
    process["args"] = check;
    process["terminal"] = false;
    process.erase("consoleSize");
    std::string process_path = sdir + "/health-process.json";
    write_file_atomic(process_path, process.dump(), 0600);
    const json& hc = config["Healthcheck"];
    auto positive = [&](const char* key, int64_t fallback) {
      int64_t v = jint(hc, key);
      return std::to_string(v > 0 ? v : fallback);
    };
    constexpr int64_t kSecond = 1000000000;  // docker's defaults: 30s, 30s, 0, 5s, 3 retries
    args.insert(args.end(), {"--health-process", process_path, "--health-interval", positive("Interval", 30 * kSecond),
                             "--health-timeout", positive("Timeout", 30 * kSecond), "--health-start-period",
                             positive("StartPeriod", 0), "--health-start-interval",
                             positive("StartInterval", 5 * kSecond), "--health-retries", positive("Retries", 3)});
  }

  int sync[2];
  if (::pipe2(sync, O_CLOEXEC) != 0) throw_errno("pipe2");
  UniqueFd sync_r(sync[0]), sync_w(sync[1]);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) throw_errno("fork berth-shim");
  if (pid == 0) {
    restore_open_file_limit();
    ::dup2(sync_w.get(), 3);
    int null = ::open("/dev/null", O_RDWR);
    ::dup2(null, 0);
    ::dup2(null, 1);
    ::dup2(null, 2);
    ::syscall(SYS_close_range, 4, ~0U, 0);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  sync_w.reset();
  std::string line;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(sync_r.get(), buf, sizeof buf);
    if (n > 0) {
      line.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    break;
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  json reply = json::parse(line.substr(0, line.find('\n')), nullptr, false);
  if (reply.is_discarded() || !reply.is_object())
    throw StatusError("berth-shim for " + c.id + " exited without reporting (status " + std::to_string(status) + ")",
                      125);
  if (!reply.value("ok", false)) {
    std::string error = jstr(reply, "error");
    int code = static_cast<int>(jint(reply, "exit_code", 125));
    sql::Stmt(impl_->db, "UPDATE containers SET exit_code=?, error=? WHERE id=?")
        .bind(1, static_cast<int64_t>(code))
        .bind(2, error)
        .bind(3, c.id)
        .run();
    throw StatusError(error.empty() ? "failed to start container " + c.id : error, code);
  }
  if (options.on_created) options.on_created();
  {
    sql::Transaction tx(impl_->db);
    sql::Stmt(impl_->db,
              "UPDATE containers SET state='running', pid=?, started_at=?, finished_at='', exit_code=0, error='', "
              "manually_stopped=0 "
              "WHERE id=?")
        .bind(1, jint(reply, "pid"))
        .bind(2, logs::format_time(now_ns()))
        .bind(3, c.id)
        .run();
    impl_->add_event("container", "start", c.id, {{"name", c.name}, {"image", c.image_name}});
    tx.commit();
  }
  teardown_on_error.armed = false;
}

void Engine::stop(const std::string& ref, std::optional<int> timeout) {
  Container c = get(ref);
  ContainerLock lock(root_, c.id, true);
  c = get(c.id);
  if (!c.running()) return;
  const json& config = c.config["Config"];
  int sig = SIGTERM;
  std::string stop_signal = jstr(config, "StopSignal");
  if (stop_signal.empty()) {
    auto image = impl_->images.find(c.image_id);
    if (image) {
      json ic = json::parse(image->config, nullptr, false);
      if (!ic.is_discarded() && ic.contains("config") && ic["config"].is_object())
        stop_signal = jstr(ic["config"], "StopSignal");
    }
  }
  if (!stop_signal.empty()) sig = parse_signal_name(stop_signal);
  int wait_s = timeout ? *timeout : static_cast<int>(jint(config, "StopTimeout", 10));
  write_file(state_dir(c.id) + "/stop", "", O_CREAT | O_WRONLY | O_TRUNC);
  sql::Stmt(impl_->db, "UPDATE containers SET manually_stopped=1 WHERE id=?").bind(1, c.id).run();
  if (c.state == "paused") {
    signal_container(*this, c, sig);
    run_process({runtime_path(), "--root", runtime_root(), "resume", c.id});
  } else {
    signal_container(*this, c, sig);
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(wait_s < 0 ? 3600 * 24 : wait_s);
  if (!wait_shim_gone(*this, c.id, deadline)) {
    c = get(c.id);
    signal_container(*this, c, SIGKILL);
    wait_shim_gone(*this, c.id, std::chrono::steady_clock::now() + std::chrono::seconds(30));
  }
  c = get(c.id);
  if (!c.running()) impl_->networks.teardown(c.id);
  impl_->add_event("container", "stop", c.id, {{"name", c.name}, {"image", c.image_name}});
}

void Engine::kill(const std::string& ref, int sig) {
  Container c = get(ref);
  if (!c.running() || c.state == "restarting")
    throw StatusError("cannot kill container: " + ref + ": container " + c.id + " is not running", 1);
  write_file(state_dir(c.id) + "/stop", "", O_CREAT | O_WRONLY | O_TRUNC);
  sql::Stmt(impl_->db, "UPDATE containers SET manually_stopped=1 WHERE id=?").bind(1, c.id).run();
  if (!signal_container(*this, c, sig))
    throw StatusError("cannot kill container: " + ref + ": container " + c.id + " is not running", 1);
  if (sig == SIGKILL) wait_exited(*this, c.id, std::chrono::steady_clock::now() + std::chrono::seconds(30));
  impl_->add_event("container", "kill", c.id,
                   {{"name", c.name}, {"image", c.image_name}, {"signal", std::to_string(sig)}});
}

void Engine::remove(const std::string& ref, bool force, bool volumes) {
  const std::string id = lookup(impl_->db, ref).id;
  ContainerLock lock(root_, id, true);
  // Recording an exit the row does not know yet and marking the removal: one commit.
  std::optional<sql::Transaction> tx(std::in_place, impl_->db);
  Container c = get(id);
  if (c.running()) {
    if (!force)
      throw StatusError("cannot remove container \"/" + c.name +
                            "\": container is running: stop the container before removing or force remove",
                        1);
    tx.reset();  // not held while the container is killed
    write_file(state_dir(c.id) + "/stop", "", O_CREAT | O_WRONLY | O_TRUNC);
    if (c.state == "paused") run_process({runtime_path(), "--root", runtime_root(), "resume", c.id});
    signal_container(*this, c, SIGKILL);
    wait_shim_gone(*this, c.id, std::chrono::steady_clock::now() + std::chrono::seconds(30));
    tx.emplace(impl_->db);
    c = get(c.id);
  }
  sql::Stmt(impl_->db, "UPDATE containers SET state=? WHERE id=?")
      .bind(1, volumes ? "removing-volumes" : "removing")
      .bind(2, c.id)
      .run();
  tx->commit();
  fault_point("rm.mark");
  std::vector<std::pair<std::string, bool>> vols;
  {
    sql::Stmt s(impl_->db, "SELECT volume,anonymous FROM container_volumes WHERE container_id=?");
    s.bind(1, c.id);
    while (s.step()) vols.emplace_back(s.text(0), s.integer(1) != 0);
  }
  if (path_exists(runtime_root() + "/" + c.id))
    run_process({runtime_path(), "--root", runtime_root(), "delete", "--force", c.id});
  impl_->networks.teardown(c.id);
  storage::unmount_overlay(container_dir(c.id) + "/rootfs");
  fault_point("rm.unmount");
  remove_tree(container_dir(c.id));
  remove_tree(state_dir(c.id));
  fault_point("rm.dir");
  {
    sql::Transaction tx(impl_->db);
    sql::Stmt(impl_->db, "DELETE FROM container_volumes WHERE container_id=?").bind(1, c.id).run();
    sql::Stmt(impl_->db, "DELETE FROM containers WHERE id=?").bind(1, c.id).run();
    // Same database, same transaction: the image is never left pinned by a container that is gone.
    impl_->images.remove_image_user(c.image_id, c.id);
    impl_->add_event("container", "destroy", c.id, {{"name", c.name}, {"image", c.image_name}});
    tx.commit();
  }
  fault_point("rm.row");
  if (volumes)
    for (const auto& [name, anonymous] : vols)
      if (anonymous) {
        try {
          impl_->volumes.remove(name, true);
        } catch (const Error&) {
          // Still used by another container (--volumes-from): it stays, as in docker.
        }
      }
  // Last: a shim's exit command waiting on the claim skips its `rm` only once all of it is done.
  ::unlink(removal_claim_path(root_, c.id).c_str());
  lock.remove_file();
}

UniqueFd Engine::claim_removal(const std::string& id) {
  mkdir_p(root_ + "/locks", 0700);
  std::string path = removal_claim_path(root_, id);
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd || ::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) return UniqueFd();
  return fd;
}

UniqueFd Engine::shim_pidfd(const std::string& id) {
  json status = read_json_file(container_dir(id) + "/status.json");
  int shim_pid = status.is_object() ? static_cast<int>(jint(status, "shim_pid")) : 0;
  if (shim_pid <= 0) return UniqueFd();
  UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, shim_pid, 0)));
  // Taken while shim.lock is held, the pid is the shim's own (a live process's pid cannot be
  // reused); checked after, a recycled pid is not mistaken for it.
  if (!pidfd || !shim_alive(state_dir(id))) return UniqueFd();
  return pidfd;
}

void Engine::remove_exited(const std::string& id, bool volumes, std::chrono::milliseconds timeout) {
  wait_shim_gone(*this, id, std::chrono::steady_clock::now() + timeout);
  try {
    remove(id, true, volumes);
  } catch (const NotFound&) {
    // The exit command was first.
  }
}

int Engine::wait(const std::string& ref) {
  Container c = get(ref);
  auto delay = std::chrono::milliseconds(1);
  while (c.running()) {
    std::this_thread::sleep_for(delay);
    if (delay < std::chrono::milliseconds(50)) delay *= 2;
    try {
      c = get(c.id);
    } catch (const NotFound&) {
      return c.exit_code;  // removed meanwhile (--rm)
    }
  }
  return c.exit_code;
}

void Engine::rename(const std::string& ref, const std::string& new_name_in) {
  Container c = get(ref);
  validate_container_name(new_name_in);
  std::string new_name = new_name_in[0] == '/' ? new_name_in.substr(1) : new_name_in;
  if (new_name == c.name) throw StatusError("Renaming a container with the same name as its current name", 1);
  sql::Transaction tx(impl_->db);
  sql::Stmt s(impl_->db, "SELECT id FROM containers WHERE name=?");
  s.bind(1, new_name);
  if (s.step())
    throw StatusError("Error when allocating new name: Conflict. The container name \"/" + new_name +
                          "\" is already in use by container \"" + s.text(0) +
                          "\". You have to remove (or rename) that container to be able to reuse that name.",
                      1);
  sql::Stmt(impl_->db, "UPDATE containers SET name=? WHERE id=?").bind(1, new_name).bind(2, c.id).run();
  impl_->add_event("container", "rename", c.id, {{"name", new_name}, {"oldName", "/" + c.name}});
  tx.commit();
}

std::vector<std::string> Engine::boot() {
  std::vector<std::string> started;
  std::vector<Container> all = list();  // folds dead shims: after a reboot every one is dead
  for (auto it = all.rbegin(); it != all.rend(); ++it) {
    const Container& c = *it;
    if (c.running()) continue;
    std::string policy = restart_policy_arg(c.config["HostConfig"]);
    bool manually_stopped = false;
    {
      sql::Stmt s(impl_->db, "SELECT manually_stopped FROM containers WHERE id=?");
      s.bind(1, c.id);
      if (s.step()) manually_stopped = s.integer(0) != 0;
    }
    // always: started at boot even after a manual stop (docker's daemon-restart rule);
    // unless-stopped: not after one.
    if (policy == "always" || (policy == "unless-stopped" && !manually_stopped)) {
      if (c.state == "created") continue;  // never started: docker doesn't start it either
      start(c.id);
      started.push_back(c.id);
    }
  }
  return started;
}

void Engine::pause(const std::string& ref) {
  Container c = get(ref);
  if (c.state != "running") throw StatusError("Container " + c.id + " is not running", 1);
  auto r = run_process({runtime_path(), "--root", runtime_root(), "pause", c.id});
  if (r.status != 0) throw StatusError("cannot pause container " + c.id + ": " + std::string(trim(r.err)), 1);
  sql::Stmt(impl_->db, "UPDATE containers SET state='paused' WHERE id=?").bind(1, c.id).run();
  impl_->add_event("container", "pause", c.id, {{"name", c.name}, {"image", c.image_name}});
}

void Engine::unpause(const std::string& ref) {
  Container c = get(ref);
  if (c.state != "paused") throw StatusError("Container " + c.id + " is not paused", 1);
  auto r = run_process({runtime_path(), "--root", runtime_root(), "resume", c.id});
  if (r.status != 0) throw StatusError("cannot unpause container " + c.id + ": " + std::string(trim(r.err)), 1);
  sql::Stmt(impl_->db, "UPDATE containers SET state='running' WHERE id=?").bind(1, c.id).run();
  impl_->add_event("container", "unpause", c.id, {{"name", c.name}, {"image", c.image_name}});
}

namespace {

// A member of docker's update body: absent or null is "not changed"; a non-integer is refused.
std::optional<int64_t> update_number(const json& body, const char* key) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return std::nullopt;
  if (!it->is_number_integer()) throw Error(std::string("invalid value for ") + key + ": " + it->dump());
  return it->get<int64_t>();
}

std::string update_text(const json& body, const char* key) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return "";
  if (!it->is_string()) throw Error(std::string("invalid value for ") + key + ": " + it->dump());
  return it->get<std::string>();
}

// docker's update rules (daemon verifyPlatformContainerResources and container UpdateContainer),
// in docker's words: returns the new HostConfig.
json updated_host_config(const json& host_config, const json& body, long cpus) {
  json hc = host_config;
  const int64_t memory = update_number(body, "Memory").value_or(0);
  const int64_t swap = update_number(body, "MemorySwap").value_or(0);
  const int64_t reservation = update_number(body, "MemoryReservation").value_or(0);
  const int64_t shares = update_number(body, "CpuShares").value_or(0);
  const int64_t nano = update_number(body, "NanoCpus").value_or(0);
  const int64_t period = update_number(body, "CpuPeriod").value_or(0);
  const int64_t quota = update_number(body, "CpuQuota").value_or(0);
  const int64_t blkio = update_number(body, "BlkioWeight").value_or(0);
  const std::optional<int64_t> pids = update_number(body, "PidsLimit");
  const std::string cpuset_cpus = update_text(body, "CpusetCpus"), cpuset_mems = update_text(body, "CpusetMems");

  if (memory < 0 && memory != -1) throw Error("invalid Memory: " + std::to_string(memory));
  if (memory > 0 && memory < 6 * 1024 * 1024) throw Error("Minimum memory limit allowed is 6MB");
  if (memory > 0 && swap > 0 && swap < memory)
    throw Error("Minimum memoryswap limit should be larger than memory limit, see usage");
  if (nano < 0 || (nano > 0 && (nano < 10000000 || nano > cpus * 1000000000LL)))
    throw Error("Range of CPUs is from 0.01 to " + std::to_string(cpus) + ".00, as there are only " +
                std::to_string(cpus) + " CPUs available");
  if (nano > 0 && (period > 0 || quota > 0))
    throw Error("Conflicting options: Nano CPUs and CPU Period cannot both be set");
  if (period != 0 && (period < 1000 || period > 1000000))
    throw Error("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1 second (i.e. 1000000)");
  if (quota > 0 && quota < 1000) throw Error("CPU cfs quota can not be less than 1ms (i.e. 1000)");
  if (blkio != 0 && (blkio < 10 || blkio > 1000)) throw Error("Range of blkio weight is from 10 to 1000");
  if (shares < 0) throw Error("invalid CpuShares: " + std::to_string(shares));

  auto current = [&](const char* key) { return jint(hc, key); };
  if (nano > 0 && current("CpuPeriod") > 0)
    throw Error("Conflicting options: Nano CPUs cannot be updated as CPU Period has already been set");
  if (nano > 0 && current("CpuQuota") > 0)
    throw Error("Conflicting options: Nano CPUs cannot be updated as CPU Quota has already been set");
  if (period > 0 && current("NanoCpus") > 0)
    throw Error("Conflicting options: CPU Period cannot be updated as NanoCPUs has already been set");
  if (quota > 0 && current("NanoCpus") > 0)
    throw Error("Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set");
  if (memory != 0) {
    if (memory > memory_swap_limit(hc) && swap == 0)
      throw Error(
          "Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time");
    hc["Memory"] = memory;
  }
  if (blkio != 0) hc["BlkioWeight"] = blkio;
  if (shares != 0) hc["CpuShares"] = shares;
  if (nano != 0) hc["NanoCpus"] = nano;
  if (period != 0) hc["CpuPeriod"] = period;
  if (quota != 0) hc["CpuQuota"] = quota;
  if (!cpuset_cpus.empty()) hc["CpusetCpus"] = cpuset_cpus;
  if (!cpuset_mems.empty()) hc["CpusetMems"] = cpuset_mems;
  if (swap != 0) hc["MemorySwap"] = swap;
  if (reservation != 0) hc["MemoryReservation"] = reservation;
  if (pids) hc["PidsLimit"] = *pids;

  auto rp = body.find("RestartPolicy");
  if (rp != body.end() && rp->is_object() && !jstr(*rp, "Name").empty()) {
    std::string name = jstr(*rp, "Name");
    if (name != "no" && name != "always" && name != "unless-stopped" && name != "on-failure")
      throw Error("invalid restart policy '" + name + "'");
    int64_t retries = jint(*rp, "MaximumRetryCount");
    if (retries < 0) throw Error("invalid restart policy: maximum retry count cannot be negative");
    if (retries > 0 && name != "on-failure")
      throw Error("invalid restart policy: maximum retry count can only be used with 'on-failure'");
    if (hc.value("AutoRemove", false) && name != "no")
      throw Error("Restart policy cannot be updated because AutoRemove is enabled for the container");
    hc["RestartPolicy"] = {{"Name", name}, {"MaximumRetryCount", retries}};
  }
  return hc;
}

// config.json with the resource limits of host_config (devices kept).
json spec_with_limits(json spec, const json& host_config) {
  json& resources = spec["linux"]["resources"];
  if (!resources.is_object()) resources = json::object();
  for (const char* key : {"memory", "cpu", "pids", "blockIO"}) resources.erase(key);
  resources.update(resource_limits(host_config));
  return spec;
}

}  // namespace

std::vector<std::string> Engine::update(const std::string& ref, const json& body) {
  if (!body.is_object()) throw Error("invalid update body: a JSON object is expected");
  Container c = get(ref);
  ContainerLock lock(root_, c.id, true);
  c = get(c.id);
  if (c.state == "removing" || c.state == "removing-volumes" || c.state == "dead")
    throw StatusError("Container is marked for removal and cannot be \"updated\".", 1);
  const json old_host_config = c.config.value("HostConfig", json::object());
  long cpus = ::sysconf(_SC_NPROCESSORS_ONLN);
  json host_config = updated_host_config(old_host_config, body, cpus > 0 ? cpus : 1);

  const std::string dir = container_dir(c.id);
  const std::string spec_path = dir + "/config.json";
  const std::string old_spec = read_file(spec_path);
  json spec = spec_with_limits(json::parse(old_spec), host_config);
  json config = c.config;
  config["HostConfig"] = host_config;
  auto store = [&](const std::string& spec_text, const json& cfg) {
    write_file_atomic(spec_path, spec_text, 0600, true);
    sql::Stmt(impl_->db, "UPDATE containers SET config=? WHERE id=?").bind(1, cfg.dump()).bind(2, c.id).run();
  };
  // Stored first, then applied: a crash in between leaves the new limits for the next start.
  store(spec.dump(), config);
  std::string policy = restart_policy_arg(host_config);
  try {
    if (c.running()) {
      std::string resources_path = dir + "/update-resources.json";
      write_file_atomic(resources_path, spec["linux"]["resources"].dump(), 0600);
      auto r = run_process({runtime_path(), "--root", runtime_root(), "update", "--resources", resources_path, c.id});
      ::unlink(resources_path.c_str());
      if (r.status != 0) throw Error("Cannot update container " + c.id + ": " + std::string(trim(r.err)));
    }
    // The shim reads the policy again each time the container exits (see shim/main.cpp).
    if (restart_policy_arg(old_host_config) != policy) write_file_atomic(dir + "/restart-policy", policy, 0600, true);
  } catch (...) {
    store(old_spec, c.config);
    throw;
  }
  impl_->add_event("container", "update", c.id, {{"name", c.name}, {"image", c.image_name}});
  return {};
}

}  // namespace berth::engine
