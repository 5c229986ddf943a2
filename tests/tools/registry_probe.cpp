// A small command line over berth's registry client, for the integration tests.
//
//   registry_probe [flags] manifest REF                  {"media_type","digest","size","body"}
//   registry_probe [flags] blob REF DIGEST OUTFILE       writes the blob; {"digest" (of the bytes), "size"}
//   registry_probe [flags] blobs REF DIGEST…             downloads in parallel threads; {DIGEST: digest of bytes}
//   registry_probe [flags] blob-exists REF DIGEST        true / false
//   registry_probe [flags] push-blob REF FILE [--chunk N]  {"digest","size","uploaded"}
//   registry_probe [flags] push-manifest REF FILE MEDIATYPE  {"digest"}
//   registry_probe [flags] check-auth REF                "ok"
//   registry_probe parse REF                             the parsed reference as JSON
//
// flags: --user U --password P (or --auth-config FILE: docker config.json), --insecure DOMAIN
// (repeatable), --connect-timeout S, --stall-timeout S. On failure: the error's one line on
// stderr, exit 1.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "image/auth_config.hpp"
#include "image/digest.hpp"
#include "image/reference.hpp"
#include "image/registry.hpp"
#include "util/error.hpp"
#include "util/fd.hpp"
#include "util/fs.hpp"

using berth::Error;
using berth::UniqueFd;
using namespace berth::image;
using json = nlohmann::json;

namespace {

[[noreturn]] void usage() {
  std::cerr << "usage: registry_probe [--user U --password P | --auth-config F] [--insecure D]… "
               "manifest|blob|blobs|blob-exists|push-blob|push-manifest|check-auth|parse ARGS…\n";
  std::exit(2);
}

long to_long(const std::string& s) {
  size_t pos = 0;
  long v = std::stol(s, &pos);
  if (pos != s.size() || v < 0) throw Error("not a non-negative number: \"" + s + "\"");
  return v;
}

int run(int argc, char** argv) {
  RegistryOptions opts;
  std::string user, password, auth_config;
  bool have_user = false;
  uint64_t chunk = 0;
  std::vector<std::string> args;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage();
      return argv[++i];
    };
    if (a == "--user") {
      user = value();
      have_user = true;
    } else if (a == "--password") {
      password = value();
    } else if (a == "--auth-config") {
      auth_config = value();
    } else if (a == "--insecure") {
      opts.insecure_registries.push_back(value());
    } else if (a == "--connect-timeout") {
      opts.connect_timeout_s = to_long(value());
    } else if (a == "--stall-timeout") {
      opts.stall_timeout_s = to_long(value());
    } else if (a == "--chunk") {
      chunk = static_cast<uint64_t>(to_long(value()));
    } else if (a.starts_with("--")) {
      usage();
    } else {
      args.push_back(a);
    }
  }
  if (args.size() < 2) usage();
  const std::string& cmd = args[0];
  Reference ref = parse_reference(args[1]);
  if (cmd == "parse") {
    std::cout << json{{"domain", ref.domain},
                      {"path", ref.path},
                      {"tag", ref.tag},
                      {"digest", ref.digest},
                      {"name", ref.name()},
                      {"str", ref.str()},
                      {"familiar", ref.familiar()},
                      {"registry_host", registry_host(ref.domain)}}
                     .dump()
              << "\n";
    return 0;
  }
  if (have_user)
    opts.credentials = Credentials{user, password};
  else if (!auth_config.empty())
    opts.credentials = load_credentials(ref.domain, auth_config);
  RegistryClient client(ref, opts);

  if (cmd == "manifest" && args.size() == 2) {
    auto m = client.get_manifest(ref.tag_or_digest());
    std::cout
        << json{{"media_type", m.media_type}, {"digest", m.digest}, {"size", m.body.size()}, {"body", m.body}}.dump()
        << "\n";
  } else if (cmd == "blob" && args.size() == 4) {
    UniqueFd out = berth::open_or_throw(args[3], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    Sha256 hash;
    uint64_t size = 0;
    client.get_blob(args[2], [&](const char* data, size_t len) {
      hash.update(data, len);
      size += len;
      berth::write_all(out.get(), std::string_view(data, len), "write " + args[3]);
    });
    std::cout << json{{"digest", hash.digest()}, {"size", size}}.dump() << "\n";
  } else if (cmd == "blobs" && args.size() >= 3) {
    // One thread per blob, all on the same client: exercises its thread safety.
    std::mutex mu;
    json result = json::object();
    std::vector<std::string> errors;
    std::vector<std::thread> threads;
    for (size_t i = 2; i < args.size(); i++) {
      threads.emplace_back([&, digest = args[i]] {
        try {
          Sha256 hash;
          client.get_blob(digest, [&](const char* data, size_t len) { hash.update(data, len); });
          std::string got = hash.digest();
          std::lock_guard lock(mu);
          result[digest] = got;
        } catch (const std::exception& e) {
          std::lock_guard lock(mu);
          errors.push_back(e.what());
        }
      });
    }
    for (auto& t : threads) t.join();
    if (!errors.empty()) throw Error(errors.front());
    std::cout << result.dump() << "\n";
  } else if (cmd == "blob-exists" && args.size() == 3) {
    std::cout << (client.blob_exists(args[2]) ? "true" : "false") << "\n";
  } else if (cmd == "push-blob" && args.size() == 3) {
    std::string digest;
    uint64_t size = 0;
    {
      UniqueFd in = berth::open_or_throw(args[2], O_RDONLY);
      Sha256 hash;
      char buf[65536];
      for (;;) {
        ssize_t n = ::read(in.get(), buf, sizeof buf);
        if (n < 0) berth::throw_errno("read " + args[2]);
        if (n == 0) break;
        hash.update(buf, static_cast<size_t>(n));
        size += static_cast<uint64_t>(n);
      }
      digest = hash.digest();
    }
    UniqueFd in = berth::open_or_throw(args[2], O_RDONLY);
    bool uploaded = client.put_blob(
        digest, size,
        [&](char* buf, size_t len) -> size_t {
          for (;;) {
            ssize_t n = ::read(in.get(), buf, len);
            if (n >= 0) return static_cast<size_t>(n);
            if (errno != EINTR) berth::throw_errno("read " + args[2]);
          }
        },
        chunk);
    std::cout << json{{"digest", digest}, {"size", size}, {"uploaded", uploaded}}.dump() << "\n";
  } else if (cmd == "push-manifest" && args.size() == 4) {
    std::string body = berth::read_file(args[2]);
    std::string digest = client.put_manifest(ref.tag_or_digest(), args[3], body);
    std::cout << json{{"digest", digest}}.dump() << "\n";
  } else if (cmd == "check-auth" && args.size() == 2) {
    client.check_auth();
    std::cout << "ok\n";
  } else {
    usage();
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
}
