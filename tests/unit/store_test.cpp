// The image store: verified blobs, one-pass layer ingestion, refs, garbage collection. Needs root
// (layers carry owners and device whiteouts).
#include <archive.h>
#include <archive_entry.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "image/digest.hpp"
#include "image/oci.hpp"
#include "image/store.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"

using namespace berth;
using namespace berth::image;

namespace {

// A plain tar holding one file.
std::string make_tar(const std::string& name, const std::string& content) {
  std::string out;
  archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  archive_write_open(
      a, &out, nullptr,
      [](archive*, void* ctx, const void* buf, size_t n) -> la_ssize_t {
        static_cast<std::string*>(ctx)->append(static_cast<const char*>(buf), n);
        return static_cast<la_ssize_t>(n);
      },
      nullptr);
  archive_entry* e = archive_entry_new();
  archive_entry_set_pathname(e, name.c_str());
  archive_entry_set_filetype(e, AE_IFREG);
  archive_entry_set_perm(e, 0644);
  archive_entry_set_size(e, static_cast<la_int64_t>(content.size()));
  archive_write_header(a, e);
  archive_write_data(a, content.data(), content.size());
  archive_entry_free(e);
  archive_write_close(a);
  archive_write_free(a);
  return out;
}

Producer from(const std::string& data, std::atomic<int>* calls = nullptr) {
  return [&data, calls](const Sink& sink) {
    if (calls) ++*calls;
    for (size_t off = 0; off < data.size(); off += 1000)
      sink(data.data() + off, std::min<size_t>(1000, data.size() - off));
  };
}

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root";
    char tmpl[] = "/tmp/berth-store-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    store_ = std::make_unique<ImageStore>(root_);
  }
  void TearDown() override {
    store_.reset();
    if (!root_.empty()) remove_tree(root_);
  }
  ImageRecord image_of(const LayerResult& l, const std::string& tag) {
    std::string config = R"({"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[")" + l.diff_id +
                         R"("]},"config":{"Cmd":["sh"]}})";
    ImageRecord r;
    r.id = store_->put_blob(config);
    r.config = config;
    r.layers.push_back({l.chain_id, l.diff_id, l.blob_digest, std::string(media::kOciLayer), l.blob_size, l.size});
    if (!tag.empty()) r.repo_tags.push_back(tag);
    return r;
  }
  std::string root_;
  std::unique_ptr<ImageStore> store_;
};

TEST_F(StoreTest, PutBlobVerifiesTheDigest) {
  std::string d = store_->put_blob("hello");
  EXPECT_EQ(d, sha256_digest("hello"));
  EXPECT_EQ(store_->read_blob(d), "hello");
  EXPECT_THROW(store_->put_blob("hello", sha256_digest("other")), Error);
  EXPECT_FALSE(store_->has_blob(sha256_digest("other")));
}

TEST_F(StoreTest, IngestUnpacksAndStoresInOnePass) {
  std::string tar = make_tar("etc/hello", "world");
  LayerResult r = store_->ingest_layer({"", std::string(media::kOciLayer), "", ""}, from(tar));
  EXPECT_EQ(r.blob_digest, sha256_digest(tar));
  EXPECT_EQ(r.diff_id, sha256_digest(tar));  // uncompressed: blob and diff are the same bytes
  EXPECT_EQ(r.chain_id, r.diff_id);
  EXPECT_EQ(r.size, 5);
  EXPECT_EQ(read_file(store_->layer_dir(r.chain_id) + "/etc/hello"), "world");
  EXPECT_EQ(store_->read_blob(r.blob_digest), tar);
}

TEST_F(StoreTest, MismatchedDigestLeavesNothing) {
  std::string tar = make_tar("a", "b");
  std::string wrong = sha256_digest("not the tar");
  EXPECT_THROW(store_->ingest_layer({wrong, "", "", ""}, from(tar)), Error);
  EXPECT_FALSE(store_->has_blob(sha256_digest(tar)));
  EXPECT_FALSE(store_->has_layer(sha256_digest(tar)));
  EXPECT_THROW(store_->ingest_layer({"", "", wrong, ""}, from(tar)), Error);
  EXPECT_FALSE(store_->has_layer(wrong));
  EXPECT_EQ(store_->collect_garbage(), 0);
}

