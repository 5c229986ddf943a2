#include "image/registry.hpp"

#include <arpa/inet.h>
#include <curl/curl.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <exception>
#include <mutex>
#include <nlohmann/json.hpp>

#include "image/digest.hpp"
#include "image/oci.hpp"
#include "util/error.hpp"
#include "util/strings.hpp"

namespace berth::image {

namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr size_t kMaxManifestBytes = 4 << 20;  // containerd's limit too
constexpr size_t kMaxSmallBody = 1 << 20;      // error bodies, tokens
constexpr long kMaxRedirects = 10;
constexpr size_t kMaxPooledHandles = 16;
constexpr long kUploadCommitStall = 600;

// ---------------------------------------------------------------------------------------
// libcurl plumbing

void curl_init_once() {
  static std::once_flag once;
  // curl_global_init is not thread-safe; run it once, before any handle exists.
  std::call_once(once, [] {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) throw Error("libcurl: global initialization failed");
  });
}

struct CurlDeleter {
  void operator()(CURL* h) const { curl_easy_cleanup(h); }
};
using CurlPtr = std::unique_ptr<CURL, CurlDeleter>;

struct SlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};
using SlistPtr = std::unique_ptr<curl_slist, SlistDeleter>;

struct CurlUrlDeleter {
  void operator()(CURLU* u) const { curl_url_cleanup(u); }
};
using CurlUrlPtr = std::unique_ptr<CURLU, CurlUrlDeleter>;

struct CurlStringDeleter {
  void operator()(char* s) const { curl_free(s); }
};
using CurlString = std::unique_ptr<char, CurlStringDeleter>;

// Easy handles are kept between requests so their connections (and TLS sessions) are
// reused; each request has a handle to itself, so threads never share one.
class HandlePool {
 public:
  class Lease {
   public:
    Lease(HandlePool* pool, CurlPtr h) : pool_(pool), h_(std::move(h)) {}
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ~Lease() { pool_->release(std::move(h_)); }
    CURL* get() const { return h_.get(); }

   private:
    HandlePool* pool_;
    CurlPtr h_;
  };

  Lease acquire() {
    {
      std::lock_guard lock(mu_);
      if (!free_.empty()) {
        CurlPtr h = std::move(free_.back());
        free_.pop_back();
        curl_easy_reset(h.get());
        return Lease(this, std::move(h));
      }
    }
    CurlPtr h(curl_easy_init());
    if (!h) throw Error("libcurl: cannot create a handle");
    return Lease(this, std::move(h));
  }

 private:
  void release(CurlPtr h) {
    std::lock_guard lock(mu_);
    if (h && free_.size() < kMaxPooledHandles) free_.push_back(std::move(h));
  }

  std::mutex mu_;
  std::vector<CurlPtr> free_;
};

std::string curl_escape(std::string_view s) {
  CurlString out(curl_easy_escape(nullptr, s.data(), static_cast<int>(s.size())));
  if (!out) throw Error("libcurl: out of memory");
  return out.get();
}

// "https://user@host:port/path" -> "host:port", with the scheme's default port made explicit.
std::string url_authority(std::string_view url) {
  size_t scheme_end = url.find("://");
  std::string_view scheme = scheme_end == std::string_view::npos ? "" : url.substr(0, scheme_end);
  std::string_view rest = scheme_end == std::string_view::npos ? url : url.substr(scheme_end + 3);
  std::string_view auth = rest.substr(0, rest.find_first_of("/?#"));
  if (size_t at = auth.rfind('@'); at != std::string_view::npos) auth.remove_prefix(at + 1);
  std::string out(auth);
  bool has_port = auth.empty()          ? false
                  : auth.front() == '[' ? auth.find("]:") != std::string_view::npos
                                        : auth.find(':') != std::string_view::npos;
  if (!has_port && !auth.empty()) out += scheme == "http" ? ":80" : ":443";
  return out;
}

// The host part of a domain or authority, without port or brackets.
std::string domain_host(std::string_view domain) {
  if (!domain.empty() && domain.front() == '[') return std::string(domain.substr(1, domain.find(']') - 1));
  return std::string(domain.substr(0, domain.find(':')));
}

