// Seccomp filters from the OCI spec, through libseccomp.
//
// libseccomp builds the BPF program in the runtime process; the program is
// exported to memory right away and the init later installs it with the raw
// seccomp(2) syscall. That keeps load() free of libseccomp state and heap
// allocation, so it is safe in a child after fork()/clone(), and lets us pass
// filter flags libseccomp 2.5 does not know (WAIT_KILLABLE_RECV).
#include "runtime/seccomp.hpp"

#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

#include <nlohmann/json.hpp>

#include "util/error.hpp"
#include "util/fd.hpp"

// Older uapi headers lack the newer flags; the values are kernel ABI.
#ifndef SECCOMP_FILTER_FLAG_NEW_LISTENER
#define SECCOMP_FILTER_FLAG_NEW_LISTENER (1UL << 3)
#endif
#ifndef SECCOMP_FILTER_FLAG_TSYNC_ESRCH
#define SECCOMP_FILTER_FLAG_TSYNC_ESRCH (1UL << 4)
#endif
#ifndef SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
#define SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (1UL << 5)
#endif

namespace berth::runtime {
namespace {

constexpr unsigned kMaxArgs = 6;  // seccomp_data.args

[[noreturn]] void throw_rc(const std::string& what, int rc) { throw Error(errno_message(what, -rc), -rc); }

std::string quoted(const std::string& s) { return "\"" + s + "\""; }

// errnoRet defaults to EPERM, like runc.
uint32_t to_action(const std::string& name, std::optional<unsigned> errno_ret, const std::string& where) {
  const unsigned ret = errno_ret.value_or(EPERM);
  // SECCOMP_RET_DATA is 16 bits; larger values would be silently truncated.
  if (ret > 0xffff)
    throw Error("seccomp: " + where + ": errnoRet " + std::to_string(ret) + " out of range (max 65535)");
  if (name == "SCMP_ACT_KILL" || name == "SCMP_ACT_KILL_THREAD") return SCMP_ACT_KILL_THREAD;
  if (name == "SCMP_ACT_KILL_PROCESS") return SCMP_ACT_KILL_PROCESS;
  if (name == "SCMP_ACT_TRAP") return SCMP_ACT_TRAP;
  if (name == "SCMP_ACT_ERRNO") return SCMP_ACT_ERRNO(ret);
  if (name == "SCMP_ACT_TRACE") return SCMP_ACT_TRACE(ret);
  if (name == "SCMP_ACT_ALLOW") return SCMP_ACT_ALLOW;
  if (name == "SCMP_ACT_LOG") return SCMP_ACT_LOG;
  if (name == "SCMP_ACT_NOTIFY") return SCMP_ACT_NOTIFY;
  throw Error("seccomp: " + where + ": unknown action " + quoted(name));
}

scmp_compare to_op(const std::string& name, const std::string& where) {
  if (name == "SCMP_CMP_NE") return SCMP_CMP_NE;
  if (name == "SCMP_CMP_LT") return SCMP_CMP_LT;
  if (name == "SCMP_CMP_LE") return SCMP_CMP_LE;
  if (name == "SCMP_CMP_EQ") return SCMP_CMP_EQ;
  if (name == "SCMP_CMP_GE") return SCMP_CMP_GE;
  if (name == "SCMP_CMP_GT") return SCMP_CMP_GT;
  if (name == "SCMP_CMP_MASKED_EQ") return SCMP_CMP_MASKED_EQ;
  throw Error("seccomp: " + where + ": unknown operator " + quoted(name));
}

// "SCMP_ARCH_X86_64" → libseccomp's "x86_64" token.
uint32_t to_arch(const std::string& name) {
  constexpr std::string_view prefix = "SCMP_ARCH_";
  uint32_t token = 0;
  if (name.starts_with(prefix)) {
    std::string lower = name.substr(prefix.size());
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
    token = seccomp_arch_resolve_name(lower.c_str());
  }
  if (token == 0) throw Error("seccomp: unknown architecture " + quoted(name) + " (not supported by libseccomp)");
  return token;
}

struct CtxDeleter {
  void operator()(void* ctx) const { seccomp_release(ctx); }
};
using Ctx = std::unique_ptr<void, CtxDeleter>;

class BpfProgram final : public SeccompProgram {
 public:
  BpfProgram(std::vector<sock_filter> insns, unsigned flags, bool notify)
      : insns_(std::move(insns)), flags_(flags), notify_(notify) {}

