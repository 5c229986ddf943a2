// OCI documents: platforms, manifests, indexes, chain IDs (image/oci.cpp).
#include <gtest/gtest.h>

#include "image/digest.hpp"
#include "image/oci.hpp"
#include "util/error.hpp"

using namespace berth;
using namespace berth::image;

namespace {

const std::string kA = "sha256:" + std::string(64, 'a');
const std::string kB = "sha256:" + std::string(64, 'b');

TEST(Oci, ChainIdsFollowTheSpec) {
  auto c = chain_ids({kA, kB});
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0], kA);
  EXPECT_EQ(c[1], sha256_digest(kA + " " + kB));
}

TEST(Oci, PlatformParsingAndMatching) {
  Platform p = parse_platform("linux/arm64/v8");
  EXPECT_EQ(p.os, "linux");
  EXPECT_EQ(p.architecture, "arm64");
  EXPECT_TRUE(platform_matches(parse_platform("linux/arm64"), {"linux", "arm64", "v8"}));
  EXPECT_TRUE(platform_matches(parse_platform("linux/x86_64"), {"linux", "amd64", ""}));
  EXPECT_FALSE(platform_matches(parse_platform("linux/amd64"), {"linux", "arm64", ""}));
  EXPECT_FALSE(platform_matches(parse_platform("linux/arm/v7"), {"linux", "arm", "v6"}));
  for (const char* bad : {"linux", "linux/", "/amd64", "a/b/c/d", ""}) {
    try {
      parse_platform(bad);
      FAIL() << bad;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(std::string("\"") + bad + "\""), std::string::npos) << e.what();
    }
  }
}

TEST(Oci, IndexSelectsThePlatform) {
  std::string body = R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
    {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" +
                     kA + R"(","size":10,"platform":{"os":"linux","architecture":"arm64","variant":"v8"}},
    {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" +
                     kB + R"(","size":11,"platform":{"os":"linux","architecture":"amd64"}}]})";
  Index ix = parse_index(body);
  ASSERT_EQ(ix.manifests.size(), 2u);
  EXPECT_EQ(select_manifest(ix, parse_platform("linux/amd64"))->digest, kB);
  EXPECT_EQ(select_manifest(ix, parse_platform("linux/arm64"))->digest, kA);
  EXPECT_EQ(select_manifest(ix, parse_platform("linux/s390x")), nullptr);
}

TEST(Oci, ManifestWithoutMediaTypeIsSniffed) {
  std::string body =
      R"({"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":")" + kA +
      R"(","size":2},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":")" + kB +
      R"(","size":3}]})";
  Manifest m = parse_manifest(body);
  EXPECT_EQ(m.media_type, media::kOciManifest);
  EXPECT_EQ(m.config.digest, kA);
  ASSERT_EQ(m.layers.size(), 1u);
  EXPECT_EQ(m.layers[0].size, 3);
}

TEST(Oci, MalformedDocumentsAreRefused) {
  EXPECT_THROW(parse_manifest("{"), Error);
  EXPECT_THROW(parse_manifest(R"({"schemaVersion":1,"fsLayers":[]})"), Error);
  EXPECT_THROW(parse_manifest(R"({"config":{"digest":"sha256:xyz","size":1},"layers":[]})"), Error);
  EXPECT_THROW(parse_index(R"({"mediaType":"application/vnd.oci.image.index.v1+json"})"), Error);
  EXPECT_THROW(config_diff_ids(nlohmann::json::parse(R"({"rootfs":{"type":"layers","diff_ids":["md5:1"]}})")), Error);
  EXPECT_EQ(config_diff_ids(nlohmann::json::parse(R"({"rootfs":{"type":"layers","diff_ids":[")" + kA + R"("]}})")),
            std::vector<std::string>{kA});
}

}  // namespace
