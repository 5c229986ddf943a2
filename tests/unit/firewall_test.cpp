// The nftables firewall on real kernels (root only), never on the host's ruleset: every Firewall
// lives in a thread that first moved to a fresh network namespace (libnftables binds its netlink
// socket when the context is created, so the Firewall is constructed inside that thread). Each test
// ends by checking that the host has no table of the test's name.
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <net/if.h>
#include <netinet/in.h>
#include <nftables/libnftables.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "network/firewall.hpp"
#include "util/error.hpp"
#include "util/fd.hpp"

namespace net = berth::network;
using berth::UniqueFd;

namespace {

const char* kTable = "berth_test";

// A thread in its own network namespace, running the functions given to run() one at a time.
class Netns {
 public:
  Netns() {
    std::promise<int> started;
    auto result = started.get_future();
    thread_ = std::thread([this, &started] {
      if (::unshare(CLONE_NEWNET) != 0) {
        started.set_value(errno);
        return;
      }
      tid_ = static_cast<pid_t>(::syscall(SYS_gettid));
      started.set_value(0);
      loop();
    });
    if (int err = result.get(); err != 0) {
      thread_.join();
      berth::throw_errno("unshare(CLONE_NEWNET)", err);
    }
  }
  ~Netns() {
    {
      std::lock_guard l(mu_);
      quit_ = true;
    }
    cv_.notify_one();
    thread_.join();
  }
  pid_t tid() const { return tid_; }

  // Runs fn in the namespace's thread; its exception, if any, is rethrown here.
  void run(std::function<void()> fn) {
    std::packaged_task<void()> task(std::move(fn));
    auto done = task.get_future();
    {
      std::lock_guard l(mu_);
      tasks_.push_back(std::move(task));
    }
    cv_.notify_one();
    done.get();
  }

 private:
  void loop() {
    for (;;) {
      std::packaged_task<void()> task;
      {
        std::unique_lock l(mu_);
        cv_.wait(l, [&] { return quit_ || !tasks_.empty(); });
        if (tasks_.empty()) return;
        task = std::move(tasks_.front());
        tasks_.pop_front();
      }
      task();
    }
  }
  std::thread thread_;
  pid_t tid_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::packaged_task<void()>> tasks_;
  bool quit_ = false;
};

bool can_unshare_net() {
  if (::geteuid() != 0) return false;
  try {
    Netns ns;
    return true;
  } catch (const berth::Error&) {
    return false;
  }
}

// nft commands in the calling thread's namespace, through a context of its own.
std::string nft(const std::string& cmd) {
  nft_ctx* ctx = nft_ctx_new(NFT_CTX_DEFAULT);
  nft_ctx_buffer_output(ctx);
  nft_ctx_buffer_error(ctx);
  int rc = nft_run_cmd_from_buffer(ctx, cmd.c_str());
  std::string out = nft_ctx_get_output_buffer(ctx);
  std::string err = nft_ctx_get_error_buffer(ctx);
  nft_ctx_free(ctx);
  if (rc != 0) throw berth::Error("nft " + cmd + ": " + err);
  return out;
}

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// The host (the test's main thread) has no table of the test's name.
void expect_host_untouched() {
  std::string tables = nft("list tables");
  EXPECT_FALSE(has(tables, std::string("table ip ") + kTable)) << tables;
}

class FirewallTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!can_unshare_net()) GTEST_SKIP() << "needs root and network namespaces";
  }
  void TearDown() override {
    if (!IsSkipped()) expect_host_untouched();
  }
};

