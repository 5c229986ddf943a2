// Netlink against the real kernel, never the host's network: every test body runs in a thread that
// first unshares its network namespace (a netns is per thread), and the "container" namespaces are
// nsfs bind mounts under a mkdtemp directory that the fixture removes again. Needs root.
#include "network/netlink.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>
#include <future>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "util/error.hpp"
#include "util/fd.hpp"
#include "util/fs.hpp"

using namespace berth;
using namespace berth::network;

namespace {

// Runs fn in a helper thread; exceptions become test failures (ASSERTs return from fn only).
void in_thread(const std::function<void()>& setup, const std::function<void()>& fn) {
  std::thread([&] {
    try {
      setup();
      fn();
    } catch (const std::exception& e) {
      ADD_FAILURE() << "exception: " << e.what();
    }
  }).join();
}

// A fresh, throwaway network namespace for the thread running fn; it goes away with the thread.
void in_scratch_netns(const std::function<void()>& fn) {
  in_thread(
      [] {
        if (::unshare(CLONE_NEWNET) != 0) throw_errno("unshare(CLONE_NEWNET)");
      },
      fn);
}

// fn runs in the namespace of netns_fd (for sockets, ioctls and /proc/thread-self/net there).
void in_netns(int netns_fd, const std::function<void()>& fn) {
  in_thread(
      [netns_fd] {
        if (::setns(netns_fd, CLONE_NEWNET) != 0) throw_errno("setns");
      },
      fn);
}

ino_t netns_inode(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw_errno("stat " + path);
  return st.st_ino;
}

// How many mounts sit on path in this mount namespace (field 5 of /proc/self/mountinfo).
int mount_count(const std::string& path) {
  std::istringstream in(read_file("/proc/self/mountinfo"));
  std::string line;
  int count = 0;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string id, parent, dev, root, mount_point;
    fields >> id >> parent >> dev >> root >> mount_point;
    if (mount_point == path) ++count;
  }
  return count;
}

bool is_mount_point(const std::string& path) { return mount_count(path) > 0; }

// Flags and MTU of a link, through an ioctl socket of the calling thread's namespace.
struct LinkInfo {
  bool exists = false;
  bool up = false;
  int mtu = 0;
  std::string mac;
};

LinkInfo link_info(const std::string& name) {
  UniqueFd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!sock) throw_errno("socket");
  LinkInfo info;
  ifreq req{};
  std::strncpy(req.ifr_name, name.c_str(), IFNAMSIZ - 1);
  if (::ioctl(sock.get(), SIOCGIFFLAGS, &req) != 0) {
    if (errno == ENODEV) return info;
    throw_errno("SIOCGIFFLAGS " + name);
  }
  info.exists = true;
  info.up = (req.ifr_flags & IFF_UP) != 0;
  if (::ioctl(sock.get(), SIOCGIFMTU, &req) != 0) throw_errno("SIOCGIFMTU " + name);
  info.mtu = req.ifr_mtu;
  if (::ioctl(sock.get(), SIOCGIFHWADDR, &req) != 0) throw_errno("SIOCGIFHWADDR " + name);
  char mac[18];
  const auto* b = reinterpret_cast<const unsigned char*>(req.ifr_hwaddr.sa_data);
  std::snprintf(mac, sizeof mac, "%02x:%02x:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3], b[4], b[5]);
  info.mac = mac;
  return info;
}

uint32_t ip4(const char* text) {
  in_addr a{};
  ::inet_pton(AF_INET, text, &a);
  return a.s_addr;
}

bool has_route(const std::vector<Route4>& routes, const char* dst, int prefix, const std::string& link) {
  return std::any_of(routes.begin(), routes.end(),
                     [&](const Route4& r) { return r.dst == ip4(dst) && r.prefix == prefix && r.link == link; });
}

// Runs fn and returns the berth::Error it throws (fails the test when it throws nothing).
template <typename Fn>
Error error_of(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "no error thrown";
  return Error("(no error)");
}

// A mkdtemp root; netns files go into its "netns" subdirectory, which create_netns() makes (and
// turns into a bind mount of itself). The destructor removes the files, that mount and the tree.
class NetnsDir {
 public:
  NetnsDir() {
    char tmpl[] = "/tmp/berth-netlink-test-XXXXXX";
    if (!::mkdtemp(tmpl)) throw_errno("mkdtemp");
    root_ = tmpl;
    dir_ = root_ + "/netns";
  }
  ~NetnsDir() {
    try {
      for (const std::string& p : made_) remove_netns(p);
      while (::umount2(dir_.c_str(), MNT_DETACH) == 0) {
      }
      remove_tree(root_);
    } catch (const std::exception& e) {
      ADD_FAILURE() << "cleanup: " << e.what();
    }
  }
  NetnsDir(const NetnsDir&) = delete;
  NetnsDir& operator=(const NetnsDir&) = delete;

