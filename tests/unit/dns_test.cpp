// The DNS responder (src/network/dns.hpp): wire format of queries and answers, robustness against
// hostile packets, and the UDP/TCP server with its forwarding to upstream resolvers, all on
// loopback.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "network/dns.hpp"
#include "util/error.hpp"
#include "util/fd.hpp"

namespace berth::network::dns {
namespace {

using Bytes = std::vector<uint8_t>;

void put16(Bytes& b, uint16_t v) {
  b.push_back(static_cast<uint8_t>(v >> 8));
  b.push_back(static_cast<uint8_t>(v));
}

void put_name(Bytes& b, const std::string& name) {
  size_t start = 0;
  while (start < name.size()) {
    size_t dot = name.find('.', start);
    if (dot == std::string::npos) dot = name.size();
    b.push_back(static_cast<uint8_t>(dot - start));
    b.insert(b.end(), name.begin() + static_cast<long>(start), name.begin() + static_cast<long>(dot));
    start = dot + 1;
  }
  b.push_back(0);
}

Bytes make_header(uint16_t id, uint16_t flags, uint16_t qdcount = 1, uint16_t arcount = 0) {
  Bytes b;
  put16(b, id);
  put16(b, flags);
  put16(b, qdcount);
  put16(b, 0);
  put16(b, 0);
  put16(b, arcount);
  return b;
}

Bytes make_query(uint16_t id, const std::string& name, uint16_t type, uint16_t flags = 0x0100) {
  Bytes b = make_header(id, flags);
  put_name(b, name);
  put16(b, type);
  put16(b, 1);
  return b;
}

// An EDNS OPT record in the additional section.
Bytes with_edns(Bytes q) {
  q[11] = 1;
  q.push_back(0);
  put16(q, 41);
  put16(q, 4096);
  for (int i = 0; i < 6; ++i) q.push_back(0);
  return q;
}

// A small response decoder, independent from the code under test.
struct Rr {
  std::string name;
  uint16_t type = 0;
  uint16_t klass = 0;
  uint32_t ttl = 0;
  std::string data;  // A/AAAA: the address; PTR: the name; else hex length
};

struct Response {
  uint16_t id = 0;
  uint16_t flags = 0;
  int rcode = 0;
  uint16_t qdcount = 0, ancount = 0, nscount = 0, arcount = 0;
  std::string qname;
  uint16_t qtype = 0;
  std::vector<Rr> answers;
};

bool decode_name(const Bytes& m, size_t& pos, std::string& out) {
  out.clear();
  size_t p = pos;
  bool jumped = false;
  for (int hops = 0; hops < 64; ++hops) {
    if (p >= m.size()) return false;
    uint8_t len = m[p];
    if ((len & 0xC0) == 0xC0) {
      if (p + 1 >= m.size()) return false;
      if (!jumped) pos = p + 2;
      jumped = true;
      p = static_cast<size_t>((len & 0x3F) << 8 | m[p + 1]);
      continue;
    }
    if (len == 0) {
      if (!jumped) pos = p + 1;
      return true;
    }
    if (p + 1 + len > m.size()) return false;
    if (!out.empty()) out += '.';
    out.append(reinterpret_cast<const char*>(&m[p + 1]), len);
    p += 1 + len;
  }
  return false;
}

std::optional<Response> decode(const Bytes& m) {
  if (m.size() < 12) return std::nullopt;
  auto get16 = [&](size_t p) { return static_cast<uint16_t>(m[p] << 8 | m[p + 1]); };
  Response r;
  r.id = get16(0);
  r.flags = get16(2);
  r.rcode = r.flags & 0xF;
  r.qdcount = get16(4);
  r.ancount = get16(6);
  r.nscount = get16(8);
  r.arcount = get16(10);
  size_t pos = 12;
  if (r.qdcount > 0) {
    if (!decode_name(m, pos, r.qname) || pos + 4 > m.size()) return std::nullopt;
    r.qtype = get16(pos);
    pos += 4;
  }
  for (int i = 0; i < r.ancount; ++i) {
    Rr rr;
    if (!decode_name(m, pos, rr.name) || pos + 10 > m.size()) return std::nullopt;
    rr.type = get16(pos);
    rr.klass = get16(pos + 2);
    rr.ttl = static_cast<uint32_t>(get16(pos + 4)) << 16 | get16(pos + 6);
    size_t len = get16(pos + 8);
    pos += 10;
    if (pos + len > m.size()) return std::nullopt;
    char buf[INET6_ADDRSTRLEN] = {};
    if (rr.type == kTypeA && len == 4) {
      inet_ntop(AF_INET, &m[pos], buf, sizeof buf);
      rr.data = buf;
    } else if (rr.type == kTypeAaaa && len == 16) {
      inet_ntop(AF_INET6, &m[pos], buf, sizeof buf);
      rr.data = buf;
    } else if (rr.type == kTypePtr) {
      size_t p = pos;
      if (!decode_name(m, p, rr.data) || p != pos + len) return std::nullopt;
    } else {
      rr.data = "len" + std::to_string(len);
    }
    pos += len;
    r.answers.push_back(rr);
  }
  if (pos != m.size()) return std::nullopt;
  return r;
}

std::optional<Query> parse(const Bytes& b) { return parse_query(b.data(), b.size()); }

// ---------------------------------------------------------------------------------------------
// Wire format.

TEST(DnsWire, ParsesQueryLowerCased) {
  Bytes q = make_query(0x1234, "WwW.Example.COM", kTypeAaaa);
  auto parsed = parse(q);
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->id, 0x1234);
  EXPECT_EQ(parsed->flags, 0x0100);
  EXPECT_EQ(parsed->question.name, "www.example.com");
  EXPECT_EQ(parsed->question.type, kTypeAaaa);
  EXPECT_EQ(parsed->question.klass, 1);
  // EDNS in the additional section is fine.
  auto edns = parse(with_edns(q));
  ASSERT_TRUE(edns);
  EXPECT_EQ(edns->question.name, "www.example.com");
  // The root name.
  auto root = parse(make_query(1, "", 2));
  ASSERT_TRUE(root);
  EXPECT_EQ(root->question.name, "");
}

TEST(DnsWire, RejectsMalformed) {
  Bytes good = make_query(7, "a.example", kTypeA);
  ASSERT_TRUE(parse(good));
  for (size_t n = 0; n < good.size(); ++n) EXPECT_FALSE(parse_query(good.data(), n)) << "truncated to " << n;
  EXPECT_FALSE(parse_query(nullptr, 0));

  Bytes long_label = make_query(7, std::string(64, 'a') + ".example", kTypeA);
  EXPECT_FALSE(parse(long_label));
  EXPECT_TRUE(parse(make_query(7, std::string(63, 'a') + ".example", kTypeA)));

  std::string label(63, 'b');
  EXPECT_FALSE(parse(make_query(7, label + "." + label + "." + label + "." + label + ".x", kTypeA)));  // > 255
  EXPECT_TRUE(parse(make_query(7, label + "." + label + "." + label + "." + std::string(61, 'c'), kTypeA)));

  // A pointer to itself (a loop) and a pointer forward.
  Bytes loop = make_header(7, 0x0100);
  loop.insert(loop.end(), {1, 'a', 0xC0, 12, 0, 1, 0, 1});
  EXPECT_FALSE(parse(loop));
  Bytes self = make_header(7, 0x0100);
  self.insert(self.end(), {0xC0, 12, 0, 1, 0, 1});
  EXPECT_FALSE(parse(self));
  Bytes forward = make_header(7, 0x0100);
  forward.insert(forward.end(), {0xC0, 14, 1, 'a', 0, 0, 1, 0, 1});
  EXPECT_FALSE(parse(forward));
  Bytes into_header = make_header(7, 0x0100);
  into_header.insert(into_header.end(), {0xC0, 4, 0, 1, 0, 1});
  EXPECT_FALSE(parse(into_header));
  Bytes ext_label = make_header(7, 0x0100);
  ext_label.insert(ext_label.end(), {0x41, 'a', 0, 0, 1, 0, 1});
  EXPECT_FALSE(parse(ext_label));

  Bytes response = make_query(7, "a.example", kTypeA, 0x8100);
  EXPECT_FALSE(parse(response));
  Bytes no_question = good;
  no_question[5] = 0;
  EXPECT_FALSE(parse(no_question));
  // A dot or a control byte inside a label.
  Bytes dotted = make_header(7, 0x0100);
  dotted.insert(dotted.end(), {3, 'a', '.', 'b', 0, 0, 1, 0, 1});
  EXPECT_FALSE(parse(dotted));
  Bytes nul = make_header(7, 0x0100);
  nul.insert(nul.end(), {2, 'a', 0, 0, 0, 1, 0, 1});
  EXPECT_FALSE(parse(nul));
}

TEST(DnsWire, NonZeroOpcodeParsesWithFlags) {
  auto q = parse(make_query(9, "x.test", kTypeA, 0x1000));  // opcode 2 (STATUS)
  ASSERT_TRUE(q);
  EXPECT_EQ((q->flags >> 11) & 0xF, 2);
}

TEST(DnsWire, BuildsAResponse) {
  Bytes q = with_edns(make_query(0xABCD, "Svc.Test", kTypeA));
  Bytes out = build_response(q.data(), q.size(), 0, {"10.0.0.1", "10.0.0.2"}, 600);
  auto r = decode(out);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->id, 0xABCD);
  EXPECT_TRUE(r->flags & 0x8000);        // QR
  EXPECT_EQ((r->flags >> 11) & 0xF, 0);  // opcode
  EXPECT_TRUE(r->flags & 0x0400);        // AA
  EXPECT_FALSE(r->flags & 0x0200);       // TC
  EXPECT_TRUE(r->flags & 0x0100);        // RD copied
  EXPECT_TRUE(r->flags & 0x0080);        // RA
  EXPECT_EQ(r->rcode, 0);
  EXPECT_EQ(r->qdcount, 1);
  EXPECT_EQ(r->arcount, 0);         // the OPT record is not echoed
  EXPECT_EQ(r->qname, "Svc.Test");  // the question verbatim, case kept
  EXPECT_EQ(r->qtype, kTypeA);
  ASSERT_EQ(r->answers.size(), 2u);
  EXPECT_EQ(r->answers[0].name, "Svc.Test");
  EXPECT_EQ(r->answers[0].type, kTypeA);
  EXPECT_EQ(r->answers[0].klass, 1);
  EXPECT_EQ(r->answers[0].ttl, 600u);
  EXPECT_EQ(r->answers[0].data, "10.0.0.1");
  EXPECT_EQ(r->answers[1].data, "10.0.0.2");
  // Answers name the question through a compression pointer.
  size_t question_end = 12 + 10 + 4;
  EXPECT_EQ(out[question_end], 0xC0);
  EXPECT_EQ(out[question_end + 1], 12);