TEST_F(FirewallTest, EnsureCreatesTheWholeTableOnce) {
  Netns ns;
  ns.run([] {
    net::Firewall fw(kTable);
    EXPECT_FALSE(fw.exists());
    fw.ensure();
    EXPECT_TRUE(fw.exists());
    std::string t = nft(std::string("list table ip ") + kTable);
    for (const char* part : {
             "set bridges {\n\t\ttype ifname\n",
             "set internal_bridges {\n\t\ttype ifname\n",
             "set same_bridge {\n\t\ttype ifname . ifname\n",
             "set bridge_subnets {\n\t\ttype ipv4_addr . ifname\n\t\tflags interval\n",
             "set masq_subnets {\n\t\ttype ipv4_addr\n\t\tflags interval\n",
             "map ports_any {\n\t\ttype inet_proto . inet_service : ipv4_addr . inet_service\n",
             "map ports_ip {\n\t\ttype ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service\n",
             "chain ports {\n\t\tdnat ip to ip daddr . meta l4proto . th dport map @ports_ip\n"
             "\t\tdnat ip to meta l4proto . th dport map @ports_any\n\t}",
             "chain prerouting {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n"
             "\t\tfib daddr type local jump ports\n\t}",
             "chain output {\n\t\ttype nat hook output priority -100; policy accept;\n"
             "\t\tfib daddr type local jump ports\n\t}",
             "chain postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n"
             "\t\tip saddr 127.0.0.0/8 oifname @bridges masquerade\n"
             "\t\tip saddr . oifname @bridge_subnets ct status dnat masquerade\n"
             "\t\tip saddr @masq_subnets oifname != @bridges masquerade\n\t}",
             "chain forward {\n\t\ttype filter hook forward priority filter; policy accept;\n"
             "\t\tct state established,related accept\n"
             "\t\tiifname . oifname @same_bridge accept\n"
             "\t\tiifname @internal_bridges drop\n"
             "\t\toifname @internal_bridges drop\n"
             "\t\toifname @bridges ct status dnat accept\n"
             "\t\tiifname @bridges oifname @bridges drop\n"
             "\t\tiifname @bridges accept\n"
             "\t\toifname @bridges drop\n\t}",
         })
      EXPECT_TRUE(has(t, part)) << "missing:\n" << part << "\nin:\n" << t;

    fw.add_network({"brx", "172.30.0.0/16", false});
    fw.ensure();  // the table exists: nothing is added, nothing is lost
    std::string again = nft(std::string("list table ip ") + kTable);
    EXPECT_TRUE(has(again, "elements = { \"brx\" }")) << again;
    fw.remove_network({"brx", "172.30.0.0/16", false});
    EXPECT_EQ(nft(std::string("list table ip ") + kTable), t);  // no rule was doubled
    // A second Firewall on the same namespace sees the table too.
    net::Firewall other(kTable);
    EXPECT_TRUE(other.exists());
    other.ensure();
  });
}

TEST_F(FirewallTest, EnsureLeavesOtherTablesAlone) {
  Netns ns;
  ns.run([] {
    nft("add table ip other\nadd chain ip other c\n");
    net::Firewall fw(kTable);
    fw.ensure();
    fw.delete_table();
    EXPECT_FALSE(fw.exists());
    EXPECT_TRUE(has(nft("list tables"), "table ip other"));
  });
}

