#include "image/reference.hpp"

#include <arpa/inet.h>
#include <strings.h>

#include <cstring>

#include "image/digest.hpp"
#include "util/error.hpp"

namespace berth::image {

namespace {

constexpr std::string_view kDefaultDomain = "docker.io";
constexpr std::string_view kLegacyDefaultDomain = "index.docker.io";
constexpr std::string_view kOfficialRepoPrefix = "library/";
constexpr size_t kMaxNameLength = 255;

bool is_lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool is_alnum(char c) { return is_lower_alnum(c) || (c >= 'A' && c <= 'Z'); }
bool is_word(char c) { return is_alnum(c) || c == '_'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

// path-component := [a-z0-9]+ (separator [a-z0-9]+)*, separator := [._] | __ | -+
bool valid_path_component(std::string_view s) {
  size_t i = 0;
  auto alnum_run = [&] {
    size_t start = i;
    while (i < s.size() && is_lower_alnum(s[i])) i++;
    return i > start;
  };
  if (!alnum_run()) return false;
  while (i < s.size()) {
    if (s[i] == '.') {
      i++;
    } else if (s[i] == '_') {
      i++;
      if (i < s.size() && s[i] == '_') i++;
    } else if (s[i] == '-') {
      while (i < s.size() && s[i] == '-') i++;
    } else {
      return false;
    }
    if (!alnum_run()) return false;
  }
  return true;
}

bool valid_path(std::string_view path) {
  if (path.empty()) return false;
  size_t start = 0;
  for (;;) {
    size_t slash = path.find('/', start);
    if (!valid_path_component(path.substr(start, slash - start))) return false;
    if (slash == std::string_view::npos) return true;
    start = slash + 1;
  }
}

// domain-component := [a-zA-Z0-9] | [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]
bool valid_domain_component(std::string_view s) {
  if (s.empty() || !is_alnum(s.front()) || !is_alnum(s.back())) return false;
  for (char c : s)
    if (!is_alnum(c) && c != '-') return false;
  return true;
}

// domain := host [":" port]; host := domain-name | "[" IPv6 "]"
bool valid_domain(std::string_view d) {
  std::string_view host = d, port;
  if (!d.empty() && d.front() == '[') {
    size_t close = d.find(']');
    if (close == std::string_view::npos || close < 2) return false;
    for (char c : d.substr(1, close - 1))
      if (!is_hex(c) && c != ':') return false;
    std::string_view rest = d.substr(close + 1);
    if (rest.empty()) return true;
    if (rest.front() != ':') return false;
    port = rest.substr(1);
    if (port.empty()) return false;
  } else {
    size_t colon = d.find(':');
    if (colon != std::string_view::npos) {
      host = d.substr(0, colon);
      port = d.substr(colon + 1);
      if (port.empty()) return false;
    }
    size_t start = 0;
    for (;;) {
      size_t dot = host.find('.', start);
      if (!valid_domain_component(host.substr(start, dot - start))) return false;
      if (dot == std::string_view::npos) break;
      start = dot + 1;
    }
  }
  for (char c : port)
    if (!is_digit(c)) return false;
  return true;
}

// tag := [\w][\w.-]{0,127}
bool valid_tag(std::string_view t) {
  if (t.empty() || t.size() > 128 || !is_word(t.front())) return false;
  for (char c : t)
    if (!is_word(c) && c != '.' && c != '-') return false;
  return true;
}

bool is_lowercase(std::string_view s) {
  for (char c : s)
    if (c >= 'A' && c <= 'Z') return false;
  return true;
}

bool is_64_hex(std::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s)
    if (!is_digit(c) && !(c >= 'a' && c <= 'f')) return false;
  return true;
}

[[noreturn]] void invalid(std::string_view text, std::string_view why = {}) {
  std::string msg = "invalid reference format: \"" + std::string(text) + "\"";
  if (!why.empty()) msg += " (" + std::string(why) + ")";
  throw Error(msg);
}

void check_digest(std::string_view text, std::string_view digest) {
  if (is_sha256_digest(digest)) return;
  // digest := algorithm ":" hex{32,} — a well-formed one with another algorithm is refused by name.
  size_t colon = digest.find(':');
  std::string_view algo = colon == std::string_view::npos ? std::string_view{} : digest.substr(0, colon);
  std::string_view hex = colon == std::string_view::npos ? std::string_view{} : digest.substr(colon + 1);
  bool well_formed = !algo.empty() && hex.size() >= 32;
  for (char c : algo) well_formed = well_formed && (is_alnum(c) || c == '+' || c == '.' || c == '-' || c == '_');
  for (char c : hex) well_formed = well_formed && is_hex(c);
  if (well_formed && algo != "sha256")
    invalid(text, "unsupported digest algorithm \"" + std::string(algo) + "\": only sha256 is supported");
  invalid(text, "invalid digest \"" + std::string(digest) + "\"");
}

}  // namespace

std::string Reference::name() const { return domain + "/" + path; }

std::string Reference::str() const {
  std::string s = name();
  if (!tag.empty()) s += ":" + tag;
  if (!digest.empty()) s += "@" + digest;
  return s;
}

std::string Reference::familiar_name() const {
  if (domain != kDefaultDomain) return name();
  std::string_view p = path;
  if (p.starts_with(kOfficialRepoPrefix) && p.substr(kOfficialRepoPrefix.size()).find('/') == std::string_view::npos)
    return std::string(p.substr(kOfficialRepoPrefix.size()));
  return path;
}

std::string Reference::familiar() const {
  std::string s = familiar_name();
  if (!tag.empty()) s += ":" + tag;
  if (!digest.empty()) s += "@" + digest;
  return s;
}

Reference parse_reference(std::string_view text) {
  if (is_64_hex(text))
    throw Error("invalid repository name \"" + std::string(text) + "\": cannot specify 64-byte hexadecimal strings");

  // splitDockerDomain: the first component names a registry only if it can't be a path component.
  Reference ref;
  std::string_view remainder = text;
  size_t slash = text.find('/');
  std::string_view first = slash == std::string_view::npos ? std::string_view{} : text.substr(0, slash);
  if (slash == std::string_view::npos ||
      (first.find_first_of(".:") == std::string_view::npos && first != "localhost" && is_lowercase(first))) {
    ref.domain = kDefaultDomain;
  } else {
    ref.domain = first;
    remainder = text.substr(slash + 1);
  }
  if (ref.domain == kLegacyDefaultDomain) ref.domain = kDefaultDomain;

  // The remote name, up to the first ':' as docker cuts it, must be lowercase.
  if (!is_lowercase(remainder.substr(0, remainder.find(':')))) invalid(text, "repository name must be lowercase");

  std::string_view name_part = remainder;
  size_t at = remainder.find('@');
  if (at != std::string_view::npos) {
    ref.digest = remainder.substr(at + 1);
    name_part = remainder.substr(0, at);
    check_digest(text, ref.digest);
  }
  size_t colon = name_part.find(':');
  if (colon != std::string_view::npos) {
    ref.tag = name_part.substr(colon + 1);
    name_part = name_part.substr(0, colon);
    if (!valid_tag(ref.tag)) invalid(text, "invalid tag \"" + ref.tag + "\"");
  } else if (ref.digest.empty()) {
    ref.tag = "latest";
  }

  ref.path = name_part;
  if (ref.domain == kDefaultDomain && ref.path.find('/') == std::string::npos)
    ref.path = std::string(kOfficialRepoPrefix) + ref.path;
  if (!valid_domain(ref.domain)) invalid(text, "invalid registry host \"" + ref.domain + "\"");
  if (name_part.empty()) invalid(text, "repository name must have at least one component");
  if (!valid_path(ref.path)) invalid(text);
  if (ref.name().size() > kMaxNameLength)
    invalid(text, "repository name must not be more than " + std::to_string(kMaxNameLength) + " characters");
  return ref;
}

std::string registry_host(std::string_view domain) {
  if (domain == kDefaultDomain || domain == kLegacyDefaultDomain) return "registry-1.docker.io";
  return std::string(domain);
}

bool is_loopback_domain(std::string_view domain) {
  std::string host;
  if (!domain.empty() && domain.front() == '[') {
    size_t close = domain.find(']');
    if (close == std::string_view::npos) return false;
    host = domain.substr(1, close - 1);
  } else {
    host = domain.substr(0, domain.find(':'));
  }
  if (strcasecmp(host.c_str(), "localhost") == 0) return true;
  in_addr a4{};
  if (inet_pton(AF_INET, host.c_str(), &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
  in6_addr a6{};
  if (inet_pton(AF_INET6, host.c_str(), &a6) == 1) return IN6_IS_ADDR_LOOPBACK(&a6);
  return false;
}

}  // namespace berth::image