  // RD clear stays clear; values of the wrong family are skipped.
  Bytes nord = make_query(1, "svc.test", kTypeA, 0);
  auto r2 = decode(build_response(nord.data(), nord.size(), 0, {"fd00::1", "bogus", "10.1.2.3"}, 5));
  ASSERT_TRUE(r2);
  EXPECT_FALSE(r2->flags & 0x0100);
  ASSERT_EQ(r2->answers.size(), 1u);
  EXPECT_EQ(r2->answers[0].data, "10.1.2.3");
}

TEST(DnsWire, BuildsAaaaAndPtr) {
  Bytes q6 = make_query(2, "v6.test", kTypeAaaa);
  auto r6 = decode(build_response(q6.data(), q6.size(), 0, {"fd00::1", "10.0.0.1"}, 60));
  ASSERT_TRUE(r6);
  ASSERT_EQ(r6->answers.size(), 1u);
  EXPECT_EQ(r6->answers[0].type, kTypeAaaa);
  EXPECT_EQ(r6->answers[0].data, "fd00::1");

  Bytes qp = make_query(3, "2.0.0.10.in-addr.arpa", kTypePtr);
  auto rp = decode(build_response(qp.data(), qp.size(), 0, {"web.test", "web.alias.test."}, 60));
  ASSERT_TRUE(rp);
  ASSERT_EQ(rp->answers.size(), 2u);
  EXPECT_EQ(rp->answers[0].name, "2.0.0.10.in-addr.arpa");
  EXPECT_EQ(rp->answers[0].type, kTypePtr);
  EXPECT_EQ(rp->answers[0].data, "web.test");
  EXPECT_EQ(rp->answers[1].data, "web.alias.test");
  // Invalid names are skipped.
  auto bad = decode(build_response(qp.data(), qp.size(), 0, {"a..b", std::string(64, 'x') + ".test"}, 60));
  ASSERT_TRUE(bad);
  EXPECT_TRUE(bad->answers.empty());
}

