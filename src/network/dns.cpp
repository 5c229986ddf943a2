// DNS wire format (RFC 1035) for queries and our own answers, and the single-threaded poll()
// server: UDP and TCP clients, non-blocking forwarding to upstream resolvers over UDP.
#include "network/dns.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <exception>
#include <map>
#include <random>

#include "util/error.hpp"
#include "util/fd.hpp"

namespace berth::network::dns {

namespace {

constexpr size_t kHeaderSize = 12;
constexpr size_t kMaxName = 255;  // wire length, including the length bytes and the root label
constexpr size_t kMaxLabel = 63;
constexpr int kMaxPointers = 32;
constexpr uint16_t kFlagQr = 0x8000;
constexpr uint16_t kOpcodeMask = 0x7800;
constexpr uint16_t kFlagAa = 0x0400;
constexpr uint16_t kFlagTc = 0x0200;
constexpr uint16_t kFlagRd = 0x0100;
constexpr uint16_t kFlagRa = 0x0080;
constexpr int kRcodeServFail = 2;
constexpr int kRcodeNotImp = 4;

uint16_t get16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }

void put16(std::vector<uint8_t>& out, uint16_t v) {
  out.push_back(static_cast<uint8_t>(v >> 8));
  out.push_back(static_cast<uint8_t>(v));
}

void put32(std::vector<uint8_t>& out, uint32_t v) {
  put16(out, static_cast<uint16_t>(v >> 16));
  put16(out, static_cast<uint16_t>(v));
}

// Reads the name at `pos`, following compression pointers (which must point strictly before
// everything read so far and not into the header). Sets `end` to the offset after the name's
// bytes at `pos`.
bool read_name(const uint8_t* data, size_t size, size_t pos, std::string& name, size_t& end) {
  name.clear();
  size_t wire_len = 1;  // the root label
  size_t limit = pos;   // start of the current run of labels: pointers must go below it
  bool jumped = false;
  int pointers = 0;
  for (;;) {
    if (pos >= size) return false;
    uint8_t len = data[pos];
    if ((len & 0xC0) == 0xC0) {
      if (pos + 1 >= size) return false;
      size_t target = (static_cast<size_t>(len & 0x3F) << 8) | data[pos + 1];
      if (target < kHeaderSize || target >= limit || ++pointers > kMaxPointers) return false;
      if (!jumped) end = pos + 2;
      jumped = true;
      pos = limit = target;
      continue;
    }
    if ((len & 0xC0) != 0) return false;  // 0x40 / 0x80: extended label types, not supported
    if (len == 0) {
      if (!jumped) end = pos + 1;
      return true;
    }
    if (len > kMaxLabel || pos + 1 + len > size) return false;
    wire_len += len + 1;
    if (wire_len > kMaxName) return false;
    if (!name.empty()) name += '.';
    for (size_t i = 0; i < len; ++i) {
      auto c = static_cast<char>(data[pos + 1 + i]);
      // A dot inside a label would alias another name; controls and spaces have no business here.
      if (c == '.' || static_cast<uint8_t>(c) <= 0x20 || static_cast<uint8_t>(c) == 0x7F) return false;
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
      name += c;
    }
    pos += 1 + len;
  }
}

// Parses the header and first question; `question_end` is the offset after it.
std::optional<Query> parse(const uint8_t* data, size_t size, size_t& question_end) {
  if (data == nullptr || size < kHeaderSize) return std::nullopt;
  Query q;
  q.id = get16(data);
  q.flags = get16(data + 2);
  if ((q.flags & kFlagQr) != 0) return std::nullopt;
  if (get16(data + 4) == 0) return std::nullopt;
  size_t pos = 0;
  if (!read_name(data, size, kHeaderSize, q.question.name, pos)) return std::nullopt;
  if (pos + 4 > size) return std::nullopt;
  q.question.type = get16(data + pos);
  q.question.klass = get16(data + pos + 2);
  question_end = pos + 4;
  return q;
}

// Appends `name` in wire format (no compression); false when it is not a valid name.
bool put_name(std::vector<uint8_t>& out, std::string_view name) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  std::vector<uint8_t> wire;
  while (!name.empty()) {
    size_t dot = name.find('.');
    std::string_view label = name.substr(0, dot);
    if (label.empty() || label.size() > kMaxLabel) return false;
    wire.push_back(static_cast<uint8_t>(label.size()));
    wire.insert(wire.end(), label.begin(), label.end());
    if (dot == std::string_view::npos) break;
    name.remove_prefix(dot + 1);
    if (name.empty()) return false;  // "a..": empty label
  }
  wire.push_back(0);
  if (wire.size() > kMaxName) return false;
  out.insert(out.end(), wire.begin(), wire.end());
  return true;
}

