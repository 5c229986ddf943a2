// Image references ("busybox", "localhost:5000/app:1.0", "repo@sha256:…"), parsed and
// normalized as docker does (github.com/distribution/reference: ParseNormalizedNamed).
#pragma once

#include <string>
#include <string_view>

namespace berth::image {

struct Reference {
  std::string domain;  // "docker.io", "localhost:5000", "127.0.0.1:41234", "[::1]:5000"
  std::string path;    // "library/busybox"
  std::string tag;     // "latest" when neither tag nor digest was given; empty if only a digest was
  std::string digest;  // "sha256:…" or empty

  std::string name() const;           // domain + "/" + path (the fully qualified repository)
  std::string str() const;            // name[:tag][@digest]
  std::string familiar_name() const;  // "busybox", "user/app", "localhost:5000/app" (docker's display form)
  std::string familiar() const;       // familiar_name[:tag][@digest]
  // The digest if there is one, else the tag: what to ask the registry for.
  std::string tag_or_digest() const { return digest.empty() ? tag : digest; }

  bool operator==(const Reference&) const = default;
};

// Throws Error("invalid reference format: \"<text>\"…") with the reason when there is a
// specific one (uppercase repository, name too long, bad tag, bad digest). Normalizes:
// "busybox" -> docker.io/library/busybox:latest, "index.docker.io/x" -> docker.io/library/x.
// The first component is a domain if it contains '.' or ':', is "localhost", or has an
// uppercase letter (which a repository path may not). Only sha256 digests are accepted.
Reference parse_reference(std::string_view text);

// The host[:port] to contact for a domain: docker.io -> registry-1.docker.io, others unchanged.
std::string registry_host(std::string_view domain);

// True for "localhost", 127.0.0.0/8 and ::1, with or without a port.
bool is_loopback_domain(std::string_view domain);

}  // namespace berth::image