// "10.0.0.0/8" or "fd00::/8" contains the IP literal host?
bool cidr_contains(std::string_view cidr, const std::string& host) {
  size_t slash = cidr.find('/');
  if (slash == std::string_view::npos) return false;
  std::string net(cidr.substr(0, slash));
  int bits = 0;
  for (char c : cidr.substr(slash + 1)) {
    if (c < '0' || c > '9' || bits > 128) return false;
    bits = bits * 10 + (c - '0');
  }
  unsigned char a[16], b[16];
  size_t len = 0;
  if (inet_pton(AF_INET, net.c_str(), a) == 1 && inet_pton(AF_INET, host.c_str(), b) == 1)
    len = 4;
  else if (inet_pton(AF_INET6, net.c_str(), a) == 1 && inet_pton(AF_INET6, host.c_str(), b) == 1)
    len = 16;
  else
    return false;
  if (static_cast<size_t>(bits) > len * 8) return false;
  for (size_t i = 0; i < len && bits > 0; i++, bits -= 8) {
    unsigned mask = bits >= 8 ? 0xffu : (0xffu << (8 - bits)) & 0xffu;
    if ((a[i] & mask) != (b[i] & mask)) return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------
// One HTTP exchange

struct HttpRequest {
  std::string method = "GET";
  std::string url;
  std::vector<std::string> headers;
  std::string authorization;  // the Authorization header's value, if any
  std::string what;           // for messages: "fetch manifest X"
  // Request body: from reader (upload_size bytes, not replayable) or from body.
  const std::function<size_t(char*, size_t)>* reader = nullptr;
  uint64_t upload_size = 0;
  std::optional<std::string_view> body;
  // The body of a 2xx response goes to sink when set; any other body is collected.
  const std::function<void(const char*, size_t)>* sink = nullptr;
  size_t max_body = kMaxSmallBody;
  bool follow_redirects = false;
  bool verify_tls = true;
  long timeout_s = 0;    // whole exchange; 0: none (the stall limit still applies)
  long min_stall_s = 0;  // raises the stall limit for this request
};

struct HttpResponse {
  long status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // names lowercased
  std::string body;

  std::string header(std::string_view name) const {
    for (auto& [n, v] : headers)
      if (n == name) return v;
    return {};
  }
  std::vector<std::string> all(std::string_view name) const {
    std::vector<std::string> out;
    for (auto& [n, v] : headers)
      if (n == name) out.push_back(v);
    return out;
  }
  bool ok() const { return status >= 200 && status < 300; }

  // A transport failure (no HTTP response): libcurl's code and the error to report.
  CURLcode curl_code = CURLE_OK;
  std::optional<Error> failure;
};

struct Transfer {
  const HttpRequest* req = nullptr;
  HttpResponse* resp = nullptr;
  uint64_t sent = 0;
  bool too_large = false;
  std::exception_ptr error;  // thrown by a callback; exceptions must not cross libcurl's C frames
};

size_t on_header(char* buf, size_t size, size_t n, void* ud) {
  auto* t = static_cast<Transfer*>(ud);
  std::string_view line(buf, size * n);
  if (line.starts_with("HTTP/")) {
    // Each response (a redirect, a 100 Continue, the final one) starts afresh.
    t->resp->headers.clear();
    size_t sp = line.find(' ');
    long status = 0;
    for (size_t i = sp == std::string_view::npos ? line.size() : sp + 1;
         i < line.size() && line[i] >= '0' && line[i] <= '9'; i++)
      status = status * 10 + (line[i] - '0');
    t->resp->status = status;
  } else if (size_t colon = line.find(':'); colon != std::string_view::npos) {
    t->resp->headers.emplace_back(lower(trim(line.substr(0, colon))), std::string(trim(line.substr(colon + 1))));
  }
  return size * n;
}

size_t on_write(char* buf, size_t size, size_t n, void* ud) {
  auto* t = static_cast<Transfer*>(ud);
  size_t len = size * n;
  long status = t->resp->status;
  if (status >= 300 && status < 400) return len;  // a redirect's own body
  if (status >= 200 && status < 300 && t->req->sink) {
    try {
      (*t->req->sink)(buf, len);
    } catch (...) {
      t->error = std::current_exception();
      return CURL_WRITEFUNC_ERROR;
    }
    return len;
  }
  if (t->resp->body.size() + len > t->req->max_body) {
    t->too_large = true;
    return CURL_WRITEFUNC_ERROR;
  }
  t->resp->body.append(buf, len);
  return len;
}

size_t on_read(char* buf, size_t size, size_t n, void* ud) {
  auto* t = static_cast<Transfer*>(ud);
  uint64_t left = t->req->upload_size - t->sent;
  size_t want = static_cast<size_t>(std::min<uint64_t>(size * n, left));
  if (want == 0) return 0;
  size_t got = 0;
  try {
    got = (*t->req->reader)(buf, want);
    if (got == 0 || got > want)
      throw Error(t->req->what + ": the data ended after " + std::to_string(t->sent) + " of " +
                  std::to_string(t->req->upload_size) + " bytes");
  } catch (...) {
    t->error = std::current_exception();
    return CURL_READFUNC_ABORT;
  }
  t->sent += got;
  return got;
}

template <typename T>
void setopt(CURL* h, CURLoption opt, T value) {
  if (CURLcode rc = curl_easy_setopt(h, opt, value); rc != CURLE_OK)
    throw Error(std::string("libcurl: setting an option: ") + curl_easy_strerror(rc));
}

// One line naming what failed where: "connect to 127.0.0.1:1: Connection refused".
Error transport_error(CURL* h, CURLcode rc, const char* errbuf, const HttpRequest& req) {
  const char* eff = nullptr;
  curl_easy_getinfo(h, CURLINFO_EFFECTIVE_URL, &eff);
  std::string authority = url_authority(eff ? eff : req.url);
  long os_errno = 0;
  curl_easy_getinfo(h, CURLINFO_OS_ERRNO, &os_errno);
  std::string detail = errbuf[0] ? errbuf : curl_easy_strerror(rc);
  switch (rc) {
    case CURLE_COULDNT_CONNECT:
      if (os_errno)
        return Error("connect to " + authority + ": " + std::strerror(static_cast<int>(os_errno)),
                     static_cast<int>(os_errno));
      return Error("connect to " + authority + ": " + detail, ECONNREFUSED);
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
      return Error("resolve " + domain_host(authority) + ": " + detail, EHOSTUNREACH);
    case CURLE_OPERATION_TIMEDOUT: {
      curl_off_t connected = 0;
      curl_easy_getinfo(h, CURLINFO_CONNECT_TIME_T, &connected);
      if (connected == 0) return Error("connect to " + authority + ": timed out (" + detail + ")", ETIMEDOUT);
      return Error(req.what + ": " + authority + " stalled (" + detail + ")", ETIMEDOUT);
    }
    case CURLE_PEER_FAILED_VERIFICATION:
      return Error("TLS connection to " + authority + ": certificate not trusted (" + detail +
                       "; list the registry as insecure to skip verification)",
                   EPROTO);
    case CURLE_SSL_CONNECT_ERROR:
      if (detail.find("wrong version number") != std::string::npos)
        return Error("TLS connection to " + authority + ": " + detail +
                         " (it may speak plain HTTP: list the registry as insecure to allow that)",
                     EPROTO);
      return Error("TLS connection to " + authority + ": " + detail, EPROTO);
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
      return Error("TLS connection to " + authority + ": " + detail, EPROTO);
    case CURLE_TOO_MANY_REDIRECTS:
      return Error(req.what + ": too many redirects (last " + authority + ")", EPROTO);
    default: {
      int err = os_errno ? static_cast<int>(os_errno) : EIO;
      return Error(req.what + ": " + authority + ": " + detail, err);
    }
  }
}

struct Options {
  std::string user_agent;
  long connect_timeout_s;
  long stall_timeout_s;
};

// Transport failures are returned in the response (the ping decides on them), not thrown.
HttpResponse perform_raw(HandlePool& pool, const Options& o, const HttpRequest& req) {
  HandlePool::Lease lease = pool.acquire();
  CURL* h = lease.get();
  HttpResponse resp;
  Transfer t;
  t.req = &req;
  t.resp = &resp;
  char errbuf[CURL_ERROR_SIZE] = {0};

  SlistPtr headers;
  auto add_header = [&](const std::string& line) {
    curl_slist* next = curl_slist_append(headers.get(), line.c_str());
    if (!next) throw Error("libcurl: out of memory");
    (void)headers.release();
    headers.reset(next);
  };
  for (auto& line : req.headers) add_header(line);
  if (!req.authorization.empty()) add_header("Authorization: " + req.authorization);

  setopt(h, CURLOPT_URL, req.url.c_str());
  setopt(h, CURLOPT_NOSIGNAL, 1L);  // threads: no SIGALRM for timeouts
  setopt(h, CURLOPT_ERRORBUFFER, errbuf);
  setopt(h, CURLOPT_USERAGENT, o.user_agent.c_str());
  setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  setopt(h, CURLOPT_CONNECTTIMEOUT, o.connect_timeout_s);
  setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
  setopt(h, CURLOPT_LOW_SPEED_TIME, std::max(o.stall_timeout_s, req.min_stall_s));
  if (req.timeout_s > 0) setopt(h, CURLOPT_TIMEOUT, req.timeout_s);
  setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
  // Big reads: a layer's bytes go to a hash, a file and the unpacker per callback, so
  // 512 KiB callbacks cost far less than libcurl's default 16 KiB ones.
  setopt(h, CURLOPT_BUFFERSIZE, 512L << 10);
  setopt(h, CURLOPT_UPLOAD_BUFFERSIZE, 512L << 10);
  // libcurl drops the Authorization header when a redirect leaves the host (CDN, S3).
  setopt(h, CURLOPT_FOLLOWLOCATION, req.follow_redirects ? 1L : 0L);
  setopt(h, CURLOPT_MAXREDIRS, kMaxRedirects);
  setopt(h, CURLOPT_SSL_VERIFYPEER, req.verify_tls ? 1L : 0L);
  setopt(h, CURLOPT_SSL_VERIFYHOST, req.verify_tls ? 2L : 0L);
  setopt(h, CURLOPT_HEADERFUNCTION, on_header);
  setopt(h, CURLOPT_HEADERDATA, &t);
  setopt(h, CURLOPT_WRITEFUNCTION, on_write);
  setopt(h, CURLOPT_WRITEDATA, &t);

  if (req.method == "HEAD") {
    setopt(h, CURLOPT_NOBODY, 1L);
  } else if (req.reader) {
    // Streamed from the caller with a known length (PUT, or PATCH via the custom verb).
    setopt(h, CURLOPT_UPLOAD, 1L);
    setopt(h, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(req.upload_size));
    setopt(h, CURLOPT_READFUNCTION, on_read);
    setopt(h, CURLOPT_READDATA, &t);
    if (req.method != "PUT") setopt(h, CURLOPT_CUSTOMREQUEST, req.method.c_str());
  } else if (req.body) {
    // In memory, so libcurl can replay it if it must.
    setopt(h, CURLOPT_POST, 1L);
    setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(req.body->size()));
    setopt(h, CURLOPT_POSTFIELDS, req.body->data());
    if (req.method != "POST") setopt(h, CURLOPT_CUSTOMREQUEST, req.method.c_str());
  } else if (req.method != "GET") {
    setopt(h, CURLOPT_CUSTOMREQUEST, req.method.c_str());
  }
  if (headers) setopt(h, CURLOPT_HTTPHEADER, headers.get());

  CURLcode rc = curl_easy_perform(h);
  if (t.error) std::rethrow_exception(t.error);
  if (t.too_large)
    throw Error(req.what + ": the response from " + url_authority(req.url) + " is larger than " +
                    std::to_string(req.max_body) + " bytes",
                EFBIG);
  if (rc != CURLE_OK) {
    resp.curl_code = rc;
    resp.failure = transport_error(h, rc, errbuf, req);
  }
  return resp;
}

HttpResponse perform(HandlePool& pool, const Options& o, const HttpRequest& req) {
  HttpResponse resp = perform_raw(pool, o, req);
  if (resp.failure) throw *resp.failure;
  return resp;
}

// ---------------------------------------------------------------------------------------
// Registry error bodies: {"errors": [{"code": "MANIFEST_UNKNOWN", "message": "…", "detail": …}]}

std::string registry_message(const HttpResponse& resp) {
  json doc = json::parse(resp.body, nullptr, false);
  std::string out;
  if (doc.is_object() && doc.contains("errors") && doc["errors"].is_array()) {
    for (auto& e : doc["errors"]) {
      if (!e.is_object()) continue;
      std::string code = e.contains("code") && e["code"].is_string() ? e["code"].get<std::string>() : "";
      std::string message = e.contains("message") && e["message"].is_string() ? e["message"].get<std::string>() : "";
      // Like docker: "manifest unknown" for MANIFEST_UNKNOWN, then the message if it says more.
      std::string text = lower(code);
      std::replace(text.begin(), text.end(), '_', ' ');
      if (!message.empty() && message != text) text += text.empty() ? message : ": " + message;
      if (text.empty()) continue;
      if (!out.empty()) out += "; ";
      out += text;
    }
  } else if (doc.is_object()) {
    // Token servers: {"details": "incorrect username or password"} (Docker Hub) or {"error": …}.
    for (const char* key : {"details", "error_description", "error", "message"})
      if (doc.contains(key) && doc[key].is_string()) return doc[key].get<std::string>();
  }
  if (out.empty()) {
    std::string_view body = trim(resp.body);
    // A short plain-text body is worth showing; an HTML page is not.
    if (!body.empty() && body.size() <= 200 && body.find('\n') == std::string_view::npos && body.front() != '<')
      out = body;
  }
  return out;
}

std::string status_text(const HttpResponse& resp) {
  std::string msg = registry_message(resp);
  std::string s = "HTTP " + std::to_string(resp.status);
  return msg.empty() ? s : msg + " (" + s + ")";
}

int errno_for_status(long status) {
  if (status == 401 || status == 403) return EACCES;
  if (status == 404) return ENOENT;
  return EPROTO;
}

[[noreturn]] void throw_status(const HttpResponse& resp, const std::string& what) {
  throw Error(what + ": " + status_text(resp), errno_for_status(resp.status));
}

std::string media_type_of(std::string_view content_type) {
  return lower(trim(content_type.substr(0, content_type.find(';'))));
}

bool is_tag(std::string_view s) {
  if (s.empty() || s.size() > 128) return false;
  for (size_t i = 0; i < s.size(); i++) {
    char c = s[i];
    bool word = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
    if (!word && (i == 0 || (c != '.' && c != '-'))) return false;
  }
  return true;
}

enum class Access { None, Pull, Push };

}  // namespace