TEST(DnsWire, NxDomainNoDataAndServFail) {
  Bytes q = make_query(4, "nope.test", kTypeA);
  auto nx = decode(build_response(q.data(), q.size(), 3, {}, 60));
  ASSERT_TRUE(nx);
  EXPECT_EQ(nx->rcode, 3);
  EXPECT_EQ(nx->ancount, 0);
  EXPECT_EQ(nx->qname, "nope.test");
  EXPECT_TRUE(nx->flags & 0x0400);

  auto nodata = decode(build_response(q.data(), q.size(), 0, {}, 60));
  ASSERT_TRUE(nodata);
  EXPECT_EQ(nodata->rcode, 0);
  EXPECT_EQ(nodata->ancount, 0);

  Bytes mx = make_query(5, "svc.test", 15);  // MX: no records of that type here
  auto other = decode(build_response(mx.data(), mx.size(), 0, {"10.0.0.1"}, 60));
  ASSERT_TRUE(other);
  EXPECT_EQ(other->ancount, 0);

  auto sf = decode(build_response(q.data(), q.size(), 2, {}, 0));
  ASSERT_TRUE(sf);
  EXPECT_EQ(sf->rcode, 2);

  // Garbage with a header: FORMERR; without: nothing.
  Bytes garbage = make_header(6, 0x0100);
  garbage.push_back(0xC0);
  auto fe = decode(build_response(garbage.data(), garbage.size(), 0, {"10.0.0.1"}, 60));
  ASSERT_TRUE(fe);
  EXPECT_EQ(fe->id, 6);
  EXPECT_EQ(fe->rcode, 1);
  EXPECT_EQ(fe->qdcount, 0);
  EXPECT_TRUE(build_response(garbage.data(), 5, 0, {}, 60).empty());
}

