#include "image/reference.hpp"

#include <gtest/gtest.h>

#include <string>

#include "util/error.hpp"

using berth::image::is_loopback_domain;
using berth::image::parse_reference;
using berth::image::Reference;
using berth::image::registry_host;

namespace {

const std::string kDigest = "sha256:" + std::string(64, 'a');

struct Case {
  const char* input;
  const char* domain;
  const char* path;
  const char* tag;
  std::string digest;
  const char* familiar;
};

TEST(Reference, NormalizesLikeDocker) {
  const Case cases[] = {
      {"busybox", "docker.io", "library/busybox", "latest", "", "busybox:latest"},
      {"busybox:1.36", "docker.io", "library/busybox", "1.36", "", "busybox:1.36"},
      {"library/busybox", "docker.io", "library/busybox", "latest", "", "busybox:latest"},
      {"docker.io/busybox", "docker.io", "library/busybox", "latest", "", "busybox:latest"},
      {"index.docker.io/busybox", "docker.io", "library/busybox", "latest", "", "busybox:latest"},
      {"docker.io/library/busybox:musl", "docker.io", "library/busybox", "musl", "", "busybox:musl"},
      {"user/app", "docker.io", "user/app", "latest", "", "user/app:latest"},
      {"docker.io/library/a/b", "docker.io", "library/a/b", "latest", "", "library/a/b:latest"},
      {"localhost/app", "localhost", "app", "latest", "", "localhost/app:latest"},
      {"localhost:5000/app:v1", "localhost:5000", "app", "v1", "", "localhost:5000/app:v1"},
      {"127.0.0.1:41234/x/y:t", "127.0.0.1:41234", "x/y", "t", "", "127.0.0.1:41234/x/y:t"},
      {"ghcr.io/org/team/app:1.0-rc.1", "ghcr.io", "org/team/app", "1.0-rc.1", "", "ghcr.io/org/team/app:1.0-rc.1"},
      {"[::1]:5000/app", "[::1]:5000", "app", "latest", "", "[::1]:5000/app:latest"},
      {"Registry.Example.com/app", "Registry.Example.com", "app", "latest", "", "Registry.Example.com/app:latest"},
      // An uppercase first component can't be a path: it is a registry host (docker >= 20.10).
      {"Foo/bar", "Foo", "bar", "latest", "", "Foo/bar:latest"},
      {"a_b-c__d---e/f.g", "docker.io", "a_b-c__d---e/f.g", "latest", "", "a_b-c__d---e/f.g:latest"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.input);
    Reference r = parse_reference(c.input);
    EXPECT_EQ(r.domain, c.domain);
    EXPECT_EQ(r.path, c.path);
    EXPECT_EQ(r.tag, c.tag);
    EXPECT_EQ(r.digest, c.digest);
    EXPECT_EQ(r.familiar(), c.familiar);
  }
}

TEST(Reference, Digests) {
  Reference r = parse_reference("busybox@" + kDigest);
  EXPECT_EQ(r.name(), "docker.io/library/busybox");
  EXPECT_EQ(r.tag, "");
  EXPECT_EQ(r.digest, kDigest);
  EXPECT_EQ(r.str(), "docker.io/library/busybox@" + kDigest);
  EXPECT_EQ(r.familiar(), "busybox@" + kDigest);
  EXPECT_EQ(r.tag_or_digest(), kDigest);

  Reference both = parse_reference("localhost:5000/app:v2@" + kDigest);
  EXPECT_EQ(both.tag, "v2");
  EXPECT_EQ(both.digest, kDigest);
  EXPECT_EQ(both.str(), "localhost:5000/app:v2@" + kDigest);
  EXPECT_EQ(both.tag_or_digest(), kDigest);
}

TEST(Reference, NameStrAndRegistryHost) {
  Reference r = parse_reference("busybox");
  EXPECT_EQ(r.name(), "docker.io/library/busybox");
  EXPECT_EQ(r.str(), "docker.io/library/busybox:latest");
  EXPECT_EQ(r.familiar_name(), "busybox");
  EXPECT_EQ(registry_host(r.domain), "registry-1.docker.io");
  EXPECT_EQ(registry_host("localhost:5000"), "localhost:5000");
  EXPECT_EQ(parse_reference("docker.io/library/busybox:latest"), r);
}

std::string error_of(const std::string& text) {
  try {
    parse_reference(text);
  } catch (const berth::Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(Reference, RefusesBadInputNamingIt) {
  const char* bad[] = {
      "",
      ":tag",
      "/app",
      "app/",
      "a//b",
      "-app",
      "app-",
      "a..b",
      "a___b",
      "app:",
      "app:-tag",
      "app:.tag",
      "app:tag/x",
      "app@",
      "app@sha256:short",
      "app@sha256:",
      "localhost:/app",
      "localhost:port/app",
      "-host.io/app",
      "host-.io/app",
      "[::1/app",
      "app with space",
      "a:b:c",
  };
  for (const char* text : bad) {
    SCOPED_TRACE(text);
    std::string err = error_of(text);
    EXPECT_EQ(err.rfind("invalid reference format: \"" + std::string(text) + "\"", 0), 0u) << err;
  }
}

TEST(Reference, SpecificReasons) {
  EXPECT_EQ(error_of("Busybox"), "invalid reference format: \"Busybox\" (repository name must be lowercase)");
  EXPECT_EQ(error_of("localhost:5000/App"),
            "invalid reference format: \"localhost:5000/App\" (repository name must be lowercase)");
  // The tag may have uppercase letters, the path may not.
  EXPECT_EQ(parse_reference("app:V1").tag, "V1");
  EXPECT_NE(error_of("app:" + std::string(129, 't')).find("invalid tag"), std::string::npos);
  EXPECT_EQ(parse_reference("app:" + std::string(128, 't')).tag.size(), 128u);
  std::string long_path(300, 'a');
  EXPECT_NE(error_of(long_path).find("must not be more than 255 characters"), std::string::npos);
  EXPECT_NE(error_of("app@sha512:" + std::string(128, 'a')).find("unsupported digest algorithm \"sha512\""),
            std::string::npos);
  EXPECT_NE(error_of("app@sha256:" + std::string(64, 'A')).find("invalid digest"), std::string::npos);
  EXPECT_NE(error_of(std::string(64, 'f')).find("cannot specify 64-byte hexadecimal strings"), std::string::npos);
}

TEST(Reference, LoopbackDomains) {
  for (const char* d : {"localhost", "localhost:5000", "LOCALHOST:1", "127.0.0.1", "127.0.0.1:41234", "127.1.2.3:80",
                        "[::1]:5000", "[::1]"})
    EXPECT_TRUE(is_loopback_domain(d)) << d;
  for (const char* d : {"docker.io", "reg.localhost:5000", "128.0.0.1:5000", "10.0.0.1", "[::2]:5000", "localhostx"})
    EXPECT_FALSE(is_loopback_domain(d)) << d;
}

}  // namespace