// ---------------------------------------------------------------------------------------
// WWW-Authenticate: 1#challenge, challenge = scheme [ 1*SP #( name "=" ( token / quoted-string ) ) ]

std::vector<AuthChallenge> parse_www_authenticate(std::string_view h) {
  std::vector<AuthChallenge> out;
  size_t i = 0;
  auto skip_ws = [&] {
    while (i < h.size() && (h[i] == ' ' || h[i] == '\t')) i++;
  };
  auto is_delim = [&](char c) { return c == ' ' || c == '\t' || c == ',' || c == '='; };
  auto token = [&] {
    size_t start = i;
    while (i < h.size() && !is_delim(h[i])) i++;
    return h.substr(start, i - start);
  };
  while (i < h.size()) {
    skip_ws();
    if (i < h.size() && h[i] == ',') {
      i++;
      continue;
    }
    std::string_view scheme = token();
    if (scheme.empty()) {
      i++;  // a stray '=': skip it
      continue;
    }
    AuthChallenge c;
    c.scheme = lower(scheme);
    for (;;) {
      skip_ws();
      size_t param_start = i;
      std::string_view name = token();
      skip_ws();
      if (name.empty() || i >= h.size() || h[i] != '=') {
        i = param_start;  // not a parameter: the next challenge's scheme (or the end)
        break;
      }
      i++;  // '='
      skip_ws();
      std::string value;
      if (i < h.size() && h[i] == '"') {
        for (i++; i < h.size() && h[i] != '"'; i++) {
          if (h[i] == '\\' && i + 1 < h.size()) i++;
          value.push_back(h[i]);
        }
        if (i < h.size()) i++;  // closing quote
      } else {
        size_t start = i;
        while (i < h.size() && h[i] != ',' && h[i] != ' ' && h[i] != '\t') i++;
        value = h.substr(start, i - start);
      }
      c.params[lower(name)] = value;
      skip_ws();
      if (i < h.size() && h[i] == ',') i++;
    }
    out.push_back(std::move(c));
  }
  return out;
}