TEST_F(FirewallTest, NetworksComeAndGoAsSetElements) {
  Netns ns;
  ns.run([] {
    net::Firewall fw(kTable);
    fw.ensure();
    auto list = [](const char* set) { return nft(std::string("list set ip ") + kTable + " " + set); };
    fw.add_network({"br-a", "172.18.0.1/16", false});  // host bits are cleared
    fw.add_network({"br-a", "172.18.0.0/16", false});  // twice is fine
    fw.add_network({"br-i", "172.19.5.0/24", true});
    EXPECT_TRUE(has(list("bridges"), "\"br-a\"")) << list("bridges");
    EXPECT_TRUE(has(list("bridges"), "\"br-i\"")) << list("bridges");
    EXPECT_TRUE(has(list("same_bridge"), "\"br-a\" . \"br-a\"")) << list("same_bridge");
    EXPECT_TRUE(has(list("same_bridge"), "\"br-i\" . \"br-i\"")) << list("same_bridge");
    EXPECT_TRUE(has(list("internal_bridges"), "elements = { \"br-i\" }")) << list("internal_bridges");
    EXPECT_TRUE(has(list("masq_subnets"), "elements = { 172.18.0.0/16 }")) << list("masq_subnets");
    EXPECT_TRUE(has(list("bridge_subnets"), "172.18.0.0/16 . \"br-a\"")) << list("bridge_subnets");
    EXPECT_TRUE(has(list("bridge_subnets"), "172.19.5.0/24 . \"br-i\"")) << list("bridge_subnets");

    fw.remove_network({"br-a", "172.18.0.0/16", false});
    EXPECT_TRUE(has(list("bridges"), "elements = { \"br-i\" }")) << list("bridges");
    EXPECT_FALSE(has(list("same_bridge"), "br-a")) << list("same_bridge");
    EXPECT_FALSE(has(list("masq_subnets"), "elements")) << list("masq_subnets");
    EXPECT_FALSE(has(list("bridge_subnets"), "br-a")) << list("bridge_subnets");
    fw.remove_network({"br-a", "172.18.0.0/16", false});  // missing: not an error
    fw.remove_network({"br-i", "172.19.5.0/24", true});
    for (const char* set : {"bridges", "internal_bridges", "same_bridge", "bridge_subnets", "masq_subnets"})
      EXPECT_FALSE(has(list(set), "elements")) << list(set);
    fw.remove_network({"br-never", "10.99.0.0/16", false});

    // Removing from a missing table is not an error either.
    fw.delete_table();
    fw.remove_network({"br-a", "172.18.0.0/16", false});
    fw.remove_ports({{"tcp", "", 8080, "172.18.0.2", 80}});
  });
}

TEST_F(FirewallTest, PortsComeAndGoAsMapElements) {
  Netns ns;
  ns.run([] {
    net::Firewall fw(kTable);
    fw.ensure();
    auto list = [](const char* map) { return nft(std::string("list map ip ") + kTable + " " + map); };
    net::PortMapping web{"tcp", "", 8080, "172.18.0.2", 80};
    net::PortMapping dns{"udp", "0.0.0.0", 5353, "172.18.0.3", 53};
    net::PortMapping local{"tcp", "127.0.0.1", 8080, "172.18.0.4", 8000};
    fw.add_ports({web, dns, local});
    std::string any = list("ports_any");
    EXPECT_TRUE(has(any, "tcp . 8080 : 172.18.0.2 . 80")) << any;
    EXPECT_TRUE(has(any, "udp . 5353 : 172.18.0.3 . 53")) << any;
    EXPECT_TRUE(has(list("ports_ip"), "elements = { 127.0.0.1 . tcp . 8080 : 172.18.0.4 . 8000 }")) << list("ports_ip");

    // The same key again, with the same or another target: refused, naming the port; nothing changes.
    try {
      fw.add_ports({web});
      ADD_FAILURE() << "double add_ports succeeded";
    } catch (const berth::Error& e) {
      EXPECT_TRUE(has(e.what(), "add port tcp 8080: ")) << e.what();
      EXPECT_TRUE(has(e.what(), "File exists")) << e.what();
      EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
    }
    net::PortMapping other{"tcp", "", 7070, "172.18.0.9", 70};
    try {
      fw.add_ports({other, {"tcp", "", 8080, "172.18.0.9", 90}});
      ADD_FAILURE() << "add_ports over a published port succeeded";
    } catch (const berth::Error& e) {
      EXPECT_TRUE(has(e.what(), "add port tcp 8080: ")) << e.what();
    }
    try {
      fw.add_ports({other, {"tcp", "127.0.0.1", 8080, "172.18.0.9", 90}});
      ADD_FAILURE() << "add_ports over a published port succeeded";
    } catch (const berth::Error& e) {
      EXPECT_TRUE(has(e.what(), "add port tcp 127.0.0.1:8080: ")) << e.what();
    }
    EXPECT_THROW(fw.add_ports({other, other}), berth::Error);
    any = list("ports_any");
    EXPECT_FALSE(has(any, "7070")) << "a failed batch left an element:\n" << any;
    EXPECT_TRUE(has(any, "tcp . 8080 : 172.18.0.2 . 80")) << any;

    // Removing a mapping whose key another mapping holds leaves that one alone.
    fw.remove_ports({{"tcp", "", 8080, "172.18.0.9", 90}});
    EXPECT_TRUE(has(list("ports_any"), "tcp . 8080 : 172.18.0.2 . 80")) << list("ports_any");

    fw.remove_ports({web, other});  // other was never added
    any = list("ports_any");
    EXPECT_FALSE(has(any, "8080")) << any;
    EXPECT_TRUE(has(any, "udp . 5353")) << any;
    fw.remove_ports({web, dns, local});
    EXPECT_FALSE(has(list("ports_any"), "elements")) << list("ports_any");
    EXPECT_FALSE(has(list("ports_ip"), "elements")) << list("ports_ip");
    fw.remove_ports({web, dns, local});
    fw.add_ports({web});  // free again
  });
}