// The RDATA of one answer of type `type`; false when `value` does not fit it.
bool encode_rdata(uint16_t type, const std::string& value, std::vector<uint8_t>& rdata) {
  rdata.clear();
  if (type == kTypeA) {
    in_addr a{};
    if (inet_pton(AF_INET, value.c_str(), &a) != 1) return false;
    auto* p = reinterpret_cast<const uint8_t*>(&a);
    rdata.assign(p, p + sizeof a);
    return true;
  }
  if (type == kTypeAaaa) {
    in6_addr a{};
    if (inet_pton(AF_INET6, value.c_str(), &a) != 1) return false;
    auto* p = reinterpret_cast<const uint8_t*>(&a);
    rdata.assign(p, p + sizeof a);
    return true;
  }
  if (type == kTypePtr) return put_name(rdata, value);
  return false;
}

}  // namespace

std::optional<Query> parse_query(const uint8_t* data, size_t size) {
  size_t end = 0;
  return parse(data, size, end);
}

std::vector<uint8_t> build_response(const uint8_t* query, size_t size, int rcode,
                                    const std::vector<std::string>& answers, uint32_t ttl, size_t max_size) {
  std::vector<uint8_t> out;
  size_t question_end = 0;
  auto q = parse(query, size, question_end);
  if (!q) {
    // Unparseable: a bare FORMERR header when there is at least an id to echo.
    if (query == nullptr || size < kHeaderSize) return out;
    uint16_t flags = get16(query + 2);
    put16(out, get16(query));
    put16(out, static_cast<uint16_t>(kFlagQr | (flags & (kOpcodeMask | kFlagRd)) | kFlagRa | 1));
    for (int i = 0; i < 4; ++i) put16(out, 0);
    return out;
  }
  max_size = std::max(max_size, question_end);
  put16(out, q->id);
  uint16_t flags =
      kFlagQr | (q->flags & (kOpcodeMask | kFlagRd)) | kFlagAa | kFlagRa | static_cast<uint16_t>(rcode & 0xF);
  put16(out, flags);
  put16(out, 1);  // QDCOUNT
  put16(out, 0);  // ANCOUNT, patched below
  put16(out, 0);  // NSCOUNT
  put16(out, 0);  // ARCOUNT: any EDNS OPT of the query is dropped
  // The question, verbatim (keeps the client's 0x20 case); its pointers, if any, stay valid since
  // it sits at the same offset.
  out.insert(out.end(), query + kHeaderSize, query + question_end);
  uint16_t count = 0;
  bool truncated = false;
  std::vector<uint8_t> rdata;
  for (const auto& value : answers) {
    if (!encode_rdata(q->question.type, value, rdata)) continue;
    if (out.size() + 12 + rdata.size() > max_size || count == 0xFFFF) {
      truncated = true;
      break;
    }
    put16(out, 0xC000 | kHeaderSize);  // pointer to the question's name
    put16(out, q->question.type);
    put16(out, q->question.klass);
    put32(out, ttl);
    put16(out, static_cast<uint16_t>(rdata.size()));
    out.insert(out.end(), rdata.begin(), rdata.end());
    ++count;
  }
  if (truncated) flags |= kFlagTc;
  out[2] = static_cast<uint8_t>(flags >> 8);
  out[3] = static_cast<uint8_t>(flags);
  out[6] = static_cast<uint8_t>(count >> 8);
  out[7] = static_cast<uint8_t>(count);
  return out;
}