// ---------------------------------------------------------------------------------------

struct RegistryClient::Impl {
  Reference ref;
  RegistryOptions opts;
  Options http;
  std::string host;  // registry_host(ref.domain)
  bool loopback;
  bool insecure;
  HandlePool pool;

  std::mutex endpoint_mu;  // held for the whole ping, so concurrent first calls ping once
  std::string base;        // "http://127.0.0.1:5000", empty until pinged

  std::mutex mu;  // guards challenge and tokens
  std::optional<AuthChallenge> challenge;
  struct Token {
    std::string value;
    Clock::time_point expires;
  };
  std::map<std::string, Token> tokens;  // by scope
  std::mutex token_fetch_mu;            // one token request at a time (parallel pulls share it)

  Impl(const Reference& r, RegistryOptions o)
      : ref(r), opts(std::move(o)), http{opts.user_agent, opts.connect_timeout_s, opts.stall_timeout_s} {
    host = registry_host(ref.domain);
    loopback = is_loopback_domain(ref.domain);
    insecure = loopback || is_insecure(ref.domain) || is_insecure(host);
  }

  bool is_insecure(std::string_view domain) const {
    std::string h = domain_host(domain);
    for (auto& entry : opts.insecure_registries) {
      if (entry == domain || cidr_contains(entry, h)) return true;
    }
    return false;
  }