TEST(DnsWire, TruncatesToMaxSize) {
  Bytes q = make_query(8, "many.test", kTypeA);
  std::vector<std::string> addrs;
  for (int i = 0; i < 100; ++i) addrs.push_back("10.0.1." + std::to_string(i));
  Bytes out = build_response(q.data(), q.size(), 0, addrs, 60, 512);
  EXPECT_LE(out.size(), 512u);
  auto r = decode(out);
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->flags & 0x0200);
  EXPECT_GT(r->answers.size(), 10u);
  EXPECT_LT(r->answers.size(), 100u);
  auto full = decode(build_response(q.data(), q.size(), 0, addrs, 60));
  ASSERT_TRUE(full);
  EXPECT_FALSE(full->flags & 0x0200);
  EXPECT_EQ(full->answers.size(), 100u);
}

TEST(DnsWire, FuzzDoesNotCrash) {
  std::mt19937 rng(12345);
  auto byte = [&] { return static_cast<uint8_t>(rng()); };
  Bytes buf;
  for (int i = 0; i < 20000; ++i) {
    buf.resize(rng() % 300);
    for (auto& b : buf) b = byte();
    if (buf.size() >= 6 && rng() % 2) {
      buf[2] &= 0x7F;  // QR clear
      buf[4] = 0;
      buf[5] = 1;  // QDCOUNT 1: get past the header checks
    }
    (void)parse_query(buf.data(), buf.size());
    (void)build_response(buf.data(), buf.size(), 0, {"10.0.0.1", "x.test"}, 1);
  }
  const Bytes base = with_edns(make_query(0x4242, "some.name.example.test", kTypeA));
  for (int i = 0; i < 20000; ++i) {
    buf = base;
    int mutations = 1 + static_cast<int>(rng() % 4);
    for (int m = 0; m < mutations; ++m) {
      switch (rng() % 5) {
        case 0:
          buf[rng() % buf.size()] = byte();
          break;
        case 1: {  // a compression pointer anywhere
          size_t p = 12 + rng() % (buf.size() - 13);
          buf[p] = static_cast<uint8_t>(0xC0 | (rng() % 4 == 0 ? byte() & 0x3F : 0));
          buf[p + 1] = byte();
          break;
        }
        case 2:
          buf.resize(rng() % buf.size() + 1);
          break;
        case 3:
          buf.insert(buf.begin() + static_cast<long>(rng() % buf.size()), byte());
          break;
        default:  // a label length anywhere in the name
          buf[12 + rng() % std::min<size_t>(buf.size() - 12, 24)] = byte() & 0x7F;
          break;
      }
      if (buf.size() < 14) buf.resize(14, 0);
    }
    auto q = parse_query(buf.data(), buf.size());
    if (q) {
      EXPECT_LE(q->question.name.size(), 254u);
      for (char c : q->question.name) EXPECT_FALSE(c >= 'A' && c <= 'Z');
    }
    Bytes out = build_response(buf.data(), buf.size(), 0, {"10.0.0.1", "fd00::2", "x.test"}, 1);
    if (q) {
      EXPECT_TRUE(decode(out)) << "iteration " << i;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The server.

struct Sock {
  UniqueFd fd;
  uint16_t port = 0;
};

Sock udp_socket(int family = AF_INET) {
  Sock s;
  s.fd.reset(::socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!s.fd) throw_errno("socket");
  sockaddr_storage ss{};
  socklen_t len;
  if (family == AF_INET) {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    len = sizeof *a;
  } else {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_addr = in6addr_loopback;
    len = sizeof *a;
  }
  if (::bind(s.fd.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0) throw_errno("bind");
  len = sizeof ss;
  ::getsockname(s.fd.get(), reinterpret_cast<sockaddr*>(&ss), &len);
  s.port = ntohs(family == AF_INET ? reinterpret_cast<sockaddr_in*>(&ss)->sin_port
                                   : reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
  return s;
}

sockaddr_in loopback(uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  return a;
}

bool wait_readable(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, timeout_ms) == 1;
}

// A resolver that answers every A query with 192.0.2.53 and remembers the names it saw.
class FakeUpstream {
 public:
  explicit FakeUpstream(int family = AF_INET) : sock_(udp_socket(family)) {
    thread_ = std::thread([this] { loop(); });
  }
  ~FakeUpstream() {
    stop_ = true;
    thread_.join();
  }
  uint16_t port() const { return sock_.port; }
  std::vector<std::string> names() {
    std::lock_guard lock(mu_);
    return names_;
  }

 private:
  void loop() {
    uint8_t buf[4096];
    while (!stop_) {
      if (!wait_readable(sock_.fd.get(), 50)) continue;
      sockaddr_storage from{};
      socklen_t len = sizeof from;
      ssize_t n = ::recvfrom(sock_.fd.get(), buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &len);
      if (n <= 0) continue;
      auto q = parse_query(buf, static_cast<size_t>(n));
      if (!q) continue;
      {
        std::lock_guard lock(mu_);
        names_.push_back(q->question.name);
      }
      Bytes out = build_response(buf, static_cast<size_t>(n), 0, {"192.0.2.53"}, 30);
      ::sendto(sock_.fd.get(), out.data(), out.size(), 0, reinterpret_cast<sockaddr*>(&from), len);
    }
  }

  Sock sock_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mu_;
  std::vector<std::string> names_;
};

class FakeBackend : public Backend {
 public:
  Answer lookup(const Question& q, const std::string& client_ip) override {
    last_name_ = q.name;
    last_client_ = client_ip;
    Answer a;
    if (q.name == "svc.test" && q.type == kTypeA) {
      a.kind = Answer::Kind::Records;
      a.records = {"10.0.0.1", "10.0.0.2", "10.0.0.3"};
    } else if (q.name == "v6.test" && q.type == kTypeAaaa) {
      a.kind = Answer::Kind::Records;
      a.records = {"fd00::1"};
    } else if (q.name == "1.0.0.10.in-addr.arpa" && q.type == kTypePtr) {
      a.kind = Answer::Kind::Records;
      a.records = {"svc.test"};
    } else if (q.name == "empty.test") {
      a.kind = Answer::Kind::Records;
    } else if (q.name == "unknown.test") {
      a.kind = Answer::Kind::NxDomain;
    } else if (q.name == "throws.test") {
      throw std::runtime_error("backend trouble");
    } else {
      a.kind = Answer::Kind::Forward;
    }
    return a;
  }
  std::vector<Upstream> upstreams(const std::string&) override {
    // Called right after lookup() for the same query: choose by its name.
    if (last_name_.starts_with("silent")) return {{"127.0.0.1", silent_port}};
    if (last_name_.starts_with("failover")) return {{"127.0.0.1", silent_port}, {"127.0.0.1", answer_port}};
    if (last_name_.starts_with("v6up")) return {{"::1", answer6_port.load()}};
    if (last_name_.starts_with("noup")) return {};
    return {{"127.0.0.1", answer_port}};
  }
  bool idle() override {
    ++idle_calls;
    return stop;
  }
  std::string last_client() {
    std::lock_guard lock(mu_);
    return last_client_;
  }

  uint16_t silent_port = 0;
  uint16_t answer_port = 0;
  std::atomic<uint16_t> answer6_port{0};
  std::atomic<bool> stop{false};
  std::atomic<int> idle_calls{0};

 private:
  std::string last_name_;
  std::mutex mu_;
  std::string last_client_;
};

constexpr int kUpstreamTimeoutMs = 400;

class DnsServer : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    upstream_ = new FakeUpstream();
    silent_ = new Sock(udp_socket());  // bound, never read: queries to it just time out
    backend_ = new FakeBackend();
    backend_->answer_port = upstream_->port();
    backend_->silent_port = silent_->port;
    ServerOptions options;
    options.address = "127.0.0.1";
    options.port = 0;
    options.upstream_timeout_ms = kUpstreamTimeoutMs;
    options.ttl = 42;
    auto ready = std::make_shared<std::promise<uint16_t>>();
    auto port = ready->get_future();
    auto reported = std::make_shared<std::atomic<bool>>(false);
    options.ready = [ready, reported](uint16_t p) {
      *reported = true;
      ready->set_value(p);
    };
    server_ = new std::thread([options, ready, reported] {
      try {
        serve(options, *backend_);
      } catch (...) {
        if (!*reported) ready->set_exception(std::current_exception());
      }
    });
    port_ = port.get();
  }
  static void TearDownTestSuite() {
    backend_->stop = true;
    server_->join();
    delete server_;
    delete backend_;
    delete silent_;
    delete upstream_;
  }

  static Bytes ask_udp(const Bytes& query, int timeout_ms = 3000) {
    Sock client = udp_socket();
    auto to = loopback(port_);
    EXPECT_EQ(::sendto(client.fd.get(), query.data(), query.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to),
              static_cast<ssize_t>(query.size()));
    if (!wait_readable(client.fd.get(), timeout_ms)) return {};
    Bytes buf(65536);
    ssize_t n = ::recv(client.fd.get(), buf.data(), buf.size(), 0);
    buf.resize(n > 0 ? static_cast<size_t>(n) : 0);
    return buf;
  }

  static UniqueFd tcp_connect() {
    UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    auto to = loopback(port_);
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&to), sizeof to) != 0) throw_errno("connect");
    timeval tv{3, 0};
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
  }

  static bool read_full(int fd, uint8_t* p, size_t n) {
    while (n > 0) {
      ssize_t r = ::recv(fd, p, n, 0);
      if (r <= 0) return false;
      p += r;
      n -= static_cast<size_t>(r);
    }
    return true;
  }

  static Bytes tcp_read_message(int fd) {
    uint8_t len[2];
    if (!read_full(fd, len, 2)) return {};
    Bytes m(static_cast<size_t>(len[0] << 8 | len[1]));
    if (!read_full(fd, m.data(), m.size())) return {};
    return m;
  }

  static void tcp_send(int fd, const Bytes& query) {
    Bytes framed;
    put16(framed, static_cast<uint16_t>(query.size()));
    framed.insert(framed.end(), query.begin(), query.end());
    ASSERT_EQ(::send(fd, framed.data(), framed.size(), MSG_NOSIGNAL), static_cast<ssize_t>(framed.size()));
  }

  static inline FakeUpstream* upstream_ = nullptr;
  static inline Sock* silent_ = nullptr;
  static inline FakeBackend* backend_ = nullptr;
  static inline std::thread* server_ = nullptr;
  static inline uint16_t port_ = 0;
};