// ---------------------------------------------------------------------------------------------
// The server.

namespace {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;
using std::chrono::milliseconds;

constexpr size_t kMaxTcpConnections = 64;
constexpr size_t kMaxPending = 256;
constexpr size_t kMaxMessage = 4096;  // largest query we accept (UDP datagram or TCP message)
constexpr size_t kMaxUpstreamReply = 65535;
constexpr size_t kMaxTcpOut = 128 * 1024;  // stop reading from a client that does not read its answers
constexpr size_t kUdpAnswerLimit = 512;
constexpr auto kTcpIdle = milliseconds(5000);
constexpr auto kIdleInterval = milliseconds(1000);
constexpr int kMinUpstreamTimeoutMs = 50;

struct Address {
  sockaddr_storage ss{};
  socklen_t len = 0;
};

bool make_address(const std::string& ip, uint16_t port, Address& out) {
  out = Address{};
  auto* v4 = reinterpret_cast<sockaddr_in*>(&out.ss);
  if (inet_pton(AF_INET, ip.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    out.len = sizeof(sockaddr_in);
    return true;
  }
  out = Address{};
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&out.ss);
  if (inet_pton(AF_INET6, ip.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    out.len = sizeof(sockaddr_in6);
    return true;
  }
  return false;
}

std::string address_ip(const sockaddr_storage& ss) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&ss)->sin_addr, buf, sizeof buf);
  } else if (ss.ss_family == AF_INET6) {
    const auto& a6 = reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_addr;
    if (IN6_IS_ADDR_V4MAPPED(&a6)) {
      inet_ntop(AF_INET, &a6.s6_addr[12], buf, sizeof buf);
    } else {
      inet_ntop(AF_INET6, &a6, buf, sizeof buf);
    }
  }
  return buf;
}

UniqueFd bind_socket(const Address& addr, int type, const std::string& what) {
  UniqueFd fd(::socket(addr.ss.ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) throw_errno("dns: socket for " + what);
  int one = 1;
  if (::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) throw_errno("dns: SO_REUSEADDR");
  if (addr.ss.ss_family == AF_INET6) ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr.ss), addr.len) != 0) throw_errno("dns: bind " + what);
  return fd;
}

uint16_t bound_port(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) throw_errno("dns: getsockname");
  if (ss.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
  return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
}

struct TcpConn {
  UniqueFd fd;
  std::string ip;
  std::vector<uint8_t> in;
  std::vector<uint8_t> out;
  TimePoint last_activity;
  size_t pending = 0;  // forwards in flight for this connection
  bool read_closed = false;
};

// Where a query came from, to send its answer back.
struct Client {
  bool tcp = false;
  uint64_t conn = 0;  // TCP: key in Server::conns_
  Address addr;       // UDP: the sender
  std::string ip;
};

struct Forward {
  Client client;
  std::vector<uint8_t> query;  // the client's raw query (its own id)
  std::vector<Upstream> upstreams;
  size_t next = 0;  // index of the next upstream to try
  UniqueFd sock;    // connected to the current upstream
  uint16_t id = 0;  // id used toward the current upstream
  TimePoint deadline;
  int per_upstream_ms = 0;
};

class Server {
 public:
  Server(const ServerOptions& options, Backend& backend)
      : options_(options), backend_(backend), rng_(std::random_device{}()) {}

  void run();

 private:
  void read_udp();
  void accept_tcp();
  void service_tcp(uint64_t key, short revents);
  void handle_query(const uint8_t* data, size_t size, const Client& client);
  void reply(const Client& client, std::vector<uint8_t> message);
  void flush_tcp(uint64_t key);
  void close_tcp(uint64_t key);
  void start_forward(Forward fwd);
  bool send_to_next_upstream(Forward& fwd);
  void read_upstream(uint64_t key);
  void forward_failed(uint64_t key);
  void finish_forward(uint64_t key, std::vector<uint8_t> message);