  // Whether to verify TLS for a URL: the registry's own by its setting, others (a token
  // realm, an upload Location elsewhere) unless loopback or listed as insecure.
  bool verify_url(std::string_view url) const {
    size_t scheme_end = url.find("://");
    std::string_view rest = scheme_end == std::string_view::npos ? url : url.substr(scheme_end + 3);
    std::string authority(rest.substr(0, rest.find_first_of("/?#")));
    if (size_t at = authority.rfind('@'); at != std::string::npos) authority.erase(0, at + 1);
    if (authority == host || authority == ref.domain) return !insecure;
    return !(is_loopback_domain(authority) || is_insecure(authority));
  }

  std::string repo_url(std::string_view kind, std::string_view what) {
    return endpoint() + "/v2/" + ref.path + "/" + std::string(kind) + "/" + std::string(what);
  }

  std::string display(std::string_view tag_or_digest) const {
    std::string s = ref.familiar_name();
    s += tag_or_digest.find(':') == std::string_view::npos ? ":" : "@";
    s += tag_or_digest;
    return s;
  }

  std::string endpoint() {
    std::lock_guard lock(endpoint_mu);
    if (!base.empty()) return base;
    auto ping = [&](const std::string& scheme, bool verify, long timeout) {
      HttpRequest r;
      r.url = scheme + "://" + host + "/v2/";
      r.what = "ping " + r.url;
      r.verify_tls = verify;
      r.follow_redirects = true;
      r.timeout_s = timeout;
      return perform_raw(pool, http, r);
    };
    // Bounds a TLS attempt on a plain-HTTP server that waits for a line end in the TLS hello.
    long tls_probe_timeout = std::max(opts.connect_timeout_s, 1L);
    std::string scheme;
    HttpResponse resp;
    if (loopback) {
      // Plain HTTP first; HTTPS (unverified) only when the answer says it's a TLS port: a
      // 400 ("client sent an HTTP request to an HTTPS server") or a non-HTTP reply.
      scheme = "http";
      resp = ping(scheme, false, 0);
      bool tls_port = resp.failure
                          ? (resp.curl_code == CURLE_GOT_NOTHING || resp.curl_code == CURLE_RECV_ERROR ||
                             resp.curl_code == CURLE_WEIRD_SERVER_REPLY || resp.curl_code == CURLE_UNSUPPORTED_PROTOCOL)
                          : resp.status == 400;
      if (tls_port) {
        HttpResponse tls = ping("https", false, tls_probe_timeout);
        if (!tls.failure) {
          scheme = "https";
          resp = std::move(tls);
        }
      }
    } else if (insecure) {
      // docker's order: HTTPS without verification, then plain HTTP on a transport failure.
      scheme = "https";
      resp = ping(scheme, false, tls_probe_timeout);
      if (resp.failure) {
        HttpResponse plain = ping("http", false, 0);
        if (plain.failure) {
          std::string tls_msg = resp.failure->what(), http_msg = plain.failure->what();
          if (tls_msg == http_msg) throw *plain.failure;
          throw Error(tls_msg + " (over plain HTTP: " + http_msg + ")", plain.failure->errnum());
        }
        scheme = "http";
        resp = std::move(plain);
      }
    } else {
      scheme = "https";
      resp = ping(scheme, true, 0);
    }
    if (resp.failure) throw *resp.failure;
    base = scheme + "://" + host;
    if (resp.status == 401) remember_challenge(resp);
    return base;
  }

