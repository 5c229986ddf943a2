#include "runtime/spec.hpp"

#include <limits>

#include "util/error.hpp"

namespace berth::runtime {
namespace {

using nlohmann::json;

// A cursor into the document that knows its own path, so every error names the field.
class Field {
 public:
  Field(const json& value, std::string path) : v_(value), path_(std::move(path)) {}

  const json& value() const { return v_; }
  const std::string& path() const { return path_; }

  [[noreturn]] void fail(const std::string& why) const { throw Error("config.json: " + path_ + ": " + why); }

  bool has(const char* key) const { return v_.contains(key) && !v_.at(key).is_null(); }
  Field at(const char* key) const { return Field(v_.at(key), join(key)); }
  Field item(size_t i) const { return Field(v_.at(i), path_ + "[" + std::to_string(i) + "]"); }

  const json& object() const {
    if (!v_.is_object()) fail("must be an object");
    return v_;
  }
  const json& array() const {
    if (!v_.is_array()) fail("must be an array");
    return v_;
  }
  std::string str() const {
    if (!v_.is_string()) fail("must be a string");
    return v_.get<std::string>();
  }
  bool boolean() const {
    if (!v_.is_boolean()) fail("must be a boolean");
    return v_.get<bool>();
  }
  int64_t i64() const {
    if (!v_.is_number_integer()) fail("must be an integer");
    return v_.get<int64_t>();
  }
  uint64_t u64() const {
    if (v_.is_number_unsigned()) return v_.get<uint64_t>();
    if (!v_.is_number_integer() || v_.get<int64_t>() < 0) fail("must be a non-negative integer");
    return static_cast<uint64_t>(v_.get<int64_t>());
  }
  uint32_t u32() const {
    uint64_t n = u64();
    if (n > std::numeric_limits<uint32_t>::max()) fail("must fit in 32 bits");
    return static_cast<uint32_t>(n);
  }
  uint16_t u16() const {
    uint64_t n = u64();
    if (n > std::numeric_limits<uint16_t>::max()) fail("must fit in 16 bits");
    return static_cast<uint16_t>(n);
  }
  int i32() const {
    int64_t n = i64();
    if (n < std::numeric_limits<int>::min() || n > std::numeric_limits<int>::max()) fail("must fit in 32 bits");
    return static_cast<int>(n);
  }
  std::vector<std::string> strings() const {
    std::vector<std::string> out;
    array();
    for (size_t i = 0; i < v_.size(); ++i) out.push_back(item(i).str());
    return out;
  }
  std::map<std::string, std::string> string_map() const {
    std::map<std::string, std::string> out;
    for (auto& [k, val] : object().items()) out[k] = Field(val, join(k.c_str())).str();
    return out;
  }
  Field required(const char* key) const {
    object();
    if (!v_.contains(key)) fail(std::string("missing required field \"") + key + "\"");
    return at(key);
  }

