// Registry credentials in docker's config.json format, so `docker login` and `berth login`
// share them: {"auths": {"<server>": {"auth": "base64(user:password)"}}, …other keys…}.
// Credential helpers ("credsStore"/"credHelpers") are not run: entries they own carry no
// "auth" and are treated as absent.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace berth::image {

struct Credentials {
  std::string username;
  std::string password;
  bool operator==(const Credentials&) const = default;
};

// The "auths" key docker uses for a registry domain: "https://index.docker.io/v1/" for
// docker.io (and index.docker.io), the domain itself otherwise.
std::string auth_server_key(std::string_view domain);

// $DOCKER_CONFIG/config.json, else $HOME/.docker/config.json (HOME from /etc/passwd if unset).
std::string default_auth_config_path();

// The credentials stored for domain in the file at path (default_auth_config_path() when
// empty). nullopt when the file or the entry is missing or the entry holds no credentials.
// An exact key match wins; otherwise keys are compared by host, as docker does for legacy
// keys like "http://localhost:5000/v1/". Throws Error naming the file on malformed content.
std::optional<Credentials> load_credentials(std::string_view domain, const std::string& path = {});

// Stores credentials for domain, keeping every other key of the file. The file is replaced
// atomically with mode 0600; a missing parent directory is created with mode 0700.
void store_credentials(std::string_view domain, const Credentials& creds, const std::string& path = {});

// Removes the domain's entries (the exact key and keys for the same host). Returns false
// when there was nothing to remove (the file is then left untouched).
bool erase_credentials(std::string_view domain, const std::string& path = {});

// Standard base64 with padding (RFC 4648 §4); decode throws Error on malformed input.
std::string base64_encode(std::string_view data);
std::string base64_decode(std::string_view text);

}  // namespace berth::image