std::vector<std::string> datas(const Response& r) {
  std::vector<std::string> out;
  for (const auto& a : r.answers) out.push_back(a.data);
  return out;
}

TEST_F(DnsServer, AnswersARecords) {
  auto r = decode(ask_udp(make_query(0x1111, "SVC.test", kTypeA)));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->id, 0x1111);
  EXPECT_EQ(r->rcode, 0);
  EXPECT_TRUE(r->flags & 0x0400);
  EXPECT_EQ(r->qname, "SVC.test");
  auto got = datas(*r);
  EXPECT_EQ(std::set<std::string>(got.begin(), got.end()), (std::set<std::string>{"10.0.0.1", "10.0.0.2", "10.0.0.3"}));
  EXPECT_EQ(r->answers[0].ttl, 42u);
  EXPECT_EQ(backend_->last_client(), "127.0.0.1");
}

TEST_F(DnsServer, RotatesRecordsBetweenQueries) {
  auto a = decode(ask_udp(make_query(1, "svc.test", kTypeA)));
  auto b = decode(ask_udp(make_query(2, "svc.test", kTypeA)));
  ASSERT_TRUE(a && b);
  ASSERT_EQ(a->answers.size(), 3u);
  ASSERT_EQ(b->answers.size(), 3u);
  EXPECT_NE(datas(*a), datas(*b));
}