  const ServerOptions& options_;
  Backend& backend_;
  std::mt19937 rng_;
  UniqueFd udp_;
  UniqueFd tcp_;
  std::map<uint64_t, TcpConn> conns_;
  std::map<uint64_t, Forward> forwards_;
  uint64_t next_key_ = 1;
  uint64_t rotation_ = 0;
  bool accept_paused_ = false;
  std::vector<uint8_t> upstream_buf_ = std::vector<uint8_t>(kMaxUpstreamReply);
};

void Server::reply(const Client& client, std::vector<uint8_t> message) {
  if (message.empty()) return;
  if (!client.tcp) {
    // Best effort: a full socket buffer drops the answer and the client retries.
    (void)::sendto(udp_.get(), message.data(), message.size(), MSG_DONTWAIT,
                   reinterpret_cast<const sockaddr*>(&client.addr.ss), client.addr.len);
    return;
  }
  auto it = conns_.find(client.conn);
  if (it == conns_.end() || message.size() > 0xFFFF) return;
  auto& out = it->second.out;
  out.push_back(static_cast<uint8_t>(message.size() >> 8));
  out.push_back(static_cast<uint8_t>(message.size()));
  out.insert(out.end(), message.begin(), message.end());
  it->second.last_activity = Clock::now();
  flush_tcp(client.conn);
}

void Server::flush_tcp(uint64_t key) {
  auto it = conns_.find(key);
  if (it == conns_.end()) return;
  auto& c = it->second;
  while (!c.out.empty()) {
    ssize_t n = ::send(c.fd.get(), c.out.data(), c.out.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      close_tcp(key);
      return;
    }
    c.out.erase(c.out.begin(), c.out.begin() + n);
    c.last_activity = Clock::now();
  }
  if (c.read_closed && c.out.empty() && c.pending == 0) close_tcp(key);
}

void Server::close_tcp(uint64_t key) { conns_.erase(key); }

void Server::handle_query(const uint8_t* data, size_t size, const Client& client) {
  auto query = parse_query(data, size);
  if (!query) {
    if (client.tcp) close_tcp(client.conn);
    return;
  }
  size_t limit = client.tcp ? 0xFFFF : kUdpAnswerLimit;
  if ((query->flags & kOpcodeMask) != 0) {
    reply(client, build_response(data, size, kRcodeNotImp, {}, 0, limit));
    return;
  }
  Answer answer;
  try {
    answer = backend_.lookup(query->question, client.ip);
  } catch (const std::exception&) {
    reply(client, build_response(data, size, kRcodeServFail, {}, 0, limit));
    return;
  }
  switch (answer.kind) {
    case Answer::Kind::Records: {
      auto& r = answer.records;
      if (r.size() > 1) std::rotate(r.begin(), r.begin() + static_cast<long>(rotation_++ % r.size()), r.end());
      reply(client, build_response(data, size, 0, r, options_.ttl, limit));
      return;
    }
    case Answer::Kind::NxDomain:
      reply(client, build_response(data, size, 3, {}, options_.ttl, limit));
      return;
    case Answer::Kind::Forward:
      break;
  }
  Forward fwd;
  fwd.client = client;
  fwd.query.assign(data, data + size);
  try {
    fwd.upstreams = backend_.upstreams(client.ip);
  } catch (const std::exception&) {
    fwd.upstreams.clear();
  }
  if (fwd.upstreams.empty() || forwards_.size() >= kMaxPending) {
    reply(client, build_response(data, size, kRcodeServFail, {}, 0, limit));
    return;
  }
  start_forward(std::move(fwd));
}