  const std::string& dir() const { return dir_; }
  // Creates dir/name as a named netns (removed again by the destructor).
  std::string create(const std::string& name) {
    std::string path = dir_ + "/" + name;
    made_.push_back(path);
    create_netns(path);
    return path;
  }

 private:
  std::string root_, dir_;
  std::vector<std::string> made_;
};

// Deletes a link when the scope ends (the scratch namespace would take it along anyway).
class LinkGuard {
 public:
  LinkGuard(Netlink& nl, std::string name) : nl_(nl), name_(std::move(name)) {}
  ~LinkGuard() {
    try {
      nl_.delete_link(name_);
    } catch (const std::exception& e) {
      ADD_FAILURE() << "cleanup: " << e.what();
    }
  }

 private:
  Netlink& nl_;
  std::string name_;
};

class NetlinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (network namespaces, mounts)";
    int err = 0;
    std::thread([&] { err = ::unshare(CLONE_NEWNET) == 0 ? 0 : errno; }).join();
    if (err != 0) GTEST_SKIP() << "unshare(CLONE_NEWNET): " << std::strerror(err);
  }
};

}  // namespace

TEST_F(NetlinkTest, CreateAndRemoveNetnsLeaveNothing) {
  NetnsDir tmp;
  ino_t own = netns_inode("/proc/thread-self/ns/net");
  ASSERT_FALSE(path_exists(tmp.dir()));

  std::string path = tmp.create("ns-a");  // makes the parent too
  EXPECT_EQ(netns_inode("/proc/thread-self/ns/net"), own) << "the caller's netns must not change";
  EXPECT_TRUE(is_mount_point(path));
  EXPECT_TRUE(is_mount_point(tmp.dir())) << "parent made a (shared) mount point of itself";
  {
    UniqueFd fd = open_netns(path);
    EXPECT_NE(netns_inode(path), own);
    Netlink nl(fd.get());
    EXPECT_EQ(netns_inode("/proc/thread-self/ns/net"), own);
    EXPECT_TRUE(nl.link_exists("lo"));
    EXPECT_EQ(nl.links_with_prefix(""), std::vector<std::string>{"lo"}) << "a fresh namespace has only lo";
  }

  // An existing file is neither replaced nor removed.
  Error exists = error_of([&] { create_netns(path); });
  EXPECT_EQ(exists.errnum(), EEXIST);
  EXPECT_NE(std::string(exists.what()).find(path), std::string::npos) << exists.what();
  EXPECT_TRUE(is_mount_point(path));

  // A second namespace in the now shared directory: no second bind mount of the parent.
  std::string path2 = tmp.create("ns-b");
  EXPECT_NE(netns_inode(path2), netns_inode(path));
  EXPECT_EQ(mount_count(tmp.dir()), 1);

  remove_netns(path);
  remove_netns(path2);
  EXPECT_FALSE(path_exists(path));
  EXPECT_FALSE(path_exists(path2));
  EXPECT_FALSE(is_mount_point(path));
  EXPECT_FALSE(is_mount_point(path2));
  EXPECT_NO_THROW(remove_netns(path));  // missing is fine

  EXPECT_EQ(error_of([] { create_netns("relative/ns"); }).errnum(), EINVAL);
  EXPECT_FALSE(path_exists("relative/ns"));
}

TEST_F(NetlinkTest, OpenNetnsAndSetnsErrorsNameThePath) {
  Error missing = error_of([] { open_netns("/nonexistent/berth-netns"); });
  EXPECT_EQ(missing.errnum(), ENOENT);
  EXPECT_NE(std::string(missing.what()).find("/nonexistent/berth-netns"), std::string::npos) << missing.what();

  Error bad_fd = error_of([] { Netlink nl(-1); });
  EXPECT_EQ(bad_fd.errnum(), EBADF);
  EXPECT_NE(std::string(bad_fd.what()).find("setns"), std::string::npos) << bad_fd.what();

  // Not a network namespace.
  UniqueFd mnt = open_netns("/proc/self/ns/mnt");
  EXPECT_EQ(error_of([&] { Netlink nl(mnt.get()); }).errnum(), EINVAL);
}