  void remember_challenge(const HttpResponse& resp) {
    std::optional<AuthChallenge> best;
    for (auto& header : resp.all("www-authenticate"))
      for (auto& c : parse_www_authenticate(header))
        if (c.scheme == "bearer" || (c.scheme == "basic" && !best)) best = c;
    std::lock_guard lock(mu);
    if (best) challenge = best;
  }

  std::string scope_for(Access access) const {
    switch (access) {
      case Access::None:
        return {};
      case Access::Pull:
        return "repository:" + ref.path + ":pull";
      case Access::Push:
        return "repository:" + ref.path + ":pull,push";
    }
    return {};
  }

  std::string basic_header() const {
    return "Basic " + base64_encode(opts.credentials->username + ":" + opts.credentials->password);
  }

  // The Authorization value to send for access, per the known challenge ("" for none).
  // fresh: set when a new token was fetched (asking again would bring nothing new).
  std::string authorization(Access access, bool refresh, bool* fresh = nullptr) {
    if (fresh) *fresh = false;
    std::optional<AuthChallenge> c;
    {
      std::lock_guard lock(mu);
      c = challenge;
    }
    if (!c) return {};
    if (c->scheme == "basic") return opts.credentials ? basic_header() : std::string();
    if (c->scheme != "bearer") return {};
    std::string scope = scope_for(access);
    std::lock_guard fetch_lock(token_fetch_mu);
    if (!refresh) {
      std::lock_guard lock(mu);
      auto it = tokens.find(scope);
      if (it != tokens.end() && Clock::now() < it->second.expires) return "Bearer " + it->second.value;
    }
    Token t = fetch_token(*c, scope);
    if (fresh) *fresh = true;
    std::lock_guard lock(mu);
    tokens[scope] = t;
    return "Bearer " + t.value;
  }

  Token fetch_token(const AuthChallenge& c, const std::string& scope) {
    auto realm_it = c.params.find("realm");
    if (realm_it == c.params.end() || realm_it->second.empty())
      throw Error(ref.domain + ": the registry asks for a bearer token but names no realm", EPROTO);
    const std::string& realm = realm_it->second;
    std::string url = realm;
    char sep = realm.find('?') == std::string::npos ? '?' : '&';
    if (auto s = c.params.find("service"); s != c.params.end()) {
      url += sep + std::string("service=") + curl_escape(s->second);
      sep = '&';
    }
    if (!scope.empty()) url += sep + std::string("scope=") + curl_escape(scope);
    HttpRequest r;
    r.url = url;
    r.what = "fetch a token from " + url_authority(realm);
    r.verify_tls = verify_url(realm);
    r.follow_redirects = true;
    if (opts.credentials) r.authorization = basic_header();
    HttpResponse resp = perform(pool, http, r);
    if (resp.status == 401 || resp.status == 403) {
      std::string msg = registry_message(resp);
      if (opts.credentials)
        throw Error("wrong credentials for " + ref.domain + (msg.empty() ? "" : ": " + msg), EACCES);
      throw Error(ref.name() + ": unauthorized: authentication required (no credentials given)", EACCES);
    }
    if (!resp.ok()) throw_status(resp, r.what);
    json doc = json::parse(resp.body, nullptr, false);
    std::string value;
    long expires_in = 60;
    if (doc.is_object()) {
      for (const char* key : {"token", "access_token"})
        if (value.empty() && doc.contains(key) && doc[key].is_string()) value = doc[key].get<std::string>();
      if (doc.contains("expires_in") && doc["expires_in"].is_number_integer())
        expires_in = std::max(doc["expires_in"].get<long>(), 1L);
    }
    if (value.empty()) throw Error(r.what + ": the response carries no token", EPROTO);
    // Renew a little early so a token doesn't expire between the check and the request.
    auto margin = std::chrono::seconds(std::min(expires_in / 4, 10L));
    return Token{value, Clock::now() + std::chrono::seconds(expires_in) - margin};
  }

  // Sends req with credentials for access; on a 401, learns the challenge and retries once
  // when there is something new to send (only requests whose body can be sent again).
  HttpResponse request(HttpRequest& req, Access access) {
    endpoint();
    bool fresh = false;
    std::string auth = authorization(access, false, &fresh);
    for (int attempt = 0;; attempt++) {
      req.authorization = auth;
      HttpResponse resp = perform(pool, http, req);
      if (resp.status != 401) return resp;
      remember_challenge(resp);
      if (attempt > 0 || req.reader) throw_unauthorized(resp, auth, req.what);
      // A cached bearer token may have expired: worth one fresh one. A token just issued,
      // the same Basic credentials or none at all: nothing new to send.
      if (fresh && auth.starts_with("Bearer ")) throw_unauthorized(resp, auth, req.what);
      std::string next = authorization(access, true, &fresh);
      if (next.empty() || (next == auth && !next.starts_with("Bearer "))) throw_unauthorized(resp, auth, req.what);
      auth = next;
    }
  }