  int load() override {
    unsigned flags = flags_;
    if (notify_) {
      flags |= SECCOMP_FILTER_FLAG_NEW_LISTENER;
      // The kernel refuses TSYNC with a listener unless failures report ESRCH
      // instead of a thread id (the id would be ambiguous with the fd).
      if (flags & SECCOMP_FILTER_FLAG_TSYNC) flags |= SECCOMP_FILTER_FLAG_TSYNC_ESRCH;
    } else {
      // Only meaningful for (and only accepted with) a listener.
      flags &= ~static_cast<unsigned>(SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV);
    }
    sock_fprog prog{};
    prog.len = static_cast<unsigned short>(insns_.size());
    prog.filter = insns_.data();
    long rc = ::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog);
    if (rc < 0 && errno == EINVAL && (flags & SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV)) {
      // Kernels before 5.19 reject the flag; it only changes how signals
      // interrupt a notified syscall, so run without it rather than fail.
      flags &= ~static_cast<unsigned>(SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV);
      rc = ::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog);
    }
    if (rc < 0) {
      const int err = errno;
      if (err == EACCES) throw_errno("seccomp: load filter (needs no_new_privs or CAP_SYS_ADMIN)", err);
      throw_errno("seccomp: load filter", err);
    }
    if (!notify_) {
      // With TSYNC, a positive return is the id of a thread that could not sync.
      if (rc > 0)
        throw Error("seccomp: load filter: thread " + std::to_string(rc) + " could not be synchronized (TSYNC)");
      return -1;
    }
    return static_cast<int>(rc);
  }

  bool uses_notify() const override { return notify_; }
  unsigned flags() const { return flags_; }
  const std::vector<sock_filter>& insns() const { return insns_; }

 private:
  std::vector<sock_filter> insns_;
  unsigned flags_;
  bool notify_;
};

void add_rule(scmp_filter_ctx ctx, const SeccompSyscall& rule, size_t rule_index, uint32_t default_action,
              bool& notify) {
  const std::string where = "syscalls[" + std::to_string(rule_index) + "]";
  const uint32_t action = to_action(rule.action, rule.errno_ret, where);

  std::vector<scmp_arg_cmp> conds;
  unsigned per_index[kMaxArgs] = {};
  bool same_index = false;
  for (size_t i = 0; i < rule.args.size(); ++i) {
    const SeccompArg& a = rule.args[i];
    const std::string arg_where = where + ".args[" + std::to_string(i) + "]";
    if (a.index >= kMaxArgs)
      throw Error("seccomp: " + arg_where + ": index " + std::to_string(a.index) + " out of range (max " +
                  std::to_string(kMaxArgs - 1) + ")");
    const scmp_compare op = to_op(a.op, arg_where);
    // MASKED_EQ: value is the mask, valueTwo the datum, as in runc.
    conds.push_back(scmp_arg_cmp{a.index, op, a.value, a.value_two});
    if (++per_index[a.index] > 1) same_index = true;
  }

  // libseccomp rejects rules whose action is the default one; they are no-ops.
  if (action == default_action) return;

  for (const std::string& name : rule.names) {
    const int nr = seccomp_syscall_resolve_name(name.c_str());
    if (nr == __NR_SCMP_ERROR) continue;  // unknown to this libseccomp: skip, like runc
    const std::string what = "seccomp: add rule for syscall " + quoted(name) + " (" + rule.action + ")";
    // Non-exact adds so multiplexed syscalls (socketcall, ipc on x86) work.
    if (same_index) {
      // libseccomp cannot AND two comparisons of one argument; runc falls back
      // to one rule per comparison (OR semantics), so do the same.
      for (const scmp_arg_cmp& c : conds) {
        const int rc = seccomp_rule_add_array(ctx, action, nr, 1, &c);
        if (rc < 0) throw_rc(what, rc);
      }
    } else {
      const int rc = seccomp_rule_add_array(ctx, action, nr, static_cast<unsigned>(conds.size()),
                                            conds.empty() ? nullptr : conds.data());
      if (rc < 0) throw_rc(what, rc);
    }
    if (action == SCMP_ACT_NOTIFY) notify = true;
  }
}

std::vector<sock_filter> export_bpf(scmp_filter_ctx ctx) {
  UniqueFd mem(::memfd_create("berth-seccomp", MFD_CLOEXEC));
  if (!mem) throw_errno("seccomp: memfd_create");
  if (const int rc = seccomp_export_bpf(ctx, mem.get()); rc < 0) throw_rc("seccomp: export filter", rc);
  struct stat st {};
  if (::fstat(mem.get(), &st) < 0) throw_errno("seccomp: stat exported filter");
  const size_t size = static_cast<size_t>(st.st_size);
  if (size == 0 || size % sizeof(sock_filter) != 0)
    throw Error("seccomp: exported filter has odd size " + std::to_string(size));
  std::vector<sock_filter> insns(size / sizeof(sock_filter));
  if (insns.size() > BPF_MAXINSNS)
    throw Error("seccomp: filter has " + std::to_string(insns.size()) + " instructions, the kernel allows " +
                std::to_string(BPF_MAXINSNS));
  size_t done = 0;
  auto* out = reinterpret_cast<char*>(insns.data());
  while (done < size) {
    const ssize_t n = ::pread(mem.get(), out + done, size - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw_errno("seccomp: read exported filter");
    if (n == 0) throw Error("seccomp: exported filter truncated");
    done += static_cast<size_t>(n);
  }
  return insns;
}

}  // namespace

