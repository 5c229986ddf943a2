// The per-network DNS responder: DNS wire format (RFC 1035) for the queries containers send, and
// a UDP+TCP server that answers names from a Backend and forwards the rest to upstream resolvers.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "util/fd.hpp"

namespace berth::network::dns {

constexpr uint16_t kTypeA = 1;
constexpr uint16_t kTypePtr = 12;
constexpr uint16_t kTypeAaaa = 28;

struct Question {
  std::string name;  // lower-cased, without the trailing dot
  uint16_t type = 0;
  uint16_t klass = 0;
};

struct Query {
  uint16_t id = 0;
  uint16_t flags = 0;
  Question question;  // the first (and in practice only) question
};

// Parses a query message; nullopt for anything malformed (truncated, compression loops, QR set…).
// A non-zero opcode still parses (see flags): serve() answers those NOTIMP.
std::optional<Query> parse_query(const uint8_t* data, size_t size);

// Builds a response to `query` (whose raw bytes are given, to echo the question section): rcode
// 0 NOERROR / 2 SERVFAIL / 3 NXDOMAIN; AA set; RA set; answers of the question's type (A: IPv4
// strings, AAAA: IPv6 strings, PTR: names), each with ttl. Answers that would take the message
// past max_size are left out and TC is set (serve() passes 512 for UDP). Values that do not fit the
// type are skipped; other question types get no answers (NODATA). An unparseable query yields a
// bare FORMERR header (or nothing when shorter than a header).
std::vector<uint8_t> build_response(const uint8_t* query, size_t size, int rcode,
                                    const std::vector<std::string>& answers, uint32_t ttl, size_t max_size = 65535);

struct Upstream {
  std::string ip;  // IPv4 or IPv6 literal
  uint16_t port = 53;
};

struct Answer {
  enum class Kind { Records, NxDomain, Forward } kind = Kind::Forward;
  std::vector<std::string> records;  // for Records: addresses (A/AAAA) or names (PTR); may be empty (NODATA)
};

// What the server asks of its owner. Called from the server's single thread.
class Backend {
 public:
  virtual ~Backend() = default;
  virtual Answer lookup(const Question& q, const std::string& client_ip) = 0;
  virtual std::vector<Upstream> upstreams(const std::string& client_ip) = 0;
  // Polled about once a second; returning true makes serve() return.
  virtual bool idle() = 0;
};

struct ServerOptions {
  std::string address;  // IPv4 literal to bind
  uint16_t port = 53;
  int upstream_timeout_ms = 2000;
  uint32_t ttl = 600;
  // Called from serve()'s thread once both sockets are bound, with the port (port 0 above picks
  // an ephemeral one, the same for UDP and TCP).
  std::function<void(uint16_t port)> ready;
  // Sockets already bound and listening (listen() below): serve() takes them over instead of
  // binding address:port itself.
  int udp_fd = -1, tcp_fd = -1;
};

struct Listeners {
  UniqueFd udp, tcp;
};

// Binds address:port for UDP and TCP and listens on the TCP one, as serve() does first. The
// engine binds them and hands them to the responder it starts: queries queue in the kernel until
// the responder reads them, so nobody waits for it to start. Throws berth::Error (EADDRINUSE…).
Listeners listen(const std::string& address, uint16_t port);

// Binds address:port (UDP and TCP) and serves until backend.idle(). Throws berth::Error when it
// cannot bind. Records answers are rotated per query (round-robin over equal names).
void serve(const ServerOptions& options, Backend& backend);

}  // namespace berth::network::dns