TEST_F(FirewallTest, BadInputIsRefusedBeforeNft) {
  Netns ns;
  ns.run([] {
    EXPECT_THROW(net::Firewall("bad name"), berth::Error);
    net::Firewall fw(kTable);
    fw.ensure();
    EXPECT_THROW(fw.add_network({"br\" }; flush ruleset; #", "10.0.0.0/8", false}), berth::Error);
    EXPECT_THROW(fw.add_network({"br0", "10.0.0.0/33", false}), berth::Error);
    EXPECT_THROW(fw.add_network({"br0", "", false}), berth::Error);
    EXPECT_THROW(fw.add_ports({{"sctp", "", 80, "10.0.0.2", 80}}), berth::Error);
    EXPECT_THROW(fw.add_ports({{"tcp", "::1", 80, "10.0.0.2", 80}}), berth::Error);
    EXPECT_THROW(fw.add_ports({{"tcp", "", 0, "10.0.0.2", 80}}), berth::Error);
    EXPECT_THROW(fw.add_ports({{"tcp", "", 80, "10.0.0.2; flush ruleset", 80}}), berth::Error);
    EXPECT_TRUE(fw.exists());
    fw.delete_table();
    fw.delete_table();  // missing: not an error
    EXPECT_FALSE(fw.exists());
  });
}

// --- traffic -------------------------------------------------------------------------------------

void sh(const std::string& cmd) {
  int rc = std::system(cmd.c_str());
  if (rc != 0) throw berth::Error("command failed (" + std::to_string(rc) + "): " + cmd);
}

void write_file(const std::string& path, const std::string& value) {
  std::ofstream f(path);
  f << value;
  f.close();
  if (!f) throw berth::Error("cannot write " + path);
}

std::string read_file(const std::string& path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

sockaddr_in addr(const char* ip, uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  inet_pton(AF_INET, ip, &a.sin_addr);
  return a;
}

std::string ip_of(const sockaddr_in& a) {
  char buf[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &a.sin_addr, buf, sizeof buf);
  return buf;
}

UniqueFd bound(int type, const char* ip, uint16_t port) {
  UniqueFd fd(::socket(AF_INET, type | SOCK_CLOEXEC, 0));
  int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a = addr(ip, port);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) berth::throw_errno("bind");
  if (type == SOCK_STREAM && ::listen(fd.get(), 16) != 0) berth::throw_errno("listen");
  return fd;
}

