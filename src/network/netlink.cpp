// rtnetlink through libnl-route-3. Every libnl object is owned by a unique_ptr; kernel errors are
// reported with the kernel's own errno (captured by an error callback, since libnl folds many of them
// into NLE_FAILURE) and the extended-ack message when the kernel gives one.
#include "network/netlink.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netlink/addr.h>
#include <netlink/attr.h>
#include <netlink/cache.h>
#include <netlink/errno.h>
#include <netlink/handlers.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/veth.h>
#include <netlink/route/nexthop.h>
#include <netlink/route/route.h>
#include <netlink/socket.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <exception>
#include <optional>
#include <string_view>
#include <thread>

#include "util/error.hpp"
#include "util/fs.hpp"

namespace berth::network {

namespace {

// ---- RAII for libnl objects ----

template <auto Fn>
struct Free {
  template <typename T>
  void operator()(T* p) const {
    if (p) Fn(p);
  }
};

using SockPtr = std::unique_ptr<nl_sock, Free<nl_socket_free>>;
using LinkPtr = std::unique_ptr<rtnl_link, Free<rtnl_link_put>>;
using NlAddrPtr = std::unique_ptr<nl_addr, Free<nl_addr_put>>;
using RtAddrPtr = std::unique_ptr<rtnl_addr, Free<rtnl_addr_put>>;
using RoutePtr = std::unique_ptr<rtnl_route, Free<rtnl_route_put>>;
using NexthopPtr = std::unique_ptr<rtnl_nexthop, Free<rtnl_route_nh_free>>;
using CachePtr = std::unique_ptr<nl_cache, Free<nl_cache_free>>;

// ---- errors ----

// errno for a libnl error code that did not come from the kernel (0 when there is none).
int nle_to_errno(int nle) {
  switch (nle < 0 ? -nle : nle) {
    case NLE_INTR:
      return EINTR;
    case NLE_BAD_SOCK:
      return EBADF;
    case NLE_AGAIN:
      return EAGAIN;
    case NLE_NOMEM:
      return ENOMEM;
    case NLE_EXIST:
      return EEXIST;
    case NLE_INVAL:
    case NLE_MISSING_ATTR:
    case NLE_AF_MISMATCH:
    case NLE_IMMUTABLE:
    case NLE_PARSE_ERR:
      return EINVAL;
    case NLE_RANGE:
      return ERANGE;
    case NLE_MSGSIZE:
      return EMSGSIZE;
    case NLE_OPNOTSUPP:
      return EOPNOTSUPP;
    case NLE_AF_NOSUPPORT:
      return EAFNOSUPPORT;
    case NLE_OBJ_NOTFOUND:
      return ENOENT;
    case NLE_NOADDR:
      return EADDRNOTAVAIL;
    case NLE_BUSY:
      return EBUSY;
    case NLE_PROTO_MISMATCH:
      return EPROTONOSUPPORT;
    case NLE_NOACCESS:
      return EACCES;
    case NLE_PERM:
      return EPERM;
    case NLE_NODEV:
      return ENODEV;
    default:
      return 0;
  }
}

[[noreturn]] void throw_invalid(std::string_view what, std::string_view why) {
  std::string msg(what);
  msg += ": ";
  msg += why;
  throw Error(msg, EINVAL);
}

// The kernel's dev_valid_name(), checked here because libnl silently truncates long names.
void check_ifname(const std::string& name, std::string_view what) {
  bool ok = !name.empty() && name.size() < IFNAMSIZ && name != "." && name != "..";
  for (char c : name)
    if (c == '/' || c == ':' || c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f') ok = false;
  if (!ok) throw_invalid(what, "invalid interface name \"" + name + "\" (1-15 characters, no '/', ':' or spaces)");
}

// ---- address parsing (strict: inet_pton, decimal prefix) ----

struct IpAddr {
  int family = AF_UNSPEC;
  std::array<unsigned char, 16> bytes{};
  size_t len = 0;
  int prefix = 0;
};

std::optional<IpAddr> parse_ip(const std::string& text) {
  IpAddr a;
  a.family = text.find(':') != std::string::npos ? AF_INET6 : AF_INET;
  a.len = a.family == AF_INET6 ? 16 : 4;
  if (::inet_pton(a.family, text.c_str(), a.bytes.data()) != 1) return std::nullopt;
  a.prefix = static_cast<int>(a.len * 8);
  return a;
}

// "addr/prefix"; a missing prefix means a host address (as `ip addr add` does).
std::optional<IpAddr> parse_cidr(const std::string& cidr) {
  size_t slash = cidr.find('/');
  std::optional<IpAddr> a = parse_ip(cidr.substr(0, slash));
  if (!a || slash == std::string::npos) return a;
  std::string_view p = std::string_view(cidr).substr(slash + 1);
  if (p.empty() || p.size() > 3) return std::nullopt;
  int prefix = 0;
  for (char c : p) {
    if (c < '0' || c > '9') return std::nullopt;
    prefix = prefix * 10 + (c - '0');
  }
  if (prefix > a->prefix) return std::nullopt;
  a->prefix = prefix;
  return a;
}

NlAddrPtr build_addr(int family, const void* bytes, size_t len, int prefix, std::string_view what) {
  NlAddrPtr addr(nl_addr_build(family, bytes, len));
  if (!addr) throw Error(std::string(what) + ": out of memory", ENOMEM);
  nl_addr_set_prefixlen(addr.get(), prefix);
  return addr;
}

NlAddrPtr build_addr(const IpAddr& ip, std::string_view what) {
  return build_addr(ip.family, ip.bytes.data(), ip.len, ip.prefix, what);
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::optional<std::array<unsigned char, 6>> parse_mac(std::string_view mac) {
  std::array<unsigned char, 6> out{};
  if (mac.size() != 17) return std::nullopt;
  for (size_t i = 0; i < 6; ++i) {
    int hi = hex_digit(mac[i * 3]), lo = hex_digit(mac[i * 3 + 1]);
    if (hi < 0 || lo < 0 || (i < 5 && mac[i * 3 + 2] != ':')) return std::nullopt;
    out[i] = static_cast<unsigned char>(hi * 16 + lo);
  }
  return out;
}

// The extended-ack message (NLMSGERR_ATTR_MSG) of an error reply, if the kernel sent one.
std::string extack_message(const nlmsgerr* e) {
  const auto* hdr = reinterpret_cast<const nlmsghdr*>(reinterpret_cast<const char*>(e) - NLMSG_HDRLEN);
  if (!(hdr->nlmsg_flags & NLM_F_ACK_TLVS) || hdr->nlmsg_len < NLMSG_HDRLEN) return {};
  size_t payload = hdr->nlmsg_len - NLMSG_HDRLEN;
  size_t offset = sizeof(nlmsgerr);
  if (!(hdr->nlmsg_flags & NLM_F_CAPPED)) {
    if (e->msg.nlmsg_len < NLMSG_HDRLEN) return {};
    offset += e->msg.nlmsg_len - NLMSG_HDRLEN;
  }
  offset = NLMSG_ALIGN(offset);
  if (offset >= payload) return {};
  nlattr* tb[NLMSGERR_ATTR_MAX + 1] = {};
  auto* attrs = reinterpret_cast<nlattr*>(const_cast<char*>(reinterpret_cast<const char*>(e)) + offset);
  if (nla_parse(tb, NLMSGERR_ATTR_MAX, attrs, static_cast<int>(payload - offset), nullptr) < 0) return {};
  if (!tb[NLMSGERR_ATTR_MSG]) return {};
  const char* s = static_cast<const char*>(nla_data(tb[NLMSGERR_ATTR_MSG]));
  return std::string(s, strnlen(s, static_cast<size_t>(nla_len(tb[NLMSGERR_ATTR_MSG]))));
}

std::string parent_dir(const std::string& path) {
  size_t slash = path.find_last_of('/');
  return slash == 0 ? "/" : path.substr(0, slash);
}

// Makes dir a shared mount, bind-mounting it onto itself first when it is not a mount point
// (iproute2's netns_add does the same for /run/netns).
void make_shared_mount(const std::string& dir) {
  bool bound = false;
  while (::mount("", dir.c_str(), "none", MS_SHARED | MS_REC, nullptr) != 0) {
    if (errno != EINVAL || bound) throw_errno("create netns: mount --make-shared " + dir);
    if (::mount(dir.c_str(), dir.c_str(), "none", MS_BIND | MS_REC, nullptr) != 0)
      throw_errno("create netns: mount --bind " + dir + " " + dir);
    bound = true;
  }
}

}  // namespace

// ---- named network namespaces ----

void create_netns(const std::string& path) {
  if (path.size() < 2 || path.front() != '/' || path.back() == '/')
    throw_invalid("create netns " + path, "not an absolute file path");
  std::string dir = parent_dir(path);
  mkdir_p(dir, 0755);
  make_shared_mount(dir);

  int fd = ::open(path.c_str(), O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0);
  if (fd < 0) throw_errno("create netns " + path + ": open");
  ::close(fd);

  // From here on the file is ours: remove it on any failure.
  struct Unlink {
    const std::string& path;
    bool armed = true;
    ~Unlink() {
      if (armed) ::unlink(path.c_str());
    }
  } undo{path};

  // A fresh netns for a helper thread only (netns is per thread), pinned by the bind mount.
  int err = 0;
  const char* step = "";
  std::thread([&] {
    if (::unshare(CLONE_NEWNET) != 0) {
      err = errno;
      step = "unshare(CLONE_NEWNET)";
    } else if (::mount("/proc/thread-self/ns/net", path.c_str(), "none", MS_BIND, nullptr) != 0) {
      err = errno;
      step = "mount --bind /proc/thread-self/ns/net";
    }
  }).join();
  if (err != 0) throw_errno("create netns " + path + ": " + step, err);
  undo.armed = false;
}

void remove_netns(const std::string& path) {
  // Loop: a racing create may have stacked two mounts on the file.
  int unmounted = 0;
  while (unmounted < 16 && ::umount2(path.c_str(), MNT_DETACH) == 0) ++unmounted;
  if (unmounted < 16 && errno != EINVAL && errno != ENOENT) throw_errno("remove netns " + path + ": umount2");
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) throw_errno("remove netns " + path + ": unlink");
}

UniqueFd open_netns(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw_errno("open netns " + path);
  return UniqueFd(fd);
}

// ---- Netlink ----

struct Netlink::Impl {
  SockPtr sock;
  // Filled by the error callback for the request in flight; reset by begin().
  int kernel_errno = 0;
  std::string extack;