TEST_F(NetlinkTest, BridgeIsCreatedUpWithItsMtu) {
  in_scratch_netns([] {
    Netlink nl;
    EXPECT_FALSE(nl.link_exists("br-t0"));
    nl.create_bridge("br-t0", 1400);
    LinkGuard guard(nl, "br-t0");
    EXPECT_TRUE(nl.link_exists("br-t0"));
    LinkInfo info = link_info("br-t0");
    EXPECT_TRUE(info.exists);
    EXPECT_TRUE(info.up);
    EXPECT_EQ(info.mtu, 1400);

    nl.create_bridge("br-t1", 0);  // kernel default MTU
    LinkGuard guard1(nl, "br-t1");
    EXPECT_EQ(link_info("br-t1").mtu, 1500);
    EXPECT_EQ(nl.links_with_prefix("br-t"), (std::vector<std::string>{"br-t0", "br-t1"}));

    nl.delete_link("br-t1");
    EXPECT_FALSE(nl.link_exists("br-t1"));
    EXPECT_FALSE(link_info("br-t1").exists);
    EXPECT_NO_THROW(nl.delete_link("br-t1"));  // missing is fine
  });
}

TEST_F(NetlinkTest, ErrorsNameTheOperationAndErrno) {
  in_scratch_netns([] {
    Netlink nl;
    nl.create_bridge("br-e", 0);
    LinkGuard guard(nl, "br-e");

    Error dup = error_of([&] { nl.create_bridge("br-e", 0); });
    EXPECT_STREQ(dup.what(), "netlink: create bridge br-e: File exists");
    EXPECT_EQ(dup.errnum(), EEXIST);

    Error no_link = error_of([&] { nl.set_master("nope0", "br-e"); });
    EXPECT_EQ(no_link.errnum(), ENODEV);
    EXPECT_NE(std::string(no_link.what()).find("nope0"), std::string::npos) << no_link.what();
    EXPECT_EQ(error_of([&] { nl.set_up("nope0"); }).errnum(), ENODEV);
    EXPECT_EQ(error_of([&] { nl.add_address("nope0", "10.9.0.1/24"); }).errnum(), ENODEV);

    // libnl would silently truncate a long name: refused before anything reaches the kernel.
    Error too_long = error_of([&] { nl.create_bridge("br-0123456789abcdef", 0); });
    EXPECT_EQ(too_long.errnum(), EINVAL);
    EXPECT_TRUE(nl.links_with_prefix("br-0").empty());
    EXPECT_EQ(error_of([&] { nl.rename("br-e", "a/b"); }).errnum(), EINVAL);

    EXPECT_EQ(error_of([&] { nl.add_address("br-e", "10.9.0.1/33"); }).errnum(), EINVAL);
    EXPECT_EQ(error_of([&] { nl.add_address("br-e", "10.9.0.x/24"); }).errnum(), EINVAL);
    EXPECT_EQ(error_of([&] { nl.add_default_route("not-an-ip", "br-e"); }).errnum(), EINVAL);
    EXPECT_EQ(error_of([&] { nl.set_mac("br-e", "02:42:ac:11:00"); }).errnum(), EINVAL);

    nl.add_address("br-e", "10.9.0.1/24");
    Error dup_addr = error_of([&] { nl.add_address("br-e", "10.9.0.1/24"); });
    EXPECT_EQ(dup_addr.errnum(), EEXIST);
    EXPECT_EQ(std::string(dup_addr.what()).rfind("netlink: add address 10.9.0.1/24 to br-e: File exists", 0), 0u)
        << dup_addr.what();

    // A gateway outside every connected subnet.
    Error unreachable = error_of([&] { nl.add_default_route("192.0.2.1", "br-e"); });
    EXPECT_NE(unreachable.errnum(), 0);
    EXPECT_EQ(std::string(unreachable.what()).rfind("netlink: add default route via 192.0.2.1 dev br-e: ", 0), 0u)
        << unreachable.what();
  });
}

TEST_F(NetlinkTest, VethPeerIsCreatedInTheOtherNamespace) {
  NetnsDir tmp;
  UniqueFd ns = open_netns(tmp.create("ns-a"));
  in_scratch_netns([&] {
    Netlink nl;
    nl.create_veth("vh-t1", "vp-t1", ns.get(), 1450);
    LinkGuard guard(nl, "vh-t1");
    EXPECT_TRUE(nl.link_exists("vh-t1"));
    EXPECT_FALSE(nl.link_exists("vp-t1")) << "the peer must not stay here";
    EXPECT_EQ(link_info("vh-t1").mtu, 1450);
    EXPECT_FALSE(link_info("vh-t1").up) << "create_veth leaves the host end down";

    Netlink inside(ns.get());
    EXPECT_TRUE(inside.link_exists("vp-t1"));
    inside.rename("vp-t1", "eth0");
    EXPECT_FALSE(inside.link_exists("vp-t1"));
    EXPECT_TRUE(inside.link_exists("eth0"));
    inside.set_mac("eth0", "02:42:ac:11:00:02");
    inside.set_up("eth0");
    in_netns(ns.get(), [] {
      LinkInfo info = link_info("eth0");
      EXPECT_TRUE(info.up);
      EXPECT_EQ(info.mtu, 1450);
      EXPECT_EQ(info.mac, "02:42:ac:11:00:02");
    });
    EXPECT_FALSE(nl.link_exists("eth0")) << "nothing leaked into this namespace";
  });
}