TEST_F(StoreTest, ConcurrentIngestionsFetchOnce) {
  std::string tar = make_tar("f", std::string(1 << 20, 'x'));
  std::string d = sha256_digest(tar);
  std::atomic<int> calls{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; i++) threads.emplace_back([&] { store_->ingest_layer({d, "", d, ""}, from(tar, &calls)); });
  for (auto& t : threads) t.join();
  EXPECT_EQ(calls.load(), 1);
  EXPECT_TRUE(store_->layer_ready({d, "", d, ""}));
}

TEST_F(StoreTest, FindByTagIdAndPrefix) {
  std::string tar = make_tar("f", "1");
  LayerResult l = store_->ingest_layer({"", "", "", ""}, from(tar));
  ImageRecord img = image_of(l, "docker.io/library/thing:1");
  store_->add_image(img);
  EXPECT_EQ(store_->find("thing:1")->id, img.id);
  EXPECT_EQ(store_->find("docker.io/library/thing:1")->id, img.id);
  EXPECT_EQ(store_->find(img.id)->id, img.id);
  EXPECT_EQ(store_->find(img.id.substr(7, 12))->id, img.id);
  EXPECT_FALSE(store_->find("thing").has_value());  // :latest
  EXPECT_FALSE(store_->find("other:1").has_value());
}

TEST_F(StoreTest, GarbageCollectionKeepsSharedLayers) {
  std::string tar = make_tar("f", "shared");
  LayerResult l = store_->ingest_layer({"", "", "", ""}, from(tar));
  ImageRecord a = image_of(l, "docker.io/library/a:1");
  store_->add_image(a);
  std::string config_b = R"({"os":"linux","rootfs":{"type":"layers","diff_ids":[")" + l.diff_id + R"("]},"b":1})";
  ImageRecord b = a;
  b.id = store_->put_blob(config_b);
  b.config = config_b;
  b.repo_tags = {"docker.io/library/b:1"};
  store_->add_image(b);
  // An orphan left by a crash: a complete-looking layer nobody references.
  std::string orphan = store_->layer_dir(sha256_digest("orphan"));
  mkdir_p(orphan);
  store_->delete_image(a.id);
  EXPECT_TRUE(store_->has_layer(l.chain_id));
  EXPECT_TRUE(store_->has_blob(l.blob_digest));
  EXPECT_FALSE(store_->has_blob(a.id));
  EXPECT_FALSE(path_exists(orphan));
  store_->delete_image(b.id);
  EXPECT_FALSE(store_->has_layer(l.chain_id));
  EXPECT_FALSE(store_->has_blob(l.blob_digest));
  EXPECT_TRUE(store_->list().empty());
}

TEST_F(StoreTest, ImagesWithUsersAreNeverDeleted) {
  std::string tar = make_tar("f", "used");
  LayerResult l = store_->ingest_layer({"", "", "", ""}, from(tar));
  ImageRecord img = image_of(l, "docker.io/library/used:1");
  store_->add_image(img);
  store_->add_image_user(img.id, "sha256:" + std::string(64, 'c'));
  try {
    store_->delete_image(img.id);
    FAIL() << "deleted an image in use";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cccccccccccc"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(store_->find(img.id).has_value());
  EXPECT_TRUE(store_->has_layer(l.chain_id));
  // Untagged, it is still kept (and so are its layers) until the last user goes.
  store_->remove_ref("docker.io/library/used:1");
  store_->collect_garbage();
  EXPECT_TRUE(store_->has_layer(l.chain_id));
  store_->remove_image_user(img.id, "sha256:" + std::string(64, 'c'));
  store_->delete_image(img.id);
  EXPECT_FALSE(store_->has_layer(l.chain_id));
}

}  // namespace