namespace {
std::unique_ptr<BpfProgram> compile_bpf(const Seccomp& spec);
}  // namespace

std::unique_ptr<SeccompProgram> compile_seccomp(const Seccomp& spec) { return compile_bpf(spec); }

namespace {

// FNV-1a: only names the cache file; the stored key is compared in full before use.
uint64_t fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

constexpr char kCacheMagic[8] = {'B', 'S', 'E', 'C', 'C', 'M', 'P', '1'};

}  // namespace

std::unique_ptr<SeccompProgram> compile_seccomp_cached(const Seccomp& spec, const std::string& key_json,
                                                       const std::string& cache_dir) {
  const scmp_version* v = seccomp_version();
  std::string key = key_json + "\n" + std::to_string(v ? v->major : 0) + "." + std::to_string(v ? v->minor : 0) + "." +
                    std::to_string(v ? v->micro : 0) + "/" + std::to_string(seccomp_arch_native());
  char name[32];
  std::snprintf(name, sizeof name, "/%016llx.bpf", static_cast<unsigned long long>(fnv1a(key)));
  std::string path = cache_dir + name;
  if (UniqueFd fd{::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW)}) {
    std::string data;
    char buf[65536];
    ssize_t n;
    while ((n = ::read(fd.get(), buf, sizeof buf)) > 0) data.append(buf, static_cast<size_t>(n));
    // magic, u32 key length, key, u32 flags, u8 notify, u32 count, instructions
    size_t pos = sizeof kCacheMagic;
    auto u32 = [&](uint32_t* out) {
      if (data.size() < pos + 4) return false;
      std::memcpy(out, data.data() + pos, 4);
      pos += 4;
      return true;
    };
    uint32_t key_len = 0, flags = 0, count = 0;
    if (n == 0 && data.size() > pos && std::memcmp(data.data(), kCacheMagic, sizeof kCacheMagic) == 0 &&
        u32(&key_len) && data.size() >= pos + key_len && data.compare(pos, key_len, key) == 0) {
      pos += key_len;
      if (u32(&flags) && data.size() > pos) {
        bool notify = data[pos++] != 0;
        if (u32(&count) && data.size() == pos + size_t{count} * sizeof(sock_filter)) {
          std::vector<sock_filter> insns(count);
          std::memcpy(insns.data(), data.data() + pos, data.size() - pos);
          return std::make_unique<BpfProgram>(std::move(insns), flags, notify);
        }
      }
    }
  }
  std::unique_ptr<BpfProgram> prog = compile_bpf(spec);
  std::string out(kCacheMagic, sizeof kCacheMagic);
  auto put32 = [&](uint32_t x) { out.append(reinterpret_cast<const char*>(&x), 4); };
  put32(static_cast<uint32_t>(key.size()));
  out += key;
  put32(prog->flags());
  out.push_back(prog->uses_notify() ? 1 : 0);
  put32(static_cast<uint32_t>(prog->insns().size()));
  out.append(reinterpret_cast<const char*>(prog->insns().data()), prog->insns().size() * sizeof(sock_filter));
  if (::mkdir(cache_dir.c_str(), 0700) != 0 && errno == ENOENT) {
    // The runtime's root is made by the first create, after this: make it now, as it would.
    ::mkdir(cache_dir.substr(0, cache_dir.rfind('/')).c_str(), 0711);
    ::mkdir(cache_dir.c_str(), 0700);
  }
  std::string tmp = path + ".tmp" + std::to_string(::getpid());
  if (UniqueFd fd{::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600)}) {
    bool ok = ::write(fd.get(), out.data(), out.size()) == static_cast<ssize_t>(out.size());
    fd.reset();
    if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) ::unlink(tmp.c_str());
  }
  return prog;
}