TEST_F(NetlinkTest, DeleteVethRemovesBothEnds) {
  NetnsDir tmp;
  UniqueFd ns = open_netns(tmp.create("ns-a"));
  in_scratch_netns([&] {
    Netlink nl;
    Netlink inside(ns.get());
    nl.create_veth("vh-t2", "vp-t2", ns.get(), 0);
    ASSERT_TRUE(inside.link_exists("vp-t2"));
    nl.delete_link("vh-t2");
    EXPECT_FALSE(nl.link_exists("vh-t2"));
    EXPECT_FALSE(inside.link_exists("vp-t2"));

    // Both ends here (peer_netns_fd < 0), deleted through the peer.
    nl.create_veth("vh-t3", "vp-t3", -1, 0);
    EXPECT_TRUE(nl.link_exists("vp-t3"));
    nl.delete_link("vp-t3");
    EXPECT_TRUE(nl.links_with_prefix("v").empty());
  });
}

TEST_F(NetlinkTest, AddressesAndDefaultRouteInsideTheNamespace) {
  NetnsDir tmp;
  UniqueFd ns = open_netns(tmp.create("ns-a"));
  in_scratch_netns([&] {
    Netlink nl;
    nl.create_bridge("br-t5", 0);
    LinkGuard bridge(nl, "br-t5");
    nl.add_address("br-t5", "10.250.1.1/24");
    nl.create_veth("vh-t5", "eth0", ns.get(), 0);
    LinkGuard veth(nl, "vh-t5");
    nl.set_master("vh-t5", "br-t5");
    nl.set_up("vh-t5");
    EXPECT_TRUE(has_route(nl.routes4(), "10.250.1.0", 24, "br-t5"));

    Netlink inside(ns.get());
    inside.add_address("eth0", "10.250.1.2/24");
    inside.add_address("eth0", "fd00:250::2/64");
    inside.set_up("eth0");
    inside.add_default_route("10.250.1.1", "eth0");

    std::vector<Route4> routes = inside.routes4();
    EXPECT_TRUE(has_route(routes, "0.0.0.0", 0, "eth0"));
    EXPECT_TRUE(has_route(routes, "10.250.1.0", 24, "eth0"));
    EXPECT_EQ(routes.size(), 2u) << "main table only (local routes live in table local)";
    EXPECT_EQ(error_of([&] { inside.add_default_route("10.250.1.1", "eth0"); }).errnum(), EEXIST);
    EXPECT_FALSE(has_route(nl.routes4(), "0.0.0.0", 0, "br-t5")) << "the route went into the namespace only";

    in_netns(ns.get(), [] {
      // The IPv4 address is usable (bind succeeds only for a local address) ...
      UniqueFd s(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
      sockaddr_in sa{};
      sa.sin_family = AF_INET;
      sa.sin_addr.s_addr = ip4("10.250.1.2");
      EXPECT_EQ(::bind(s.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0) << std::strerror(errno);
      // ... and the IPv6 one is listed (still tentative while DAD runs, so not bindable yet).
      std::string inet6 = read_file("/proc/thread-self/net/if_inet6");
      EXPECT_NE(inet6.find("fd000250000000000000000000000002 "), std::string::npos) << inet6;
    });
  });
}

TEST_F(NetlinkTest, TrafficFlowsBetweenTwoNamespacesOverABridge) {
  NetnsDir tmp;
  UniqueFd ns_a = open_netns(tmp.create("ns-a"));
  UniqueFd ns_b = open_netns(tmp.create("ns-b"));
  in_scratch_netns([&] {
    Netlink nl;
    nl.create_bridge("br-t4", 0);
    LinkGuard bridge(nl, "br-t4");
    struct Side {
      int fd;
      const char* host;
      const char* peer;
      const char* cidr;
    };
    std::vector<std::unique_ptr<LinkGuard>> guards;
    for (const Side& side : {Side{ns_a.get(), "vh-t4a", "vp-t4a", "10.250.0.2/24"},
                             Side{ns_b.get(), "vh-t4b", "vp-t4b", "10.250.0.3/24"}}) {
      nl.create_veth(side.host, side.peer, side.fd, 0);
      guards.push_back(std::make_unique<LinkGuard>(nl, side.host));
      nl.set_master(side.host, "br-t4");
      nl.set_up(side.host);
      Netlink inside(side.fd);
      inside.rename(side.peer, "eth0");
      inside.add_address("eth0", side.cidr);
      inside.set_up("eth0");
      inside.set_up("lo");
    }

    // B listens on 10.250.0.3, A connects to it and they exchange bytes.
    std::promise<uint16_t> port_promise;
    std::future<uint16_t> port_future = port_promise.get_future();
    std::string received_by_b, received_by_a;
    const timeval timeout{10, 0};
    std::thread listener([&] {
      uint16_t port = 0;
      try {
        if (::setns(ns_b.get(), CLONE_NEWNET) != 0) throw_errno("setns b");
        UniqueFd ls(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        ::setsockopt(ls.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
        sockaddr_in sa{};
        sa.sin_family = AF_INET;
        sa.sin_addr.s_addr = ip4("10.250.0.3");
        if (::bind(ls.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) throw_errno("bind");
        if (::listen(ls.get(), 1) != 0) throw_errno("listen");
        socklen_t len = sizeof sa;
        ::getsockname(ls.get(), reinterpret_cast<sockaddr*>(&sa), &len);
        port = ntohs(sa.sin_port);
        port_promise.set_value(port);
        UniqueFd conn(::accept4(ls.get(), nullptr, nullptr, SOCK_CLOEXEC));
        if (!conn) throw_errno("accept");
        ::setsockopt(conn.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
        char buf[16];
        ssize_t n = ::read(conn.get(), buf, sizeof buf);
        if (n < 0) throw_errno("read in b");
        received_by_b.assign(buf, static_cast<size_t>(n));
        write_all(conn.get(), "pong from b", "write in b");
      } catch (const std::exception& e) {
        ADD_FAILURE() << "listener: " << e.what();
        if (port == 0) port_promise.set_value(0);
      }
    });
    uint16_t port = port_future.get();
    if (port != 0) {
      in_netns(ns_a.get(), [&] {
        UniqueFd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        ::setsockopt(s.get(), SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
        ::setsockopt(s.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
        sockaddr_in sa{};
        sa.sin_family = AF_INET;
        sa.sin_port = htons(port);
        sa.sin_addr.s_addr = ip4("10.250.0.3");
        if (::connect(s.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) throw_errno("connect from a");
        write_all(s.get(), "ping from a", "write in a");
        char buf[16];
        ssize_t n = ::read(s.get(), buf, sizeof buf);
        if (n < 0) throw_errno("read in a");
        received_by_a.assign(buf, static_cast<size_t>(n));
      });
    }
    listener.join();
    EXPECT_EQ(received_by_b, "ping from a");
    EXPECT_EQ(received_by_a, "pong from b");

    // The bridge, not the scratch namespace's routing, carried it: B's address is not local here.
    EXPECT_FALSE(has_route(nl.routes4(), "10.250.0.0", 24, "br-t4"));
  });
}

TEST_F(NetlinkTest, SysctlWritesTheCallersNamespaceOnly) {
  std::string host_before = read_file("/proc/sys/net/ipv4/ip_forward");
  in_scratch_netns([&] {
    // Flip whatever the new namespace started with (it may inherit the host's value).
    std::string flipped = read_file("/proc/sys/net/ipv4/ip_forward") == "1\n" ? "0" : "1";
    write_net_sysctl("ipv4/ip_forward", flipped);
    EXPECT_EQ(read_file("/proc/sys/net/ipv4/ip_forward"), flipped + "\n");
    Error missing = error_of([] { write_net_sysctl("ipv4/no_such_key", "1"); });
    EXPECT_EQ(missing.errnum(), ENOENT);
    EXPECT_NE(std::string(missing.what()).find("ipv4/no_such_key"), std::string::npos) << missing.what();
    EXPECT_EQ(error_of([] { write_net_sysctl("../kernel/hostname", "x"); }).errnum(), EINVAL);
    EXPECT_EQ(error_of([] { write_net_sysctl("/ipv4/ip_forward", "1"); }).errnum(), EINVAL);
  });
  EXPECT_EQ(read_file("/proc/sys/net/ipv4/ip_forward"), host_before);
}