TEST_F(DnsServer, AnswersAaaaAndPtr) {
  auto v6 = decode(ask_udp(make_query(3, "v6.test", kTypeAaaa)));
  ASSERT_TRUE(v6);
  EXPECT_EQ(datas(*v6), std::vector<std::string>{"fd00::1"});
  auto ptr = decode(ask_udp(make_query(4, "1.0.0.10.in-addr.arpa", kTypePtr)));
  ASSERT_TRUE(ptr);
  EXPECT_EQ(datas(*ptr), std::vector<std::string>{"svc.test"});
}

TEST_F(DnsServer, NxDomainAndNoData) {
  auto nx = decode(ask_udp(make_query(5, "unknown.test", kTypeA)));
  ASSERT_TRUE(nx);
  EXPECT_EQ(nx->rcode, 3);
  EXPECT_EQ(nx->id, 5);
  auto nodata = decode(ask_udp(make_query(6, "empty.test", kTypeA)));
  ASSERT_TRUE(nodata);
  EXPECT_EQ(nodata->rcode, 0);
  EXPECT_TRUE(nodata->answers.empty());
  auto thrown = decode(ask_udp(make_query(7, "throws.test", kTypeA)));
  ASSERT_TRUE(thrown);
  EXPECT_EQ(thrown->rcode, 2);
}