  [[noreturn]] void throw_unauthorized(const HttpResponse& resp, const std::string& sent, const std::string& what) {
    std::string msg = registry_message(resp);
    if (msg.empty()) msg = "unauthorized: authentication required";
    if (sent.starts_with("Basic ")) throw Error("wrong credentials for " + ref.domain + ": " + msg, EACCES);
    if (!opts.credentials) throw Error(what + ": " + msg + " (no credentials given)", EACCES);
    // A token was granted for these credentials, but it doesn't cover this repository.
    throw Error(what + ": " + msg + " (user \"" + opts.credentials->username + "\" has no access)", EACCES);
  }
};

RegistryClient::RegistryClient(const Reference& ref, RegistryOptions opts) {
  curl_init_once();
  impl_ = std::make_unique<Impl>(ref, std::move(opts));
}

RegistryClient::~RegistryClient() = default;

const Reference& RegistryClient::reference() const { return impl_->ref; }

std::string RegistryClient::endpoint() { return impl_->endpoint(); }

RegistryClient::Manifest RegistryClient::get_manifest(std::string_view tag_or_digest) {
  bool by_digest = tag_or_digest.find(':') != std::string_view::npos;
  if (by_digest)
    require_sha256_digest(tag_or_digest, "manifest");
  else if (!is_tag(tag_or_digest))
    throw Error("invalid tag \"" + std::string(tag_or_digest) + "\"");
  HttpRequest req;
  req.url = impl_->repo_url("manifests", tag_or_digest);
  req.what = "fetch manifest " + impl_->display(tag_or_digest);
  req.verify_tls = impl_->verify_url(req.url);
  req.follow_redirects = true;
  req.max_body = kMaxManifestBytes;
  req.headers.push_back("Accept: " + std::string(media::kOciIndex) + ", " + std::string(media::kOciManifest) + ", " +
                        std::string(media::kDockerList) + ", " + std::string(media::kDockerManifest));
  HttpResponse resp = impl_->request(req, Access::Pull);
  if (resp.status == 404) {
    std::string msg = registry_message(resp);
    throw Error("manifest for " + impl_->display(tag_or_digest) + " not found" + (msg.empty() ? "" : ": " + msg),
                ENOENT);
  }
  if (resp.status != 200) throw_status(resp, req.what);

  Manifest m;
  m.body = std::move(resp.body);
  m.digest = sha256_digest(m.body);
  if (by_digest && m.digest != tag_or_digest)
    throw Error(req.what + ": the registry sent content whose digest is " + m.digest, EPROTO);
  std::string header_digest = resp.header("docker-content-digest");
  if (is_sha256_digest(header_digest) && header_digest != m.digest)
    throw Error(
        req.what + ": the content's digest " + m.digest + " differs from Docker-Content-Digest " + header_digest,
        EPROTO);
  m.media_type = media_type_of(resp.header("content-type"));
  if (m.media_type.empty() || m.media_type == "application/json" || m.media_type == "text/plain" ||
      m.media_type == "application/octet-stream") {
    json doc = json::parse(m.body, nullptr, false);
    if (doc.is_object() && doc.contains("mediaType") && doc["mediaType"].is_string())
      m.media_type = doc["mediaType"].get<std::string>();
  }
  return m;
}

void RegistryClient::get_blob(std::string_view digest, const std::function<void(const char*, size_t)>& sink) {
  require_sha256_digest(digest, "blob");
  HttpRequest req;
  req.url = impl_->repo_url("blobs", digest);
  req.what = "fetch blob " + std::string(digest) + " from " + impl_->ref.familiar_name();
  req.verify_tls = impl_->verify_url(req.url);
  req.follow_redirects = true;
  req.sink = &sink;
  HttpResponse resp = impl_->request(req, Access::Pull);
  if (resp.status == 404)
    throw Error("blob " + std::string(digest) + " not found in " + impl_->ref.familiar_name(), ENOENT);
  if (resp.status != 200) throw_status(resp, req.what);
}

bool RegistryClient::blob_exists(std::string_view digest) {
  require_sha256_digest(digest, "blob");
  HttpRequest req;
  req.method = "HEAD";
  req.url = impl_->repo_url("blobs", digest);
  req.what = "check blob " + std::string(digest) + " in " + impl_->ref.familiar_name();
  req.verify_tls = impl_->verify_url(req.url);
  req.follow_redirects = true;
  HttpResponse resp = impl_->request(req, Access::Pull);
  if (resp.status == 200) return true;
  if (resp.status == 404) return false;
  throw_status(resp, req.what);
}