// A TCP connection from the calling thread's namespace: the socket, or the errno of the failure
// (ETIMEDOUT when nothing answered within timeout_ms).
struct Conn {
  UniqueFd fd;
  int err = 0;
};
Conn connect_to(const char* ip, uint16_t port, int timeout_ms = 1500) {
  Conn c;
  c.fd.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  sockaddr_in a = addr(ip, port);
  if (::connect(c.fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 && errno != EINPROGRESS) {
    c.err = errno;
    return c;
  }
  pollfd p{c.fd.get(), POLLOUT, 0};
  if (::poll(&p, 1, timeout_ms) != 1) {
    c.err = ETIMEDOUT;
    return c;
  }
  socklen_t len = sizeof c.err;
  ::getsockopt(c.fd.get(), SOL_SOCKET, SO_ERROR, &c.err, &len);
  if (c.err == 0) ::fcntl(c.fd.get(), F_SETFL, 0);
  return c;
}

// The client sends a line; the listener accepts it, reads the line and answers "pong:<line>" then
// closes. Returns what the client read and the peer address the listener saw.
struct Exchange {
  std::string reply;
  std::string peer;
};
Exchange exchange(int client, int listener, const std::string& line) {
  timeval tv{2, 0};
  ::setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (::write(client, line.data(), line.size()) != static_cast<ssize_t>(line.size())) berth::throw_errno("write");
  pollfd p{listener, POLLIN, 0};
  if (::poll(&p, 1, 2000) != 1) throw berth::Error("no connection reached the listener");
  sockaddr_in peer{};
  socklen_t len = sizeof peer;
  UniqueFd conn(::accept4(listener, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_CLOEXEC));
  if (!conn) berth::throw_errno("accept");
  ::setsockopt(conn.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string got;
  char buf[256];
  while (got.find('\n') == std::string::npos) {
    ssize_t n = ::read(conn.get(), buf, sizeof buf);
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
  }
  std::string answer = "pong:" + got;
  if (::write(conn.get(), answer.data(), answer.size()) != static_cast<ssize_t>(answer.size()))
    berth::throw_errno("write");
  conn.reset();
  Exchange ex;
  ex.peer = ip_of(peer);
  for (;;) {
    ssize_t n = ::read(client, buf, sizeof buf);
    if (n <= 0) break;
    ex.reply.append(buf, static_cast<size_t>(n));
  }
  return ex;
}

// "host" is the engine's namespace (bridge brt0 10.251.0.1/24, uplink vo0 10.252.0.1/24),
// "ctr" a container on brt0 (vc1 10.251.0.2/24), "out" a machine outside (vo1 10.252.0.2/24);
// later "other", a container on a second network (brt1 10.253.0.1/24, vd1 10.253.0.2/24).
TEST_F(FirewallTest, PublishedPortsCarryTraffic) {
  if (::access("/usr/sbin/ip", X_OK) != 0 && ::access("/sbin/ip", X_OK) != 0) GTEST_SKIP() << "needs ip(8)";
  Netns host, ctr, out;
  std::unique_ptr<net::Firewall> fw;
  UniqueFd web, web_dgram, outside;
  host.run([&] {
    sh("ip link set lo up");
    sh("ip link add brt0 type bridge && ip addr add 10.251.0.1/24 dev brt0 && ip link set brt0 up");
    sh("ip link add vc0 type veth peer name vc1 netns " + std::to_string(ctr.tid()));
    // Hairpin mode on the container's port, as the engine sets it: with br_netfilter loaded, a
    // container's packets to its own published port are DNATed at the bridge and must go back out
    // the port they came in.
    sh("ip link set vc0 master brt0 && ip link set vc0 type bridge_slave hairpin on && ip link set vc0 up");
    sh("ip link add vo0 type veth peer name vo1 netns " + std::to_string(out.tid()));
    sh("ip addr add 10.252.0.1/24 dev vo0 && ip link set vo0 up");
    write_file("/proc/sys/net/ipv4/ip_forward", "1");
    write_file("/proc/sys/net/ipv4/conf/brt0/route_localnet", "1");
    EXPECT_EQ(read_file("/proc/sys/net/ipv4/ip_forward"), "1\n");
    EXPECT_EQ(read_file("/proc/sys/net/ipv4/conf/brt0/route_localnet"), "1\n");
    fw = std::make_unique<net::Firewall>(kTable);
    fw->ensure();
    fw->add_network({"brt0", "10.251.0.0/24", false});
    fw->add_ports({{"tcp", "", 18080, "10.251.0.2", 80},
                   {"tcp", "10.252.0.1", 18081, "10.251.0.2", 80},
                   {"udp", "", 15353, "10.251.0.2", 53}});
  });
  ctr.run([&] {
    sh("ip link set lo up && ip addr add 10.251.0.2/24 dev vc1 && ip link set vc1 up");
    sh("ip route add default via 10.251.0.1");
    web = bound(SOCK_STREAM, "0.0.0.0", 80);
    web_dgram = bound(SOCK_DGRAM, "0.0.0.0", 53);
  });
  // /proc/sys/net follows the namespace of the thread that opens it.
  EXPECT_NE(::access("/proc/sys/net/ipv4/conf/brt0", F_OK), 0);
  out.run([&] {
    sh("ip link set lo up && ip addr add 10.252.0.2/24 dev vo1 && ip link set vo1 up");
    sh("ip route add default via 10.252.0.1");
    outside = bound(SOCK_STREAM, "10.252.0.2", 9000);
  });

  // From outside to the published port: the container sees the real client address.
  Conn c;
  for (int i = 0; i < 5; ++i) {  // the links may take a moment to come up
    out.run([&] { c = connect_to("10.252.0.1", 18080); });
    if (c.err != ETIMEDOUT) break;
  }
  ASSERT_EQ(c.err, 0) << strerror(c.err);
  Exchange ex = exchange(c.fd.get(), web.get(), "from outside\n");
  EXPECT_EQ(ex.reply, "pong:from outside\n");
  EXPECT_EQ(ex.peer, "10.252.0.2");

  // From the host to its bridge address: the source is the host's own address.
  host.run([&] { c = connect_to("10.251.0.1", 18080); });
  ASSERT_EQ(c.err, 0) << strerror(c.err);
  sockaddr_in self{};
  socklen_t len = sizeof self;
  ::getsockname(c.fd.get(), reinterpret_cast<sockaddr*>(&self), &len);
  ex = exchange(c.fd.get(), web.get(), "from host\n");
  EXPECT_EQ(ex.reply, "pong:from host\n");
  EXPECT_EQ(ex.peer, ip_of(self));
  EXPECT_EQ(ex.peer, "10.251.0.1");

  // From the host to 127.0.0.1: masqueraded to the bridge address.
  host.run([&] { c = connect_to("127.0.0.1", 18080); });
  ASSERT_EQ(c.err, 0) << strerror(c.err);
  ex = exchange(c.fd.get(), web.get(), "from loopback\n");
  EXPECT_EQ(ex.reply, "pong:from loopback\n");
  EXPECT_EQ(ex.peer, "10.251.0.1");

  // Hairpin: the container to its own published port through the host.
  ctr.run([&] { c = connect_to("10.251.0.1", 18080); });
  ASSERT_EQ(c.err, 0) << strerror(c.err);
  ex = exchange(c.fd.get(), web.get(), "hairpin\n");
  EXPECT_EQ(ex.reply, "pong:hairpin\n");
  EXPECT_EQ(ex.peer, "10.251.0.1");

  // A port published on one host address only.
  out.run([&] { c = connect_to("10.252.0.1", 18081); });
  ASSERT_EQ(c.err, 0) << strerror(c.err);
  ex = exchange(c.fd.get(), web.get(), "by address\n");
  EXPECT_EQ(ex.reply, "pong:by address\n");
  EXPECT_EQ(ex.peer, "10.252.0.2");
  out.run([&] { c = connect_to("10.251.0.1", 18081); });
  EXPECT_EQ(c.err, ECONNREFUSED) << strerror(c.err);

  // UDP.
  out.run([&] {
    UniqueFd u(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    sockaddr_in to = addr("10.252.0.1", 15353);
    ASSERT_EQ(::sendto(u.get(), "dgram", 5, 0, reinterpret_cast<sockaddr*>(&to), sizeof to), 5);
  });
  pollfd p{web_dgram.get(), POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 2000), 1);
  char buf[16];
  sockaddr_in from{};
  len = sizeof from;
  ssize_t n = ::recvfrom(web_dgram.get(), buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &len);
  EXPECT_EQ(std::string(buf, static_cast<size_t>(std::max<ssize_t>(n, 0))), "dgram");
  EXPECT_EQ(ip_of(from), "10.252.0.2");

  // The container reaches the outside, masqueraded to the host's address.
  ctr.run([&] { c = connect_to("10.252.0.2", 9000); });
  ASSERT_EQ(c.err, 0) << strerror(c.err);
  ex = exchange(c.fd.get(), outside.get(), "outbound\n");
  EXPECT_EQ(ex.reply, "pong:outbound\n");
  EXPECT_EQ(ex.peer, "10.252.0.1");

  // Nothing reaches the container from outside unless published.
  out.run([&] { c = connect_to("10.251.0.2", 80, 500); });
  EXPECT_EQ(c.err, ETIMEDOUT) << strerror(c.err);

  // A second network, brt1 10.253.0.0/24 with container "other" (10.253.0.2), first internal.
  Netns other;
  UniqueFd other_web;
  host.run([&] {
    sh("ip link add brt1 type bridge && ip addr add 10.253.0.1/24 dev brt1 && ip link set brt1 up");
    sh("ip link add vd0 type veth peer name vd1 netns " + std::to_string(other.tid()));
    sh("ip link set vd0 master brt1 && ip link set vd0 up");
    fw->add_network({"brt1", "10.253.0.0/24", true});
  });
  other.run([&] {
    sh("ip link set lo up && ip addr add 10.253.0.2/24 dev vd1 && ip link set vd1 up");
    sh("ip route add default via 10.253.0.1");
    other_web = bound(SOCK_STREAM, "0.0.0.0", 80);
  });
  // Internal: neither out nor in, nor to the other network.
  other.run([&] { c = connect_to("10.252.0.2", 9000, 500); });
  EXPECT_EQ(c.err, ETIMEDOUT) << strerror(c.err);
  other.run([&] { c = connect_to("10.251.0.2", 80, 500); });
  EXPECT_EQ(c.err, ETIMEDOUT) << strerror(c.err);
  ctr.run([&] { c = connect_to("10.253.0.2", 80, 500); });
  EXPECT_EQ(c.err, ETIMEDOUT) << strerror(c.err);
  // Made non-internal: out works, masqueraded; the two networks stay apart.
  host.run([&] {
    fw->remove_network({"brt1", "10.253.0.0/24", true});
    fw->add_network({"brt1", "10.253.0.0/24", false});
  });
  other.run([&] { c = connect_to("10.252.0.2", 9000); });
  ASSERT_EQ(c.err, 0) << strerror(c.err);
  ex = exchange(c.fd.get(), outside.get(), "outbound too\n");
  EXPECT_EQ(ex.reply, "pong:outbound too\n");
  EXPECT_EQ(ex.peer, "10.252.0.1");
  other.run([&] { c = connect_to("10.251.0.2", 80, 500); });
  EXPECT_EQ(c.err, ETIMEDOUT) << strerror(c.err);
  ctr.run([&] { c = connect_to("10.253.0.2", 80, 500); });
  EXPECT_EQ(c.err, ETIMEDOUT) << strerror(c.err);
  out.run([&] { c = connect_to("10.253.0.2", 80, 500); });
  EXPECT_EQ(c.err, ETIMEDOUT) << strerror(c.err);

  // Unpublished: the host has no listener of its own on the port.
  host.run([&] { fw->remove_ports({{"tcp", "", 18080, "10.251.0.2", 80}}); });
  out.run([&] { c = connect_to("10.252.0.1", 18080); });
  EXPECT_EQ(c.err, ECONNREFUSED) << strerror(c.err);

  // Without the network's elements the forward chain lets the direct connection through: the drop
  // above was the firewall's.
  host.run([&] { fw->remove_network({"brt0", "10.251.0.0/24", false}); });
  out.run([&] { c = connect_to("10.251.0.2", 80); });
  ASSERT_EQ(c.err, 0) << strerror(c.err);
  ex = exchange(c.fd.get(), web.get(), "direct\n");
  EXPECT_EQ(ex.reply, "pong:direct\n");
  EXPECT_EQ(ex.peer, "10.252.0.2");

  c.fd.reset();
  host.run([&] { fw.reset(); });
  EXPECT_EQ(::if_nametoindex("brt0"), 0u) << "the bridge leaked into the host namespace";
  EXPECT_EQ(::if_nametoindex("brt1"), 0u) << "the bridge leaked into the host namespace";
}

}  // namespace
