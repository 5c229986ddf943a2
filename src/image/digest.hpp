// Content digests ("sha256:<64 hex>"), computed with OpenSSL.
#pragma once

#include <memory>
#include <string>
#include <string_view>

namespace berth::image {

// Streaming SHA-256. digest() may be called once, after the last update().
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  Sha256(Sha256&&) noexcept;
  Sha256& operator=(Sha256&&) noexcept;

  void update(const void* data, size_t len);
  void update(std::string_view data) { update(data.data(), data.size()); }
  std::string hex();     // 64 lowercase hex digits
  std::string digest();  // "sha256:" + hex()

 private:
  struct State;
  std::unique_ptr<State> state_;
};

std::string sha256_digest(std::string_view data);

// "sha256:" + 64 lowercase hex digits (the only algorithm berth stores; sha512 is refused).
bool is_sha256_digest(std::string_view digest);
// Throws Error naming the value unless is_sha256_digest(digest).
void require_sha256_digest(std::string_view digest, std::string_view what);
// The 64 hex digits of a valid digest.
std::string_view digest_hex(std::string_view digest);

}  // namespace berth::image