namespace {

// An upload's Location may be absolute or relative to the URL it answered.
std::string resolve_location(const std::string& request_url, const std::string& location, const std::string& what) {
  if (location.empty()) throw Error(what + ": the registry sent no upload Location", EPROTO);
  CurlUrlPtr u(curl_url());
  if (!u || curl_url_set(u.get(), CURLUPART_URL, request_url.c_str(), 0) != CURLUE_OK ||
      curl_url_set(u.get(), CURLUPART_URL, location.c_str(), 0) != CURLUE_OK)
    throw Error(what + ": cannot use the upload Location \"" + location + "\"", EPROTO);
  char* out = nullptr;
  if (curl_url_get(u.get(), CURLUPART_URL, &out, 0) != CURLUE_OK)
    throw Error(what + ": cannot use the upload Location \"" + location + "\"", EPROTO);
  CurlString owned(out);
  return owned.get();
}

std::string with_query(const std::string& url, std::string_view param) {
  return url + (url.find('?') == std::string::npos ? "?" : "&") + std::string(param);
}

}  // namespace

bool RegistryClient::put_blob(std::string_view digest, uint64_t size, const std::function<size_t(char*, size_t)>& read,
                              uint64_t chunk_size) {
  require_sha256_digest(digest, "blob");
  if (blob_exists(digest)) return false;
  Impl& im = *impl_;
  std::string what = "upload blob " + std::string(digest) + " to " + im.ref.familiar_name();

  HttpRequest start;
  start.method = "POST";
  start.url = im.endpoint() + "/v2/" + im.ref.path + "/blobs/uploads/";
  start.what = what;
  start.verify_tls = im.verify_url(start.url);
  start.body = std::string_view();
  HttpResponse resp = im.request(start, Access::Push);
  if (resp.status != 202) throw_status(resp, what);
  std::string location = resolve_location(start.url, resp.header("location"), what);

  try {
    uint64_t offset = 0;
    if (chunk_size > 0) {
      while (offset < size) {
        uint64_t n = std::min(chunk_size, size - offset);
        HttpRequest patch;
        patch.method = "PATCH";
        patch.url = location;
        patch.what = what;
        patch.verify_tls = im.verify_url(location);
        patch.reader = &read;
        patch.upload_size = n;
        patch.headers = {"Content-Type: application/octet-stream",
                         "Content-Range: " + std::to_string(offset) + "-" + std::to_string(offset + n - 1)};
        HttpResponse r = im.request(patch, Access::Push);
        if (r.status != 202) throw_status(r, what + " (chunk at " + std::to_string(offset) + ")");
        location = resolve_location(location, r.header("location"), what);
        offset += n;
      }
    }
    HttpRequest put;
    put.method = "PUT";
    put.url = with_query(location, "digest=" + curl_escape(digest));
    put.what = what;
    put.verify_tls = im.verify_url(location);
    put.headers = {"Content-Type: application/octet-stream"};
    // The registry may read the whole blob back to check its digest before it answers.
    put.min_stall_s = kUploadCommitStall;
    if (chunk_size > 0) {
      put.body = std::string_view();
    } else {
      put.reader = &read;
      put.upload_size = size;
    }
    HttpResponse r = im.request(put, Access::Push);
    if (r.status != 201) throw_status(r, what);
  } catch (...) {
    // Let the registry drop the half-done upload now rather than at its garbage collection.
    try {
      HttpRequest cancel;
      cancel.method = "DELETE";
      cancel.url = location;
      cancel.what = what;
      cancel.verify_tls = im.verify_url(location);
      cancel.timeout_s = im.opts.connect_timeout_s;
      im.request(cancel, Access::Push);
    } catch (const Error&) {
    }
    throw;
  }
  return true;
}

std::string RegistryClient::put_manifest(std::string_view tag_or_digest, std::string_view media_type,
                                         std::string_view body) {
  bool by_digest = tag_or_digest.find(':') != std::string_view::npos;
  if (by_digest)
    require_sha256_digest(tag_or_digest, "manifest");
  else if (!is_tag(tag_or_digest))
    throw Error("invalid tag \"" + std::string(tag_or_digest) + "\"");
  std::string digest = sha256_digest(body);
  if (by_digest && digest != tag_or_digest)
    throw Error("push manifest " + impl_->display(tag_or_digest) + ": its content's digest is " + digest);
  HttpRequest req;
  req.method = "PUT";
  req.url = impl_->repo_url("manifests", tag_or_digest);
  req.what = "push manifest " + impl_->display(tag_or_digest);
  req.verify_tls = impl_->verify_url(req.url);
  req.headers = {"Content-Type: " + std::string(media_type)};
  req.body = body;
  HttpResponse resp = impl_->request(req, Access::Push);
  if (resp.status != 201 && resp.status != 200) throw_status(resp, req.what);
  return digest;
}

void RegistryClient::check_auth() {
  Impl& im = *impl_;
  HttpRequest req;
  req.url = im.endpoint() + "/v2/";
  req.what = "log in to " + im.ref.domain;
  req.verify_tls = im.verify_url(req.url);
  // A registry open to all answers 200 without looking at credentials: docker's login succeeds there too.
  HttpResponse resp = im.request(req, Access::None);
  if (!resp.ok()) throw_status(resp, req.what);
}

}  // namespace berth::image