void Server::start_forward(Forward fwd) {
  int total = std::max(options_.upstream_timeout_ms, kMinUpstreamTimeoutMs);
  fwd.per_upstream_ms =
      std::max(total / static_cast<int>(std::min<size_t>(fwd.upstreams.size(), 16)), kMinUpstreamTimeoutMs);
  if (!send_to_next_upstream(fwd)) {
    reply(fwd.client, build_response(fwd.query.data(), fwd.query.size(), kRcodeServFail, {}, 0,
                                     fwd.client.tcp ? 0xFFFF : kUdpAnswerLimit));
    return;
  }
  if (fwd.client.tcp) {
    auto it = conns_.find(fwd.client.conn);
    if (it != conns_.end()) ++it->second.pending;
  }
  forwards_.emplace(next_key_++, std::move(fwd));
}

// Sends the query to the next upstream that accepts it; false when none is left.
bool Server::send_to_next_upstream(Forward& fwd) {
  while (fwd.next < fwd.upstreams.size()) {
    const Upstream& up = fwd.upstreams[fwd.next++];
    fwd.sock.reset();
    Address addr;
    if (!make_address(up.ip, up.port, addr)) continue;
    UniqueFd sock(::socket(addr.ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!sock) continue;
    if (::connect(sock.get(), reinterpret_cast<const sockaddr*>(&addr.ss), addr.len) != 0) continue;
    fwd.id = static_cast<uint16_t>(rng_());
    std::vector<uint8_t> out = fwd.query;
    out[0] = static_cast<uint8_t>(fwd.id >> 8);
    out[1] = static_cast<uint8_t>(fwd.id);
    if (::send(sock.get(), out.data(), out.size(), MSG_DONTWAIT) != static_cast<ssize_t>(out.size())) continue;
    fwd.sock = std::move(sock);
    fwd.deadline = Clock::now() + milliseconds(fwd.per_upstream_ms);
    return true;
  }
  return false;
}

void Server::read_upstream(uint64_t key) {
  auto it = forwards_.find(key);
  if (it == forwards_.end()) return;
  Forward& fwd = it->second;
  std::vector<uint8_t>& buf = upstream_buf_;
  for (;;) {
    ssize_t n = ::recv(fwd.sock.get(), buf.data(), buf.size(), MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      forward_failed(key);  // e.g. ECONNREFUSED: nobody listens there
      return;
    }
    if (static_cast<size_t>(n) < kHeaderSize || get16(buf.data()) != fwd.id || (buf[2] & 0x80) == 0) continue;
    int rcode = buf[3] & 0x0F;
    if ((rcode == kRcodeServFail || rcode == 5 /* REFUSED */) && fwd.next < fwd.upstreams.size()) {
      forward_failed(key);
      return;
    }
    std::vector<uint8_t> message(buf.begin(), buf.begin() + n);
    message[0] = fwd.query[0];
    message[1] = fwd.query[1];
    finish_forward(key, std::move(message));
    return;
  }
}

// The current upstream failed or timed out: the next one, or SERVFAIL.
void Server::forward_failed(uint64_t key) {
  auto it = forwards_.find(key);
  if (it == forwards_.end()) return;
  if (send_to_next_upstream(it->second)) return;
  const Forward& fwd = it->second;
  finish_forward(key, build_response(fwd.query.data(), fwd.query.size(), kRcodeServFail, {}, 0,
                                     fwd.client.tcp ? 0xFFFF : kUdpAnswerLimit));
}

void Server::finish_forward(uint64_t key, std::vector<uint8_t> message) {
  auto it = forwards_.find(key);
  if (it == forwards_.end()) return;
  Client client = std::move(it->second.client);
  forwards_.erase(it);
  if (client.tcp) {
    auto c = conns_.find(client.conn);
    if (c == conns_.end()) return;
    if (c->second.pending > 0) --c->second.pending;
  }
  reply(client, std::move(message));
  if (client.tcp) flush_tcp(client.conn);  // may close a half-closed connection now done
}

void Server::read_udp() {
  uint8_t buf[kMaxMessage];
  for (int i = 0; i < 64; ++i) {
    Client client;
    client.addr.len = sizeof client.addr.ss;
    ssize_t n = ::recvfrom(udp_.get(), buf, sizeof buf, MSG_DONTWAIT | MSG_TRUNC,
                           reinterpret_cast<sockaddr*>(&client.addr.ss), &client.addr.len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;  // EAGAIN, or a transient error (e.g. ICMP feedback): nothing more to read now
    }
    if (static_cast<size_t>(n) > sizeof buf) continue;  // oversized: not a query of ours
    client.ip = address_ip(client.addr.ss);
    handle_query(buf, static_cast<size_t>(n), client);
  }
}

void Server::accept_tcp() {
  for (int i = 0; i < 16; ++i) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    UniqueFd fd(::accept4(tcp_.get(), reinterpret_cast<sockaddr*>(&ss), &len, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!fd) {
      // Out of descriptors: the pending connection would keep poll() spinning; wait a tick.
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) accept_paused_ = true;
      return;
    }
    if (conns_.size() >= kMaxTcpConnections) continue;  // over the cap: closed right away
    TcpConn c;
    c.fd = std::move(fd);
    c.ip = address_ip(ss);
    c.last_activity = Clock::now();
    conns_.emplace(next_key_++, std::move(c));
  }
}

