// The API server's request parsing (src/api/http.cpp): targets, versions, queries, filters, bodies
// and limits, plus random and mutated input that must never crash or hang the parser.
#include <gtest/gtest.h>

#include <random>

#include "api/http.hpp"

using berth::api::HttpError;
using berth::api::Limits;
using berth::api::Request;

namespace {

Request parse(const std::string& text, const Limits& limits = {}) {
  Request r;
  size_t used = berth::api::parse_request(text, r, limits);
  EXPECT_EQ(used, text.size());
  return r;
}

int status_of(const std::string& text, const Limits& limits = {}) {
  Request r;
  try {
    berth::api::parse_request(text, r, limits);
  } catch (const HttpError& e) {
    return e.status();
  }
  return 0;
}

}  // namespace

TEST(ApiHttp, VersionPrefixPathAndQuery) {
  Request r = parse(
      "GET /v1.41/containers/json?all=1&filters=%7B%22status%22%3A%5B%22exited%22%5D%7D HTTP/1.1\r\n"
      "Host: x\r\n\r\n");
  EXPECT_EQ(r.method, "GET");
  EXPECT_EQ(r.path, "/containers/json");
  EXPECT_EQ(r.api_version, "1.41");
  EXPECT_TRUE(r.flag("all"));
  auto f = r.filters();
  ASSERT_EQ(f.count("status"), 1u);
  EXPECT_EQ(f["status"], std::vector<std::string>{"exited"});
  EXPECT_TRUE(r.keep_alive);
}

TEST(ApiHttp, NoVersionTrailingSlashAndOldFilterForm) {
  Request r = parse("GET /volumes/?filters=%7B%22dangling%22%3A%7B%22true%22%3Atrue%7D%7D HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(r.path, "/volumes");
  EXPECT_EQ(r.api_version, "");
  EXPECT_EQ(r.filters()["dangling"], std::vector<std::string>{"true"});
}

TEST(ApiHttp, BodiesPlainAndChunked) {
  Request r =
      parse("POST /containers/create?name=a HTTP/1.1\r\nHost: x\r\nContent-Length: 17\r\n\r\n{\"Image\":\"busy\"}\n");
  EXPECT_EQ(r.json_body()["Image"], "busy");
  EXPECT_EQ(r.q("name"), "a");
  r = parse(
      "POST /volumes/create HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\n{\"Nam\r\n9\r\ne\":\"v1\"}\n\r\n0\r\n\r\n");
  EXPECT_EQ(r.json_body()["Name"], "v1");
  EXPECT_EQ(r.header("transfer-encoding"), "chunked");
}

TEST(ApiHttp, BadInputIsAnHttpError) {
  EXPECT_EQ(status_of("NOT A REQUEST\r\n\r\n"), 400);
  EXPECT_EQ(status_of("GET /containers/%zz/json HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
  EXPECT_EQ(status_of("GET nothing HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
  Request r = parse("POST /containers/create HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n{nope");
  EXPECT_THROW(r.json_body(), HttpError);
  r = parse("GET /containers/json?limit=abc&filters=%5B%5D HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_THROW(r.number("limit", 0), HttpError);
  EXPECT_THROW(r.filters(), HttpError);
}

TEST(ApiHttp, Limits) {
  Limits small;
  small.json_body_bytes = 10;
  small.header_bytes = 256;
  EXPECT_EQ(status_of("POST /containers/create HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n01234567890", small),
            413);
  EXPECT_EQ(status_of("POST /containers/create HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "b\r\n01234567890\r\n0\r\n\r\n",
                      small),
            413);
  EXPECT_EQ(status_of("GET / HTTP/1.1\r\nX: " + std::string(1000, 'a') + "\r\n\r\n", small), 431);
  // Uploads (image load, archive PUT) have their own, larger limit.
  Request r =
      parse("PUT /containers/x/archive?path=/ HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n01234567890", small);
  EXPECT_EQ(r.body.size(), 11u);
}

TEST(ApiHttp, IncompleteNeedsMore) {
  Request r;
  EXPECT_EQ(berth::api::parse_request("GET /_ping HTTP/1.1\r\nHost:", r, {}), 0u);
  EXPECT_EQ(berth::api::parse_request("POST /x HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc", r, {}), 0u);
}

TEST(ApiHttp, RandomAndMutatedInputNeverCrashes) {
  std::mt19937 rng(42);
  const std::string seed =
      "POST /v1.41/containers/create?name=a&filters=%7B%7D HTTP/1.1\r\nHost: x\r\nContent-Length: 16\r\n\r\n"
      "{\"Image\":\"busy\"}";
  Limits limits;
  limits.json_body_bytes = 4096;
  limits.upload_body_bytes = 4096;
  for (int i = 0; i < 20000; i++) {
    std::string input = seed;
    int edits = 1 + static_cast<int>(rng() % 8);
    for (int e = 0; e < edits; e++) {
      size_t pos = rng() % (input.size() + 1);
      switch (rng() % 3) {
        case 0:
          if (pos < input.size()) input[pos] = static_cast<char>(rng());
          break;
        case 1:
          input.insert(pos, 1, static_cast<char>(rng()));
          break;
        default:
          if (pos < input.size()) input.erase(pos, 1 + rng() % 4);
      }
    }
    Request r;
    try {
      if (berth::api::parse_request(input, r, limits) > 0) {
        (void)r.filters();
        (void)r.json_body();
      }
    } catch (const berth::Error&) {
    }
  }
}
