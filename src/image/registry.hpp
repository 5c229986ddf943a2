// Client for the OCI distribution API (docker registry v2) over libcurl: one repository
// on one registry, safe to use from several threads at once (parallel blob transfers).
//
// Scheme: HTTPS with the system CAs. Loopback registries ("localhost", 127.0.0.0/8, ::1,
// as literals) are spoken to over plain HTTP directly, with no TLS attempt. Registries in
// RegistryOptions::insecure_registries are tried over HTTPS without certificate
// verification first and over plain HTTP if that fails at the transport level (docker's
// order). The choice is made once per client by pinging /v2/.
//
// Auth: the ping's 401 challenge (WWW-Authenticate) says Basic or Bearer. Bearer tokens
// are fetched from the realm with the credentials (if any) and cached per scope until they
// expire; a 401 on a request refreshes the token once, then fails.
//
// Errors are berth::Error with one-line messages; errnum says which kind: ENOENT for a
// missing manifest or blob, EACCES for 401/403, the socket errno (ECONNREFUSED, …) for
// connection failures, ETIMEDOUT for timeouts and stalls, EPROTO for other HTTP errors.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "image/auth_config.hpp"
#include "image/reference.hpp"

namespace berth::image {

struct RegistryOptions {
  std::vector<std::string> insecure_registries;  // domains (host[:port]) or IP CIDRs ("10.0.0.0/8")
  std::optional<Credentials> credentials;        // from auth_config or login flags
  std::string user_agent = "berth/0.1";
  long connect_timeout_s = 15;
  // A transfer moving less than 1 byte/s for this long is aborted (a stalled registry or link).
  // The PUT that completes an upload may wait up to 10 minutes: the registry may read the
  // whole blob back to check its digest before it answers.
  long stall_timeout_s = 30;
};

class RegistryClient {
 public:
  RegistryClient(const Reference& ref, RegistryOptions opts);
  ~RegistryClient();
  RegistryClient(const RegistryClient&) = delete;
  RegistryClient& operator=(const RegistryClient&) = delete;

  struct Manifest {
    std::string media_type;  // Content-Type, else the body's mediaType
    std::string digest;      // sha256 of body (checked against the digest asked for / Docker-Content-Digest)
    std::string body;
  };
  // Accepts OCI index and manifest, docker manifest list and schema2.
  Manifest get_manifest(std::string_view tag_or_digest);

  // Streams a blob to sink as chunks arrive (the caller verifies the digest). Follows
  // redirects (to a CDN or object store; credentials are not sent to other hosts).
  // An exception thrown by sink aborts the transfer and propagates.
  void get_blob(std::string_view digest, const std::function<void(const char*, size_t)>& sink);

  bool blob_exists(std::string_view digest);  // HEAD

  // Uploads size bytes produced by read (returns how many it put in the buffer, 0 only at the
  // end) unless the registry already has the blob; returns false when skipped. chunk_size 0:
  // POST then one PUT; otherwise PATCH chunks of chunk_size bytes, then PUT.
  bool put_blob(std::string_view digest, uint64_t size, const std::function<size_t(char*, size_t)>& read,
                uint64_t chunk_size = 0);

  // Returns the digest the registry stored it under (sha256 of body).
  std::string put_manifest(std::string_view tag_or_digest, std::string_view media_type, std::string_view body);

  // Authenticates against /v2/ (for `berth login`): throws on wrong or missing credentials.
  void check_auth();

  // "http://127.0.0.1:5000" or "https://registry-1.docker.io": pings the registry on first use.
  std::string endpoint();

  const Reference& reference() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// One challenge of a WWW-Authenticate header: scheme (lowercased) and its parameters
// (names lowercased, quoted values unescaped). Exposed for unit tests.
struct AuthChallenge {
  std::string scheme;
  std::map<std::string, std::string> params;
};
std::vector<AuthChallenge> parse_www_authenticate(std::string_view header);

}  // namespace berth::image