void Server::service_tcp(uint64_t key, short revents) {
  auto it = conns_.find(key);
  if (it == conns_.end()) return;
  if (revents & POLLOUT) {
    flush_tcp(key);
    it = conns_.find(key);
    if (it == conns_.end()) return;
  }
  if ((revents & (POLLIN | POLLHUP | POLLERR)) == 0 || it->second.read_closed) return;
  TcpConn& c = it->second;
  uint8_t buf[kMaxMessage];
  ssize_t n = ::recv(c.fd.get(), buf, sizeof buf, MSG_DONTWAIT);
  if (n < 0) {
    if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) return;
    close_tcp(key);
    return;
  }
  if (n == 0) {
    c.read_closed = true;
    if (c.pending == 0 && c.out.empty()) close_tcp(key);
    return;
  }
  c.last_activity = Clock::now();
  c.in.insert(c.in.end(), buf, buf + n);
  size_t used = 0;
  std::vector<std::vector<uint8_t>> messages;
  while (c.in.size() - used >= 2) {
    size_t len = get16(c.in.data() + used);
    if (len < kHeaderSize || len > kMaxMessage) {
      close_tcp(key);
      return;
    }
    if (c.in.size() - used - 2 < len) break;
    messages.emplace_back(c.in.begin() + static_cast<long>(used + 2), c.in.begin() + static_cast<long>(used + 2 + len));
    used += 2 + len;
  }
  c.in.erase(c.in.begin(), c.in.begin() + static_cast<long>(used));
  Client client;
  client.tcp = true;
  client.conn = key;
  client.ip = c.ip;
  for (const auto& m : messages) {
    if (conns_.find(key) == conns_.end()) return;  // closed by a malformed message
    handle_query(m.data(), m.size(), client);
  }
}