namespace {

std::unique_ptr<BpfProgram> compile_bpf(const Seccomp& spec) {
  const uint32_t default_action = to_action(spec.default_action, spec.default_errno_ret, "defaultAction");
  // runc refuses this too: every syscall, including the ones the runtime still
  // makes after loading, would wait for a listener that is not yet connected.
  if (default_action == SCMP_ACT_NOTIFY) throw Error("seccomp: defaultAction: SCMP_ACT_NOTIFY cannot be the default");

  Ctx ctx(seccomp_init(default_action));
  if (!ctx) throw Error("seccomp: init filter with default action " + spec.default_action + " failed");

  // The runtime sets no_new_privs itself when process.noNewPrivileges asks;
  // without it the init loads the filter while it still has CAP_SYS_ADMIN.
  if (const int rc = seccomp_attr_set(ctx.get(), SCMP_FLTATR_CTL_NNP, 0); rc < 0)
    throw_rc("seccomp: clear no_new_privs attribute", rc);

  for (const std::string& name : spec.architectures) {
    const int rc = seccomp_arch_add(ctx.get(), to_arch(name));
    if (rc < 0 && rc != -EEXIST) throw_rc("seccomp: add architecture " + quoted(name), rc);  // EEXIST: native
  }

  // Setting the attributes also checks that kernel and libseccomp support
  // them, so a bad flag fails here; load() passes the matching kernel flags.
  unsigned flags = 0;
  for (const std::string& flag : spec.flags) {
    scmp_filter_attr attr;
    if (flag == "SECCOMP_FILTER_FLAG_TSYNC") {
      attr = SCMP_FLTATR_CTL_TSYNC;
      flags |= SECCOMP_FILTER_FLAG_TSYNC;
    } else if (flag == "SECCOMP_FILTER_FLAG_LOG") {
      attr = SCMP_FLTATR_CTL_LOG;
      flags |= SECCOMP_FILTER_FLAG_LOG;
    } else if (flag == "SECCOMP_FILTER_FLAG_SPEC_ALLOW") {
      attr = SCMP_FLTATR_CTL_SSB;
      flags |= SECCOMP_FILTER_FLAG_SPEC_ALLOW;
    } else if (flag == "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV") {
      // libseccomp 2.5 has no attribute for it; load() passes it to the kernel.
      flags |= SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;
      continue;
    } else {
      throw Error("seccomp: flags: unknown flag " + quoted(flag));
    }
    if (const int rc = seccomp_attr_set(ctx.get(), attr, 1); rc < 0) throw_rc("seccomp: set flag " + flag, rc);
  }

  bool notify = false;
  for (size_t i = 0; i < spec.syscalls.size(); ++i) add_rule(ctx.get(), spec.syscalls[i], i, default_action, notify);

  if (notify && spec.listener_path.empty()) throw Error("seccomp: SCMP_ACT_NOTIFY is used but listenerPath is not set");

  return std::make_unique<BpfProgram>(export_bpf(ctx.get()), flags, notify);
}

}  // namespace

void send_seccomp_listener(const std::string& listener_path, int notify_fd, const std::string& state_json,
                           const std::string& metadata) {
  const std::string what = "seccomp: send notify fd to listener " + quoted(listener_path);

  nlohmann::json state = nlohmann::json::parse(state_json, nullptr, /*allow_exceptions=*/false);
  if (!state.is_object()) throw Error(what + ": container state is not a JSON object");
  if (!state.contains("pid") || !state["pid"].is_number_integer())
    throw Error(what + ": container state has no \"pid\"");

  // The runtime-spec "container process state"; fds names the SCM_RIGHTS fds in order.
  nlohmann::json msg = {{"ociVersion", "1.0.2"}, {"fds", {"seccompFd"}}, {"pid", state["pid"]}, {"state", state}};
  if (!metadata.empty()) msg["metadata"] = metadata;  // OPTIONAL in the spec
  const std::string payload = msg.dump();

  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (listener_path.empty() || listener_path.size() >= sizeof(addr.sun_path))
    throw Error(what + ": path is empty or longer than " + std::to_string(sizeof(addr.sun_path) - 1) + " bytes");
  std::memcpy(addr.sun_path, listener_path.data(), listener_path.size());

  // The spec requires AF_UNIX + SOCK_STREAM, one state per connection.
  UniqueFd sock(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!sock) throw_errno(what + ": socket");
  int rc;
  do {
    rc = ::connect(sock.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr));
  } while (rc < 0 && errno == EINTR);
  if (rc < 0) throw_errno(what + ": connect");

  size_t sent = 0;
  while (sent < payload.size()) {
    iovec iov{const_cast<char*>(payload.data() + sent), payload.size() - sent};
    msghdr hdr{};
    hdr.msg_iov = &iov;
    hdr.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    if (sent == 0) {  // the fd rides with the first bytes only
      hdr.msg_control = control;
      hdr.msg_controllen = sizeof(control);
      cmsghdr* cmsg = CMSG_FIRSTHDR(&hdr);
      cmsg->cmsg_level = SOL_SOCKET;
      cmsg->cmsg_type = SCM_RIGHTS;
      cmsg->cmsg_len = CMSG_LEN(sizeof(int));
      std::memcpy(CMSG_DATA(cmsg), &notify_fd, sizeof(int));
    }
    const ssize_t n = ::sendmsg(sock.get(), &hdr, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw_errno(what + ": sendmsg");
    sent += static_cast<size_t>(n);
  }
}

}  // namespace berth::runtime