TEST_F(DnsServer, ForwardsWithClientId) {
  auto r = decode(ask_udp(with_edns(make_query(0xBEEF, "fwd.example.org", kTypeA))));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->id, 0xBEEF);
  EXPECT_EQ(r->rcode, 0);
  EXPECT_EQ(datas(*r), std::vector<std::string>{"192.0.2.53"});
  auto names = upstream_->names();
  EXPECT_NE(std::find(names.begin(), names.end(), "fwd.example.org"), names.end());
}

TEST_F(DnsServer, ServFailWhenUpstreamSilent) {
  auto start = std::chrono::steady_clock::now();
  auto r = decode(ask_udp(make_query(0x5151, "silent.example.org", kTypeA)));
  auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(r);
  EXPECT_EQ(r->id, 0x5151);
  EXPECT_EQ(r->rcode, 2);
  EXPECT_GE(elapsed, std::chrono::milliseconds(kUpstreamTimeoutMs - 50));
  EXPECT_LT(elapsed, std::chrono::milliseconds(kUpstreamTimeoutMs + 1500));
}

TEST_F(DnsServer, FailsOverToNextUpstream) {
  auto r = decode(ask_udp(make_query(0x2222, "failover.example.org", kTypeA)));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->id, 0x2222);
  EXPECT_EQ(r->rcode, 0);
  EXPECT_EQ(datas(*r), std::vector<std::string>{"192.0.2.53"});
}

TEST_F(DnsServer, ServFailWithoutUpstreams) {
  auto r = decode(ask_udp(make_query(0x3333, "noup.example.org", kTypeA)));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->rcode, 2);
}

TEST_F(DnsServer, ForwardsToIpv6Upstream) {
  std::unique_ptr<FakeUpstream> up6;
  try {
    up6 = std::make_unique<FakeUpstream>(AF_INET6);
  } catch (const Error&) {
    GTEST_SKIP() << "no IPv6 loopback";
  }
  backend_->answer6_port = up6->port();  // read by the server thread only on the next query
  auto r = decode(ask_udp(make_query(0x6666, "v6up.example.org", kTypeA)));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->id, 0x6666);
  EXPECT_EQ(datas(*r), std::vector<std::string>{"192.0.2.53"});
}

TEST_F(DnsServer, PendingForwardDoesNotStallOthers) {
  Sock client = udp_socket();
  auto to = loopback(port_);
  Bytes slow = make_query(0x0A0A, "silent.other.org", kTypeA);
  Bytes fast = make_query(0x0B0B, "svc.test", kTypeA);
  for (const Bytes* q : {&slow, &fast})
    ASSERT_GT(::sendto(client.fd.get(), q->data(), q->size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to), 0);
  Bytes buf(4096);
  ASSERT_TRUE(wait_readable(client.fd.get(), 3000));
  buf.resize(static_cast<size_t>(std::max<ssize_t>(0, ::recv(client.fd.get(), buf.data(), buf.size(), 0))));
  auto first = decode(buf);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->id, 0x0B0B);
  buf.resize(4096);
  ASSERT_TRUE(wait_readable(client.fd.get(), 3000));
  buf.resize(static_cast<size_t>(std::max<ssize_t>(0, ::recv(client.fd.get(), buf.data(), buf.size(), 0))));
  auto second = decode(buf);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->id, 0x0A0A);
  EXPECT_EQ(second->rcode, 2);
}