 private:
  std::string join(const char* key) const { return path_.empty() ? std::string(key) : path_ + "." + key; }
  const json& v_;
  std::string path_;
};

template <typename T, typename F>
std::vector<T> each(const Field& f, F&& parse) {
  std::vector<T> out;
  f.array();
  for (size_t i = 0; i < f.value().size(); ++i) out.push_back(parse(f.item(i)));
  return out;
}

void check_enum(const Field& f, const std::string& value, std::initializer_list<const char*> allowed) {
  for (const char* a : allowed)
    if (value == a) return;
  f.fail("invalid value \"" + value + "\"");
}

// ^[1-9][0-9]*[KMG]B$, the schema's pattern.
bool valid_page_size(const std::string& s) {
  if (s.size() < 3 || s[0] < '1' || s[0] > '9' || s.back() != 'B') return false;
  char unit = s[s.size() - 2];
  if (unit != 'K' && unit != 'M' && unit != 'G') return false;
  for (size_t i = 1; i + 2 < s.size(); ++i)
    if (s[i] < '0' || s[i] > '9') return false;
  return true;
}

Mount parse_mount(const Field& f) {
  f.object();
  Mount m;
  m.destination = f.required("destination").str();
  if (f.has("type")) m.type = f.at("type").str();
  if (f.has("source")) m.source = f.at("source").str();
  if (f.has("options")) m.options = f.at("options").strings();
  if (f.has("uidMappings")) f.at("uidMappings").array();
  if (f.has("gidMappings")) f.at("gidMappings").array();
  return m;
}

Hook parse_hook(const Field& f) {
  f.object();
  Hook h;
  h.path = f.required("path").str();
  if (h.path.empty() || h.path[0] != '/') f.at("path").fail("must be an absolute path");
  if (f.has("args")) h.args = f.at("args").strings();
  if (f.has("env")) h.env = f.at("env").strings();
  if (f.has("timeout")) {
    h.timeout = f.at("timeout").i32();
    if (*h.timeout < 1) f.at("timeout").fail("must be at least 1");
  }
  return h;
}

Hooks parse_hooks(const Field& f) {
  f.object();
  Hooks h;
  auto list = [&](const char* key, std::vector<Hook>& out) {
    if (f.has(key)) out = each<Hook>(f.at(key), parse_hook);
  };
  list("prestart", h.prestart);
  list("createRuntime", h.create_runtime);
  list("createContainer", h.create_container);
  list("startContainer", h.start_container);
  list("poststart", h.poststart);
  list("poststop", h.poststop);
  return h;
}

IdMapping parse_idmap(const Field& f) {
  f.object();
  IdMapping m;
  m.container_id = f.required("containerID").u32();
  m.host_id = f.required("hostID").u32();
  m.size = f.required("size").u32();
  return m;
}

Device parse_device(const Field& f) {
  f.object();
  Device d;
  d.path = f.required("path").str();
  d.type = f.required("type").str();
  check_enum(f.at("type"), d.type, {"c", "b", "u", "p"});
  if (d.type != "p") {
    d.major = f.required("major").i64();
    d.minor = f.required("minor").i64();
  } else {
    if (f.has("major")) d.major = f.at("major").i64();
    if (f.has("minor")) d.minor = f.at("minor").i64();
  }
  if (f.has("fileMode")) d.file_mode = f.at("fileMode").u32();
  if (f.has("uid")) d.uid = f.at("uid").u32();
  if (f.has("gid")) d.gid = f.at("gid").u32();
  return d;
}

DeviceRule parse_device_rule(const Field& f) {
  f.object();
  DeviceRule r;
  r.allow = f.required("allow").boolean();
  if (f.has("type")) {
    r.type = f.at("type").str();
    check_enum(f.at("type"), r.type, {"a", "c", "b"});
  }
  if (f.has("major")) r.major = f.at("major").i64();
  if (f.has("minor")) r.minor = f.at("minor").i64();
  if (f.has("access")) {
    r.access = f.at("access").str();
    for (char c : r.access)
      if (c != 'r' && c != 'w' && c != 'm') f.at("access").fail("invalid value \"" + r.access + "\"");
  }
  return r;
}

template <typename T>
std::optional<T> opt(const Field& f, const char* key, T (Field::*get)() const) {
  if (!f.has(key)) return std::nullopt;
  return (f.at(key).*get)();
}

std::vector<ThrottleDevice> parse_throttle(const Field& f) {
  return each<ThrottleDevice>(f, [](const Field& d) {
    d.object();
    ThrottleDevice t;
    t.major = d.required("major").i64();
    t.minor = d.required("minor").i64();
    t.rate = d.required("rate").u64();
    return t;
  });
}

SeccompSyscall parse_syscall(const Field& f) {
  f.object();
  SeccompSyscall s;
  s.names = f.required("names").strings();
  if (s.names.empty()) f.at("names").fail("must not be empty");
  s.action = f.required("action").str();
  check_enum(f.at("action"), s.action,
             {"SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP", "SCMP_ACT_ERRNO",
              "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY"});
  if (f.has("errnoRet")) s.errno_ret = f.at("errnoRet").u32();
  if (f.has("args")) {
    s.args = each<SeccompArg>(f.at("args"), [](const Field& a) {
      a.object();
      SeccompArg arg;
      arg.index = a.required("index").u32();
      arg.value = a.required("value").u64();
      if (a.has("valueTwo")) arg.value_two = a.at("valueTwo").u64();
      arg.op = a.required("op").str();
      check_enum(a.at("op"), arg.op,
                 {"SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT",
                  "SCMP_CMP_MASKED_EQ"});
      return arg;
    });
  }
  return s;
}

Seccomp parse_seccomp(const Field& f) {
  f.object();
  Seccomp s;
  s.default_action = f.required("defaultAction").str();
  check_enum(f.at("defaultAction"), s.default_action,
             {"SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP", "SCMP_ACT_ERRNO",
              "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY"});
  if (f.has("defaultErrnoRet")) s.default_errno_ret = f.at("defaultErrnoRet").u32();
  if (f.has("architectures")) s.architectures = f.at("architectures").strings();
  if (f.has("flags")) {
    s.flags = f.at("flags").strings();
    for (size_t i = 0; i < s.flags.size(); ++i)
      check_enum(f.at("flags").item(i), s.flags[i],
                 {"SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                  "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"});
  }
  if (f.has("listenerPath")) s.listener_path = f.at("listenerPath").str();
  if (f.has("syscalls")) s.syscalls = each<SeccompSyscall>(f.at("syscalls"), parse_syscall);
  return s;
}

Linux parse_linux(const Field& f) {
  f.object();
  Linux l;
  if (f.has("namespaces")) {
    l.namespaces = each<Namespace>(f.at("namespaces"), [](const Field& n) {
      n.object();
      Namespace ns;
      ns.type = n.required("type").str();
      check_enum(n.at("type"), ns.type, {"mount", "pid", "network", "uts", "ipc", "user", "cgroup", "time"});
      if (n.has("path")) ns.path = n.at("path").str();
      return ns;
    });
    for (size_t i = 0; i < l.namespaces.size(); ++i)
      for (size_t j = 0; j < i; ++j)
        if (l.namespaces[i].type == l.namespaces[j].type)
          f.at("namespaces").item(i).fail("duplicate namespace type \"" + l.namespaces[i].type + "\"");
  }
  if (f.has("uidMappings")) l.uid_mappings = each<IdMapping>(f.at("uidMappings"), parse_idmap);
  if (f.has("gidMappings")) l.gid_mappings = each<IdMapping>(f.at("gidMappings"), parse_idmap);
  if (f.has("devices")) l.devices = each<Device>(f.at("devices"), parse_device);
  if (f.has("resources")) l.resources = parse_resources(f.at("resources").value(), f.at("resources").path());
  if (f.has("cgroupsPath")) l.cgroups_path = f.at("cgroupsPath").str();
  if (f.has("rootfsPropagation")) {
    l.rootfs_propagation = f.at("rootfsPropagation").str();
    check_enum(f.at("rootfsPropagation"), l.rootfs_propagation,
               {"private", "shared", "slave", "unbindable", "rprivate", "rshared", "rslave", "runbindable"});
  }
  if (f.has("seccomp")) l.seccomp = parse_seccomp(f.at("seccomp"));
  if (f.has("sysctl")) l.sysctl = f.at("sysctl").string_map();
  if (f.has("maskedPaths")) l.masked_paths = f.at("maskedPaths").strings();
  if (f.has("readonlyPaths")) l.readonly_paths = f.at("readonlyPaths").strings();
  if (f.has("mountLabel")) l.mount_label = f.at("mountLabel").str();
  if (f.has("timeOffsets")) {
    Field t = f.at("timeOffsets");
    for (auto& [clock, val] : t.object().items()) {
      Field c(val, t.path() + "." + clock);
      check_enum(c, clock, {"monotonic", "boottime"});
      c.object();
      if (c.has("secs")) l.time_offsets_secs[clock] = c.at("secs").i64();
      if (c.has("nanosecs")) l.time_offsets_nanosecs[clock] = static_cast<int64_t>(c.at("nanosecs").u32());
    }
  }
  if (f.has("netDevices")) {
    Field nd = f.at("netDevices");
    for (auto& [name, val] : nd.object().items()) {
      Field d(val, nd.path() + "." + name);
      d.object();
      if (d.has("name")) d.at("name").str();
    }
  }
  if (f.has("intelRdt")) {
    Field r = f.at("intelRdt");
    r.object();
    if (r.has("closID")) l.intel_rdt_clos_id = r.at("closID").str();
  }
  if (f.has("personality")) {
    Field p = f.at("personality");
    p.object();
    check_enum(p.required("domain"), p.at("domain").str(), {"LINUX", "LINUX32"});
  }
  return l;
}

}  // namespace

Resources parse_resources(const nlohmann::json& doc, const std::string& where) {
  Field f(doc, where);
  f.object();
  Resources r;
  if (f.has("devices")) r.devices = each<DeviceRule>(f.at("devices"), parse_device_rule);
  if (f.has("memory")) {
    Field m = f.at("memory");
    m.object();
    MemoryResources mem;
    mem.limit = opt(m, "limit", &Field::i64);
    mem.reservation = opt(m, "reservation", &Field::i64);
    mem.swap = opt(m, "swap", &Field::i64);
    mem.kernel = opt(m, "kernel", &Field::i64);
    mem.kernel_tcp = opt(m, "kernelTCP", &Field::i64);
    mem.swappiness = opt(m, "swappiness", &Field::u64);
    mem.disable_oom_killer = opt(m, "disableOOMKiller", &Field::boolean);
    if (m.has("useHierarchy")) m.at("useHierarchy").boolean();
    if (m.has("checkBeforeUpdate")) m.at("checkBeforeUpdate").boolean();
    r.memory = mem;
  }
  if (f.has("cpu")) {
    Field c = f.at("cpu");
    c.object();
    CpuResources cpu;
    cpu.shares = opt(c, "shares", &Field::u64);
    cpu.quota = opt(c, "quota", &Field::i64);
    cpu.period = opt(c, "period", &Field::u64);
    cpu.realtime_runtime = opt(c, "realtimeRuntime", &Field::i64);
    cpu.realtime_period = opt(c, "realtimePeriod", &Field::u64);
    if (c.has("cpus")) cpu.cpus = c.at("cpus").str();
    if (c.has("mems")) cpu.mems = c.at("mems").str();
    cpu.idle = opt(c, "idle", &Field::i64);
    if (c.has("burst")) c.at("burst").u64();
    r.cpu = cpu;
  }
  if (f.has("pids")) {
    Field p = f.at("pids");
    p.object();
    if (p.has("limit")) r.pids_limit = p.at("limit").i64();
  }
  if (f.has("blockIO")) {
    Field b = f.at("blockIO");
    b.object();
    BlockIoResources io;
    io.weight = opt(b, "weight", &Field::u16);
    io.leaf_weight = opt(b, "leafWeight", &Field::u16);
    if (b.has("weightDevice"))
      io.weight_device = each<WeightDevice>(b.at("weightDevice"), [](const Field& d) {
        d.object();
        WeightDevice w;
        w.major = d.required("major").i64();
        w.minor = d.required("minor").i64();
        w.weight = opt(d, "weight", &Field::u16);
        w.leaf_weight = opt(d, "leafWeight", &Field::u16);
        return w;
      });
    if (b.has("throttleReadBpsDevice")) io.throttle_read_bps = parse_throttle(b.at("throttleReadBpsDevice"));
    if (b.has("throttleWriteBpsDevice")) io.throttle_write_bps = parse_throttle(b.at("throttleWriteBpsDevice"));
    if (b.has("throttleReadIOPSDevice")) io.throttle_read_iops = parse_throttle(b.at("throttleReadIOPSDevice"));
    if (b.has("throttleWriteIOPSDevice")) io.throttle_write_iops = parse_throttle(b.at("throttleWriteIOPSDevice"));
    r.block_io = io;
  }
  if (f.has("hugepageLimits")) {
    r.hugepage_limits = each<HugepageLimit>(f.at("hugepageLimits"), [](const Field& h) {
      h.object();
      HugepageLimit l;
      l.page_size = h.required("pageSize").str();
      if (!valid_page_size(l.page_size))
        h.at("pageSize").fail("invalid page size \"" + l.page_size + "\" (want e.g. 2MB)");
      l.limit = h.required("limit").u64();
      return l;
    });
  }
  if (f.has("rdma")) {
    Field rd = f.at("rdma");
    for (auto& [name, val] : rd.object().items()) {
      Field d(val, rd.path() + "." + name);
      d.object();
      if (d.has("hcaHandles")) d.at("hcaHandles").u32();
      if (d.has("hcaObjects")) d.at("hcaObjects").u32();
    }
  }
  if (f.has("network")) {
    Field n = f.at("network");
    n.object();
    NetworkResources net;
    if (n.has("classID")) net.class_id = n.at("classID").u32();
    if (n.has("priorities"))
      net.priorities = each<std::pair<std::string, uint32_t>>(n.at("priorities"), [](const Field& p) {
        p.object();
        std::string name = p.required("name").str();
        if (name.empty() || name.find_first_of(" \n/") != std::string::npos)
          p.at("name").fail("invalid interface name \"" + name + "\"");
        return std::make_pair(name, p.required("priority").u32());
      });
    r.network = net;
  }
  if (f.has("unified")) r.unified = f.at("unified").string_map();
  return r;
}

Process parse_process(const nlohmann::json& doc, const std::string& where) {
  Field f(doc, where);
  f.object();
  Process p;
  if (f.has("terminal")) p.terminal = f.at("terminal").boolean();
  if (f.has("consoleSize")) {
    Field c = f.at("consoleSize");
    c.object();
    p.console_size = ConsoleSize{c.required("height").u32(), c.required("width").u32()};
  }
  p.cwd = f.required("cwd").str();
  if (p.cwd.empty() || p.cwd[0] != '/') f.at("cwd").fail("must be an absolute path, got \"" + p.cwd + "\"");
  if (f.has("env")) p.env = f.at("env").strings();
  if (f.has("args")) p.args = f.at("args").strings();
  if (f.has("commandLine")) f.at("commandLine").str();
  if (f.has("user")) {
    Field u = f.at("user");
    u.object();
    if (u.has("uid")) p.user.uid = u.at("uid").u32();
    if (u.has("gid")) p.user.gid = u.at("gid").u32();
    if (u.has("umask")) p.user.umask = u.at("umask").u32();
    if (u.has("additionalGids")) {
      Field g = u.at("additionalGids");
      g.array();
      for (size_t i = 0; i < g.value().size(); ++i) p.user.additional_gids.push_back(g.item(i).u32());
    }
    if (u.has("username")) u.at("username").str();
  }
  if (f.has("capabilities")) {
    Field c = f.at("capabilities");
    c.object();
    Capabilities caps;
    auto set = [&](const char* key, std::vector<std::string>& out) {
      if (c.has(key)) out = c.at(key).strings();
    };
    set("bounding", caps.bounding);
    set("effective", caps.effective);
    set("inheritable", caps.inheritable);
    set("permitted", caps.permitted);
    set("ambient", caps.ambient);
    p.capabilities = caps;
  }
  if (f.has("rlimits")) {
    p.rlimits = each<Rlimit>(f.at("rlimits"), [](const Field& r) {
      r.object();
      Rlimit l;
      l.type = r.required("type").str();
      if (l.type.rfind("RLIMIT_", 0) != 0) r.at("type").fail("invalid rlimit type \"" + l.type + "\"");
      l.soft = r.required("soft").u64();
      l.hard = r.required("hard").u64();
      return l;
    });
  }
  if (f.has("noNewPrivileges")) p.no_new_privileges = f.at("noNewPrivileges").boolean();
  if (f.has("apparmorProfile")) p.apparmor_profile = f.at("apparmorProfile").str();
  if (f.has("oomScoreAdj")) {
    p.oom_score_adj = f.at("oomScoreAdj").i32();
    if (*p.oom_score_adj < -1000 || *p.oom_score_adj > 1000) f.at("oomScoreAdj").fail("must be between -1000 and 1000");
  }
  if (f.has("selinuxLabel")) p.selinux_label = f.at("selinuxLabel").str();
  return p;
}

Spec parse_spec(const nlohmann::json& doc) {
  Field f(doc, "");
  if (!doc.is_object()) throw Error("config.json: must be a JSON object");
  Spec s;
  s.raw = doc;
  s.oci_version = f.required("ociVersion").str();
  if (f.has("root")) {
    Field r = f.at("root");
    r.object();
    s.root_path = r.required("path").str();
    if (r.has("readonly")) s.root_readonly = r.at("readonly").boolean();
  }
  if (f.has("process")) s.process = parse_process(f.at("process").value(), "process");
  if (f.has("hostname")) s.hostname = f.at("hostname").str();
  if (f.has("domainname")) s.domainname = f.at("domainname").str();
  if (f.has("mounts")) s.mounts = each<Mount>(f.at("mounts"), parse_mount);
  if (f.has("hooks")) s.hooks = parse_hooks(f.at("hooks"));
  if (f.has("annotations")) s.annotations = f.at("annotations").string_map();
  if (f.has("linux")) s.linux_ = parse_linux(f.at("linux"));
  return s;
}

Hooks parse_spec_hooks(const nlohmann::json& doc) {
  Field f(doc, "");
  if (!doc.is_object()) throw Error("config.json: must be a JSON object");
  return f.has("hooks") ? parse_hooks(f.at("hooks")) : Hooks{};
}

Spec parse_spec(const std::string& text) {
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    throw Error(std::string("config.json: invalid JSON: ") + e.what());
  }
  return parse_spec(doc);
}

const Namespace* find_namespace(const Spec& spec, const std::string& type) {
  if (!spec.linux_) return nullptr;
  for (const auto& ns : spec.linux_->namespaces)
    if (ns.type == type) return &ns;
  return nullptr;
}

}  // namespace berth::runtime
