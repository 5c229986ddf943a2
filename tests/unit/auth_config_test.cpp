#include "image/auth_config.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "image/registry.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"

using namespace berth::image;
using json = nlohmann::json;

namespace {

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/berth-auth-test-XXXXXX";
    if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() { berth::remove_tree(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Sets an environment variable for one test, restoring it after.
class EnvVar {
 public:
  EnvVar(const char* name, const char* value) : name_(name) {
    if (const char* old = ::getenv(name)) old_ = old;
    if (value)
      ::setenv(name, value, 1);
    else
      ::unsetenv(name);
  }
  ~EnvVar() {
    if (old_)
      ::setenv(name_, old_->c_str(), 1);
    else
      ::unsetenv(name_);
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

mode_t mode_of(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return 0;
  return st.st_mode & 07777;
}

TEST(Base64, KnownVectorsAndRoundTrip) {
  EXPECT_EQ(base64_encode(""), "");
  EXPECT_EQ(base64_encode("f"), "Zg==");
  EXPECT_EQ(base64_encode("fo"), "Zm8=");
  EXPECT_EQ(base64_encode("foo"), "Zm9v");
  EXPECT_EQ(base64_encode("user:pa:ss"), "dXNlcjpwYTpzcw==");
  EXPECT_EQ(base64_decode("Zm8="), "fo");
  EXPECT_EQ(base64_decode("Zm8"), "fo");  // padding optional
  std::string all;
  for (int i = 0; i < 256; i++) all.push_back(static_cast<char>(i));
  EXPECT_EQ(base64_decode(base64_encode(all)), all);
  EXPECT_THROW(base64_decode("Zm9v!"), berth::Error);
  EXPECT_THROW(base64_decode("Z"), berth::Error);
}

TEST(AuthConfig, ServerKeys) {
  EXPECT_EQ(auth_server_key("docker.io"), "https://index.docker.io/v1/");
  EXPECT_EQ(auth_server_key("index.docker.io"), "https://index.docker.io/v1/");
  EXPECT_EQ(auth_server_key("localhost:5000"), "localhost:5000");
}

TEST(AuthConfig, DefaultPath) {
  {
    EnvVar dc("DOCKER_CONFIG", "/etc/somewhere");
    EXPECT_EQ(default_auth_config_path(), "/etc/somewhere/config.json");
  }
  EnvVar dc("DOCKER_CONFIG", nullptr);
  EnvVar home("HOME", "/home/tester");
  EXPECT_EQ(default_auth_config_path(), "/home/tester/.docker/config.json");
}

TEST(AuthConfig, MissingFileOrEntryIsNoCredentials) {
  TempDir dir;
  std::string path = dir.path() + "/config.json";
  EXPECT_FALSE(load_credentials("localhost:5000", path));
  berth::write_file(path, "");
  EXPECT_FALSE(load_credentials("localhost:5000", path));
  berth::write_file(path, R"({"auths": {"other:1": {"auth": "YTpi"}}})");
  EXPECT_FALSE(load_credentials("localhost:5000", path));
  EXPECT_FALSE(erase_credentials("localhost:5000", path));
}

TEST(AuthConfig, StoreCreatesPrivateFileAndLoadReadsIt) {
  TempDir dir;
  std::string path = dir.path() + "/new/.docker/config.json";
  store_credentials("localhost:5000", {"alice", "pa:ss word"}, path);
  EXPECT_EQ(mode_of(path), 0600u);
  EXPECT_EQ(mode_of(dir.path() + "/new/.docker"), 0700u);
  json doc = json::parse(berth::read_file(path));
  EXPECT_EQ(doc["auths"]["localhost:5000"]["auth"], base64_encode("alice:pa:ss word"));
  auto c = load_credentials("localhost:5000", path);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->username, "alice");
  EXPECT_EQ(c->password, "pa:ss word");
  // No temporary files left next to it.
  EXPECT_FALSE(berth::path_exists(path + ".tmp"));

  store_credentials("docker.io", {"bob", "hub"}, path);
  doc = json::parse(berth::read_file(path));
  EXPECT_EQ(doc["auths"]["https://index.docker.io/v1/"]["auth"], base64_encode("bob:hub"));
  EXPECT_EQ(load_credentials("docker.io", path), (Credentials{"bob", "hub"}));
  EXPECT_EQ(load_credentials("localhost:5000", path), (Credentials{"alice", "pa:ss word"}));
  EXPECT_THROW(store_credentials("x:1", {"a:b", "c"}, path), berth::Error);
}

TEST(AuthConfig, StorePreservesOtherKeysAndErase) {
  TempDir dir;
  std::string path = dir.path() + "/config.json";
  berth::write_file(path, R"({
    "auths": {"ghcr.io": {"auth": "Z2g6dG9rZW4="}, "localhost:5000": {"auth": "b2xkOm9sZA=="}},
    "credsStore": "desktop",
    "HttpHeaders": {"X-Meta": "1"},
    "proxies": {"default": {"httpProxy": "http://proxy:3128"}}
  })");
  store_credentials("localhost:5000", {"new", "secret"}, path);
  json doc = json::parse(berth::read_file(path));
  EXPECT_EQ(doc["credsStore"], "desktop");
  EXPECT_EQ(doc["HttpHeaders"]["X-Meta"], "1");
  EXPECT_EQ(doc["proxies"]["default"]["httpProxy"], "http://proxy:3128");
  EXPECT_EQ(doc["auths"]["ghcr.io"]["auth"], "Z2g6dG9rZW4=");
  EXPECT_EQ(load_credentials("localhost:5000", path), (Credentials{"new", "secret"}));
  EXPECT_EQ(load_credentials("ghcr.io", path), (Credentials{"gh", "token"}));
  EXPECT_EQ(mode_of(path), 0600u);

  EXPECT_TRUE(erase_credentials("localhost:5000", path));
  EXPECT_FALSE(load_credentials("localhost:5000", path));
  EXPECT_FALSE(erase_credentials("localhost:5000", path));
  doc = json::parse(berth::read_file(path));
  EXPECT_EQ(doc["credsStore"], "desktop");
  EXPECT_TRUE(doc["auths"].contains("ghcr.io"));
}

TEST(AuthConfig, LegacyKeysAndFormats) {
  TempDir dir;
  std::string path = dir.path() + "/config.json";
  berth::write_file(path, R"({"auths": {
    "http://localhost:5000/v1/": {"auth": "bGVnYWN5OnB3"},
    "https://index.docker.io/v1/": {"username": "plain", "password": "text"},
    "helper.io": {},
    "registry.example.com": {"auth": ""}
  }})");
  EXPECT_EQ(load_credentials("localhost:5000", path), (Credentials{"legacy", "pw"}));
  EXPECT_EQ(load_credentials("docker.io", path), (Credentials{"plain", "text"}));
  // Entries a credential helper owns carry nothing here.
  EXPECT_FALSE(load_credentials("helper.io", path));
  EXPECT_FALSE(load_credentials("registry.example.com", path));
  // Storing replaces the legacy spelling; erasing removes every spelling of the host.
  store_credentials("localhost:5000", {"new", "pw2"}, path);
  json doc = json::parse(berth::read_file(path));
  EXPECT_FALSE(doc["auths"].contains("http://localhost:5000/v1/"));
  EXPECT_EQ(load_credentials("localhost:5000", path), (Credentials{"new", "pw2"}));
  EXPECT_TRUE(erase_credentials("docker.io", path));
  EXPECT_FALSE(load_credentials("docker.io", path));
}

TEST(AuthConfig, MalformedFilesNameThePath) {
  TempDir dir;
  std::string path = dir.path() + "/config.json";
  auto error_of = [&](const std::string& content) -> std::string {
    berth::write_file(path, content);
    try {
      load_credentials("localhost:5000", path);
    } catch (const berth::Error& e) {
      return e.what();
    }
    return "(no error)";
  };
  EXPECT_EQ(error_of("{not json").rfind(path + ": invalid JSON", 0), 0u);
  EXPECT_EQ(error_of("[]"), path + ": not a JSON object");
  EXPECT_EQ(error_of(R"({"auths": []})"), path + ": auths: not a JSON object");
  EXPECT_EQ(
      error_of(R"({"auths": {"localhost:5000": {"auth": "!!"}}})").rfind(path + ": auths.localhost:5000.auth:", 0), 0u);
  EXPECT_EQ(error_of(R"({"auths": {"localhost:5000": {"auth": "bm9jb2xvbg=="}}})"),
            path + ": auths.localhost:5000.auth: not base64 of user:password");
  // A malformed file is not overwritten by store.
  error_of("{not json");
  EXPECT_THROW(store_credentials("localhost:5000", {"a", "b"}, path), berth::Error);
}

TEST(AuthConfig, SymlinkedFileIsUpdatedWhereItPoints) {
  TempDir dir;
  std::string real = dir.path() + "/dotfiles-config.json";
  std::string link = dir.path() + "/config.json";
  berth::write_file(real, R"({"credsStore": "x"})");
  ASSERT_EQ(::symlink(real.c_str(), link.c_str()), 0);
  store_credentials("localhost:5000", {"u", "p"}, link);
  struct stat st {};
  ASSERT_EQ(::lstat(link.c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  EXPECT_EQ(load_credentials("localhost:5000", real), (Credentials{"u", "p"}));
}

TEST(WwwAuthenticate, ParsesChallenges) {
  auto cs = parse_www_authenticate(
      R"(Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull,push")");
  ASSERT_EQ(cs.size(), 1u);
  EXPECT_EQ(cs[0].scheme, "bearer");
  EXPECT_EQ(cs[0].params["realm"], "https://auth.docker.io/token");
  EXPECT_EQ(cs[0].params["service"], "registry.docker.io");
  EXPECT_EQ(cs[0].params["scope"], "repository:library/busybox:pull,push");

  cs = parse_www_authenticate(R"(Basic realm="Registry Realm")");
  ASSERT_EQ(cs.size(), 1u);
  EXPECT_EQ(cs[0].scheme, "basic");
  EXPECT_EQ(cs[0].params["realm"], "Registry Realm");

  // Several challenges, unquoted values, spaces around '=', escapes in quoted strings.
  cs = parse_www_authenticate(
      R"(Basic realm=simple, Bearer realm = "http://127.0.0.1:1/token" , service=svc,error="insufficient_scope",)"
      R"( Custom note="a \"quoted\" word")");
  ASSERT_EQ(cs.size(), 3u);
  EXPECT_EQ(cs[0].scheme, "basic");
  EXPECT_EQ(cs[0].params["realm"], "simple");
  EXPECT_EQ(cs[1].scheme, "bearer");
  EXPECT_EQ(cs[1].params["realm"], "http://127.0.0.1:1/token");
  EXPECT_EQ(cs[1].params["service"], "svc");
  EXPECT_EQ(cs[1].params["error"], "insufficient_scope");
  EXPECT_EQ(cs[2].scheme, "custom");
  EXPECT_EQ(cs[2].params["note"], "a \"quoted\" word");

  cs = parse_www_authenticate("Negotiate");
  ASSERT_EQ(cs.size(), 1u);
  EXPECT_EQ(cs[0].scheme, "negotiate");
  EXPECT_TRUE(cs[0].params.empty());
  EXPECT_TRUE(parse_www_authenticate("").empty());
  // Garbage doesn't crash.
  parse_www_authenticate(R"(=,= "unterminated)");
}

}  // namespace