TEST_F(DnsServer, DropsMalformedUdpAndKeepsServing) {
  Bytes bad = make_query(0x7777, "x.test", kTypeA, 0x8100);  // QR set
  EXPECT_TRUE(ask_udp(bad, 300).empty());
  Bytes tiny = {1, 2, 3};
  EXPECT_TRUE(ask_udp(tiny, 300).empty());
  auto ok = decode(ask_udp(make_query(0x7778, "svc.test", kTypeA)));
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->rcode, 0);
}

TEST_F(DnsServer, NotImpForOtherOpcodes) {
  auto r = decode(ask_udp(make_query(0x8888, "svc.test", kTypeA, 0x1000)));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->rcode, 4);
  EXPECT_EQ((r->flags >> 11) & 0xF, 2);
}

TEST_F(DnsServer, AnswersOverTcpIncludingPipelinedForward) {
  UniqueFd fd = tcp_connect();
  tcp_send(fd.get(), make_query(0x0101, "fwd.tcp.example", kTypeA));
  tcp_send(fd.get(), make_query(0x0202, "svc.test", kTypeA));
  std::map<uint16_t, Response> got;
  for (int i = 0; i < 2; ++i) {
    auto r = decode(tcp_read_message(fd.get()));
    ASSERT_TRUE(r);
    got[r->id] = *r;
  }
  ASSERT_EQ(got.count(0x0101), 1u);
  ASSERT_EQ(got.count(0x0202), 1u);
  EXPECT_EQ(datas(got[0x0101]), std::vector<std::string>{"192.0.2.53"});
  EXPECT_EQ(got[0x0202].answers.size(), 3u);

  // A half-closed connection still gets its answer, then is closed.
  tcp_send(fd.get(), make_query(0x0303, "unknown.test", kTypeA));
  ::shutdown(fd.get(), SHUT_WR);
  auto nx = decode(tcp_read_message(fd.get()));
  ASSERT_TRUE(nx);
  EXPECT_EQ(nx->rcode, 3);
  uint8_t b;
  EXPECT_EQ(::recv(fd.get(), &b, 1, 0), 0);  // then closed
}

TEST_F(DnsServer, ClosesTcpOnMalformedQuery) {
  UniqueFd fd = tcp_connect();
  Bytes junk = {0, 5, 1, 2, 3, 4, 5};  // shorter than a header
  ASSERT_EQ(::send(fd.get(), junk.data(), junk.size(), MSG_NOSIGNAL), static_cast<ssize_t>(junk.size()));
  uint8_t b;
  EXPECT_EQ(::recv(fd.get(), &b, 1, 0), 0);

  UniqueFd fd2 = tcp_connect();
  tcp_send(fd2.get(), make_query(0x0404, "x.test", kTypeA, 0x8100));  // QR set
  EXPECT_EQ(::recv(fd2.get(), &b, 1, 0), 0);
}

TEST(DnsServe, IdleStopsServeAndBindErrorsThrow) {
  FakeBackend backend;
  ServerOptions options;
  options.address = "127.0.0.1";
  options.port = 0;
  std::atomic<uint16_t> port{0};
  options.ready = [&port](uint16_t p) { port = p; };
  backend.stop = true;
  auto start = std::chrono::steady_clock::now();
  serve(options, backend);  // returns on the first idle() poll
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
  EXPECT_NE(port.load(), 0);
  EXPECT_GE(backend.idle_calls.load(), 1);

  // A port already taken (no SO_REUSEADDR on this socket) cannot be bound.
  Sock taken = udp_socket();
  options.port = taken.port;
  EXPECT_THROW(serve(options, backend), Error);
  options.address = "not-an-address";
  EXPECT_THROW(serve(options, backend), Error);
}

TEST(DnsServe, IdleIsPolledWhileRunning) {
  FakeBackend backend;
  ServerOptions options;
  options.address = "127.0.0.1";
  options.port = 0;
  std::thread t([&] { serve(options, backend); });
  while (backend.idle_calls.load() < 2) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  backend.stop = true;
  t.join();
  EXPECT_GE(backend.idle_calls.load(), 3);
}

}  // namespace
}  // namespace berth::network::dns