void Server::run() {
  Address addr;
  if (!make_address(options_.address, options_.port, addr))
    throw Error("dns: invalid listen address '" + options_.address + "'");
  std::string where = options_.address + ":" + std::to_string(options_.port);
  if (options_.udp_fd >= 0 && options_.tcp_fd >= 0) {
    udp_ = UniqueFd(options_.udp_fd);
    tcp_ = UniqueFd(options_.tcp_fd);
    for (int fd : {udp_.get(), tcp_.get()})
      if (::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK) != 0 || ::fcntl(fd, F_SETFD, FD_CLOEXEC) != 0)
        throw_errno("dns: inherited socket " + std::to_string(fd));
  } else if (options_.port != 0) {
    udp_ = bind_socket(addr, SOCK_DGRAM, "udp " + where);
    tcp_ = bind_socket(addr, SOCK_STREAM, "tcp " + where);
  } else {
    // An ephemeral port: TCP takes the one UDP got (another try if that one is taken for TCP).
    for (int attempt = 0;; ++attempt) {
      make_address(options_.address, 0, addr);
      udp_ = bind_socket(addr, SOCK_DGRAM, "udp " + where);
      uint16_t port = bound_port(udp_.get());
      make_address(options_.address, port, addr);
      where = options_.address + ":" + std::to_string(port);
      try {
        tcp_ = bind_socket(addr, SOCK_STREAM, "tcp " + where);
        break;
      } catch (const Error& e) {
        if (e.errnum() != EADDRINUSE || attempt >= 8) throw;
      }
    }
  }
  if (::listen(tcp_.get(), 64) != 0) throw_errno("dns: listen tcp " + where);
  if (options_.ready) options_.ready(bound_port(udp_.get()));

  TimePoint next_idle = Clock::now() + kIdleInterval;
  std::vector<pollfd> fds;
  std::vector<std::pair<int, uint64_t>> tags;  // 0 udp, 1 tcp listen, 2 tcp conn, 3 forward
  for (;;) {
    TimePoint now = Clock::now();
    if (now >= next_idle) {
      if (backend_.idle()) return;
      next_idle = now + kIdleInterval;
      accept_paused_ = false;
    }
    // Expire forwards and idle connections.
    for (auto it = forwards_.begin(); it != forwards_.end();) {
      uint64_t key = (it++)->first;  // forward_failed may erase it
      auto f = forwards_.find(key);
      if (f != forwards_.end() && f->second.deadline <= now) forward_failed(key);
    }
    for (auto it = conns_.begin(); it != conns_.end();) {
      if (now - it->second.last_activity >= kTcpIdle) {
        it = conns_.erase(it);
      } else {
        ++it;
      }
    }

    TimePoint wake = next_idle;
    fds.clear();
    tags.clear();
    fds.push_back({udp_.get(), POLLIN, 0});
    tags.emplace_back(0, 0);
    fds.push_back({tcp_.get(), static_cast<short>(accept_paused_ ? 0 : POLLIN), 0});
    tags.emplace_back(1, 0);
    for (const auto& [key, c] : conns_) {
      short events = 0;
      if (!c.read_closed && c.out.size() < kMaxTcpOut) events |= POLLIN;
      if (!c.out.empty()) events |= POLLOUT;
      fds.push_back({c.fd.get(), events, 0});
      tags.emplace_back(2, key);
      wake = std::min(wake, c.last_activity + kTcpIdle);
    }
    for (const auto& [key, f] : forwards_) {
      fds.push_back({f.sock.get(), POLLIN, 0});
      tags.emplace_back(3, key);
      wake = std::min(wake, f.deadline);
    }
    auto wait = std::chrono::duration_cast<milliseconds>(wake - Clock::now()).count() + 1;
    int timeout = static_cast<int>(std::clamp<long long>(wait, 0, kIdleInterval.count()));
    int ready = ::poll(fds.data(), fds.size(), timeout);
    if (ready < 0) {
      if (errno == EINTR) continue;
      throw_errno("dns: poll");
    }
    if (ready == 0) continue;
    for (size_t i = 0; i < fds.size(); ++i) {
      short revents = fds[i].revents;
      if (revents == 0) continue;
      auto [kind, key] = tags[i];
      switch (kind) {
        case 0:
          read_udp();
          break;
        case 1:
          accept_tcp();
          break;
        case 2:
          if (revents & POLLNVAL) {
            close_tcp(key);
          } else {
            service_tcp(key, revents);
          }
          break;
        default:
          read_upstream(key);
          break;
      }
    }
  }
}

}  // namespace

Listeners listen(const std::string& address, uint16_t port) {
  Address addr;
  if (!make_address(address, port, addr)) throw Error("dns: invalid listen address '" + address + "'");
  std::string where = address + ":" + std::to_string(port);
  Listeners l;
  l.udp = bind_socket(addr, SOCK_DGRAM, "udp " + where);
  l.tcp = bind_socket(addr, SOCK_STREAM, "tcp " + where);
  if (::listen(l.tcp.get(), 64) != 0) throw_errno("dns: listen tcp " + where);
  return l;
}

void serve(const ServerOptions& options, Backend& backend) {
  Server server(options, backend);
  server.run();
}

}  // namespace berth::network::dns