  static int on_error(sockaddr_nl*, nlmsgerr* e, void* arg) {
    auto* self = static_cast<Impl*>(arg);
    self->kernel_errno = -e->error;
    self->extack = extack_message(e);
    return NL_STOP;  // libnl then returns its own code for e->error
  }

  // Opens and connects the socket in the calling thread's network namespace.
  void open() {
    sock.reset(nl_socket_alloc());
    if (!sock) throw Error("netlink: allocate socket: out of memory", ENOMEM);
    nl_socket_modify_err_cb(sock.get(), NL_CB_CUSTOM, &Impl::on_error, this);
    begin();
    check(nl_connect(sock.get(), NETLINK_ROUTE), "netlink: connect");
    // Best effort: error strings from the kernel, and error replies without the echoed request.
    int one = 1;
    ::setsockopt(nl_socket_get_fd(sock.get()), SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
    ::setsockopt(nl_socket_get_fd(sock.get()), SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
  }

  void begin() {
    kernel_errno = 0;
    extack.clear();
  }

  [[noreturn]] void fail(int rc, std::string_view what) const {
    std::string msg(what);
    msg += ": ";
    int errnum;
    if (kernel_errno > 0) {
      errnum = kernel_errno;
      msg += std::strerror(kernel_errno);
    } else {
      errnum = nle_to_errno(rc);
      msg += nl_geterror(rc);
    }
    if (!extack.empty()) msg += " (" + extack + ")";
    throw Error(msg, errnum);
  }

  void check(int rc, std::string_view what) const {
    if (rc < 0) fail(rc, what);
  }

  // rtnl_link_get_kernel() installs its own error callback, so also look at libnl's code for ENODEV.
  bool not_found(int rc) const {
    return kernel_errno > 0 ? kernel_errno == ENODEV : rc == -NLE_NODEV || rc == -NLE_OBJ_NOTFOUND;
  }

  // The link as the kernel has it now (nullptr when there is none).
  LinkPtr find(const std::string& name, std::string_view what) {
    check_ifname(name, what);
    rtnl_link* link = nullptr;
    int rc = rtnl_link_get_kernel(sock.get(), 0, name.c_str(), &link);
    LinkPtr owned(link);
    if (rc < 0) {
      if (not_found(rc)) return nullptr;
      fail(rc, what);
    }
    return owned;
  }

  LinkPtr get(const std::string& name, std::string_view what) {
    LinkPtr link = find(name, what);
    if (!link) throw_errno(what, ENODEV);
    return link;
  }

  // Applies `changes` to the current kernel state of `name` (flags are merged with the current ones).
  void change(const std::string& name, rtnl_link* changes, std::string_view what) {
    LinkPtr orig = get(name, what);
    check(rtnl_link_change(sock.get(), orig.get(), changes, 0), what);
  }
};

namespace {

LinkPtr alloc_link(std::string_view what) {
  LinkPtr link(rtnl_link_alloc());
  if (!link) throw Error(std::string(what) + ": out of memory", ENOMEM);
  return link;
}

}  // namespace

Netlink::Netlink() : impl_(std::make_unique<Impl>()) { impl_->open(); }

Netlink::Netlink(int netns_fd) : impl_(std::make_unique<Impl>()) {
  // setns() moves only the helper thread; the socket stays bound to the namespace it was created in.
  std::exception_ptr error;
  std::thread([&] {
    try {
      if (::setns(netns_fd, CLONE_NEWNET) != 0)
        throw_errno("netlink: setns(fd " + std::to_string(netns_fd) + ", CLONE_NEWNET)");
      impl_->open();
    } catch (...) {
      error = std::current_exception();
    }
  }).join();
  if (error) std::rethrow_exception(error);
}

Netlink::~Netlink() = default;

bool Netlink::link_exists(const std::string& name) {
  impl_->begin();
  return impl_->find(name, "netlink: get link " + name) != nullptr;
}

void Netlink::create_bridge(const std::string& name, int mtu) {
  std::string what = "netlink: create bridge " + name;
  check_ifname(name, what);
  if (mtu < 0) throw_invalid(what, "negative mtu");
  impl_->begin();
  LinkPtr link = alloc_link(what);
  impl_->check(rtnl_link_set_type(link.get(), "bridge"), what);
  rtnl_link_set_name(link.get(), name.c_str());
  if (mtu > 0) rtnl_link_set_mtu(link.get(), static_cast<unsigned>(mtu));
  rtnl_link_set_flags(link.get(), IFF_UP);  // in the same request: the kernel undoes the link if up fails
  impl_->check(rtnl_link_add(impl_->sock.get(), link.get(), NLM_F_CREATE | NLM_F_EXCL), what);
}

void Netlink::create_veth(const std::string& host_name, const std::string& peer_name, int peer_netns_fd, int mtu) {
  std::string what = "netlink: create veth " + host_name + " (peer " + peer_name + ")";
  check_ifname(host_name, what);
  check_ifname(peer_name, what);
  if (mtu < 0) throw_invalid(what, "negative mtu");
  impl_->begin();
  LinkPtr link(rtnl_link_veth_alloc());
  if (!link) throw Error(what + ": out of memory", ENOMEM);
  LinkPtr peer(rtnl_link_veth_get_peer(link.get()));  // a reference of its own
  if (!peer) throw Error(what + ": no veth peer object", EINVAL);
  rtnl_link_set_name(link.get(), host_name.c_str());
  rtnl_link_set_name(peer.get(), peer_name.c_str());
  if (mtu > 0) {
    rtnl_link_set_mtu(link.get(), static_cast<unsigned>(mtu));
    rtnl_link_set_mtu(peer.get(), static_cast<unsigned>(mtu));
  }
  if (peer_netns_fd >= 0) rtnl_link_set_ns_fd(peer.get(), peer_netns_fd);
  impl_->check(rtnl_link_add(impl_->sock.get(), link.get(), NLM_F_CREATE | NLM_F_EXCL), what);
}

void Netlink::set_master(const std::string& link, const std::string& bridge) {
  std::string what = "netlink: set master of " + link + " to " + bridge;
  check_ifname(link, what);
  impl_->begin();
  LinkPtr master = impl_->get(bridge, what);
  LinkPtr changes = alloc_link(what);
  rtnl_link_set_master(changes.get(), rtnl_link_get_ifindex(master.get()));
  impl_->change(link, changes.get(), what);
}

void Netlink::set_hairpin(const std::string& link) {
  std::string what = "netlink: set hairpin mode on bridge port " + link;
  impl_->begin();
  LinkPtr port = impl_->get(link, what);
  // `bridge link set dev LINK hairpin on`: RTM_SETLINK of family AF_BRIDGE with the port's
  // IFLA_PROTINFO (libnl has no setter for a port's flags).
  std::unique_ptr<nl_msg, decltype(&nlmsg_free)> msg(nlmsg_alloc_simple(RTM_SETLINK, NLM_F_REQUEST | NLM_F_ACK),
                                                     &nlmsg_free);
  if (!msg) throw Error(what + ": out of memory", ENOMEM);
  ifinfomsg ifi{};
  ifi.ifi_family = AF_BRIDGE;
  ifi.ifi_index = rtnl_link_get_ifindex(port.get());
  impl_->check(nlmsg_append(msg.get(), &ifi, sizeof ifi, NLMSG_ALIGNTO), what);
  nlattr* protinfo = nla_nest_start(msg.get(), IFLA_PROTINFO | NLA_F_NESTED);
  if (!protinfo) throw Error(what + ": message too long", EMSGSIZE);
  impl_->check(nla_put_u8(msg.get(), IFLA_BRPORT_MODE, 1), what);
  nla_nest_end(msg.get(), protinfo);
  impl_->check(nl_send_sync(impl_->sock.get(), msg.release()), what);
}

void Netlink::set_up(const std::string& link) {
  std::string what = "netlink: set " + link + " up";
  impl_->begin();
  LinkPtr changes = alloc_link(what);
  rtnl_link_set_flags(changes.get(), IFF_UP);
  impl_->change(link, changes.get(), what);
}

void Netlink::rename(const std::string& link, const std::string& new_name) {
  std::string what = "netlink: rename " + link + " to " + new_name;
  check_ifname(new_name, what);
  impl_->begin();
  LinkPtr changes = alloc_link(what);
  rtnl_link_set_name(changes.get(), new_name.c_str());
  impl_->change(link, changes.get(), what);
}

void Netlink::set_mac(const std::string& link, const std::string& mac) {
  std::string what = "netlink: set mac of " + link + " to " + mac;
  auto bytes = parse_mac(mac);
  if (!bytes) throw_invalid(what, "invalid MAC address (want xx:xx:xx:xx:xx:xx)");
  impl_->begin();
  NlAddrPtr addr = build_addr(AF_LLC, bytes->data(), bytes->size(), 48, what);
  LinkPtr changes = alloc_link(what);
  rtnl_link_set_addr(changes.get(), addr.get());
  impl_->change(link, changes.get(), what);
}

void Netlink::add_address(const std::string& link, const std::string& cidr) {
  std::string what = "netlink: add address " + cidr + " to " + link;
  std::optional<IpAddr> ip = parse_cidr(cidr);
  if (!ip) throw_invalid(what, "invalid address (want a.b.c.d/n or an IPv6 address/n)");
  impl_->begin();
  LinkPtr dev = impl_->get(link, what);

  RtAddrPtr addr(rtnl_addr_alloc());
  if (!addr) throw Error(what + ": out of memory", ENOMEM);
  rtnl_addr_set_ifindex(addr.get(), rtnl_link_get_ifindex(dev.get()));
  NlAddrPtr local = build_addr(*ip, what);
  impl_->check(rtnl_addr_set_local(addr.get(), local.get()), what);  // also sets family and prefix length
  if (ip->family == AF_INET && ip->prefix < 31) {
    // The subnet's broadcast address, as `ip addr add ... brd +` and docker set it.
    IpAddr brd = *ip;
    for (int bit = ip->prefix; bit < 32; ++bit) brd.bytes[bit / 8] |= static_cast<unsigned char>(0x80 >> (bit % 8));
    brd.prefix = 32;
    NlAddrPtr b = build_addr(brd, what);
    impl_->check(rtnl_addr_set_broadcast(addr.get(), b.get()), what);
  }
  impl_->check(rtnl_addr_add(impl_->sock.get(), addr.get(), NLM_F_EXCL), what);
}

void Netlink::add_default_route(const std::string& gateway, const std::string& link) {
  std::string what = "netlink: add default route via " + gateway + " dev " + link;
  std::optional<IpAddr> gw = parse_ip(gateway);
  if (!gw) throw_invalid(what, "invalid gateway address");
  impl_->begin();
  LinkPtr dev = impl_->get(link, what);

  RoutePtr route(rtnl_route_alloc());
  NexthopPtr nh(rtnl_route_nh_alloc());
  if (!route || !nh) throw Error(what + ": out of memory", ENOMEM);
  impl_->check(rtnl_route_set_family(route.get(), static_cast<uint8_t>(gw->family)), what);
  static const std::array<unsigned char, 16> zero{};
  NlAddrPtr dst = build_addr(gw->family, zero.data(), gw->len, 0, what);
  impl_->check(rtnl_route_set_dst(route.get(), dst.get()), what);
  rtnl_route_set_table(route.get(), RT_TABLE_MAIN);
  rtnl_route_set_protocol(route.get(), RTPROT_BOOT);
  rtnl_route_set_scope(route.get(), RT_SCOPE_UNIVERSE);
  impl_->check(rtnl_route_set_type(route.get(), RTN_UNICAST), what);

  NlAddrPtr via = build_addr(*gw, what);
  rtnl_route_nh_set_gateway(nh.get(), via.get());
  rtnl_route_nh_set_ifindex(nh.get(), rtnl_link_get_ifindex(dev.get()));
  rtnl_route_add_nexthop(route.get(), nh.release());  // the route owns it now
  impl_->check(rtnl_route_add(impl_->sock.get(), route.get(), NLM_F_EXCL), what);
}

void Netlink::delete_link(const std::string& name) {
  std::string what = "netlink: delete link " + name;
  check_ifname(name, what);
  impl_->begin();
  LinkPtr link = alloc_link(what);
  rtnl_link_set_name(link.get(), name.c_str());
  int rc = rtnl_link_delete(impl_->sock.get(), link.get());
  if (rc < 0 && !impl_->not_found(rc)) impl_->fail(rc, what);
}

std::vector<std::string> Netlink::links_with_prefix(const std::string& prefix) {
  impl_->begin();
  nl_cache* raw = nullptr;
  int rc = rtnl_link_alloc_cache(impl_->sock.get(), AF_UNSPEC, &raw);
  CachePtr cache(raw);
  impl_->check(rc, "netlink: list links");
  std::vector<std::string> names;
  for (nl_object* obj = nl_cache_get_first(cache.get()); obj; obj = nl_cache_get_next(obj)) {
    const char* name = rtnl_link_get_name(reinterpret_cast<rtnl_link*>(obj));
    if (name && std::string_view(name).starts_with(prefix)) names.emplace_back(name);
  }
  return names;
}

std::vector<Route4> Netlink::routes4() {
  impl_->begin();
  nl_cache* raw = nullptr;
  int rc = rtnl_link_alloc_cache(impl_->sock.get(), AF_UNSPEC, &raw);
  CachePtr links(raw);
  impl_->check(rc, "netlink: list routes: list links");
  raw = nullptr;
  rc = rtnl_route_alloc_cache(impl_->sock.get(), AF_INET, 0, &raw);
  CachePtr routes(raw);
  impl_->check(rc, "netlink: list routes");

  std::vector<Route4> out;
  for (nl_object* obj = nl_cache_get_first(routes.get()); obj; obj = nl_cache_get_next(obj)) {
    auto* route = reinterpret_cast<rtnl_route*>(obj);
    if (rtnl_route_get_table(route) != RT_TABLE_MAIN || rtnl_route_get_family(route) != AF_INET) continue;
    Route4 r;
    if (nl_addr* dst = rtnl_route_get_dst(route)) {
      if (nl_addr_get_len(dst) == 4) std::memcpy(&r.dst, nl_addr_get_binary_addr(dst), 4);
      r.prefix = static_cast<int>(nl_addr_get_prefixlen(dst));
    }
    if (rtnl_route_get_nnexthops(route) > 0) {
      int ifindex = rtnl_route_nh_get_ifindex(rtnl_route_nexthop_n(route, 0));
      char name[IFNAMSIZ + 1] = {};
      if (ifindex > 0 && rtnl_link_i2name(links.get(), ifindex, name, sizeof name)) r.link = name;
    }
    out.push_back(std::move(r));
  }
  return out;
}

void write_net_sysctl(const std::string& key, const std::string& value) {
  std::string what = "write sysctl net/" + key;
  bool ok = !key.empty() && key.front() != '/';
  for (size_t start = 0; ok && start <= key.size();) {
    size_t end = key.find('/', start);
    if (end == std::string::npos) end = key.size();
    std::string_view part = std::string_view(key).substr(start, end - start);
    if (part.empty() || part == "." || part == "..") ok = false;
    start = end + 1;
  }
  if (!ok) throw_invalid(what, "invalid key (want e.g. ipv4/ip_forward)");
  std::string path = "/proc/sys/net/" + key;
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) throw_errno(what);
  UniqueFd owner(fd);
  write_all(fd, value, what);
}

}  // namespace berth::network
