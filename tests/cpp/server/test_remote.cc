// Remote base paths (server/remote): SigV4 signatures against AWS's published example and values
// botocore computes for the same requests, URL parsing, and the Mirror's rules on a fake store
// (a version appears whole or not at all, an upload in progress waits, sizes and MD5 ETags are
// checked, a failed listing changes nothing). Served from a real S3 server in
// tests/python/test_remote.py.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "server/remote/http_client.h"
#include "server/remote/mirror.h"
#include "server/remote/sigv4.h"

namespace mserve::server {
namespace {

namespace fs = std::filesystem;

const AwsCredentials kExample = {"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", ""};
const std::string kEmpty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

std::string signature_of(const Headers& h) {
  for (const auto& [k, v] : h)
    if (k == "Authorization") return v.substr(v.find("Signature=") + 10);
  return "";
}

TEST(SigV4, MatchesAwsAndBotocore) {
  EXPECT_EQ(sha256_hex(""), kEmpty);
  // AWS's "GET Object" example (Signature Version 4, S3 API reference).
  SigV4Request get{"GET", "examplebucket.s3.amazonaws.com", "/test.txt", {}, {{"Range", "bytes=0-9"}}, kEmpty};
  const Headers h = sign_v4(get, kExample, "us-east-1", "s3", "20130524T000000Z");
  EXPECT_EQ(signature_of(h), "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
  bool found = false;
  for (const auto& [k, v] : h)
    if (k == "Authorization") {
      found = true;
      EXPECT_EQ(v.substr(0, v.find(", Signature")),
                "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
                "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date");
    }
  EXPECT_TRUE(found);
  // botocore's S3SigV4Auth for a ListObjectsV2 query and for a key with a space on a host:port.
  SigV4Request list{"GET", "examplebucket.s3.amazonaws.com",
                    "/",   {{"list-type", "2"}, {"max-keys", "2"}, {"prefix", "J"}},
                    {},    kEmpty};
  EXPECT_EQ(signature_of(sign_v4(list, kExample, "us-east-1", "s3", "20130524T000000Z")),
            "e3ab4883b61bffa64511cd8baf47af7be2627282ad1e662e23b56b4e6ab9fe8a");
  SigV4Request key{"GET", "127.0.0.1:5000", "/bucket/models/m/1/" + aws_uri_encode("model v.onnx", true), {}, {},
                   kEmpty};
  EXPECT_EQ(key.path, "/bucket/models/m/1/model%20v.onnx");
  EXPECT_EQ(signature_of(sign_v4(key, kExample, "us-east-1", "s3", "20130524T000000Z")),
            "68a5bba18fb4837b8aa1ed9d2b2401a14c09f9dc0262ac39528aaf25c51fa748");
  // A session token is sent and signed; no keys: nothing is signed.
  AwsCredentials temp = kExample;
  temp.session_token = "token";
  const Headers t = sign_v4(get, temp, "us-east-1", "s3", "20130524T000000Z");
  EXPECT_NE(signature_of(t), signature_of(h));
  EXPECT_EQ(sign_v4(get, AwsCredentials{}, "us-east-1", "s3", "20130524T000000Z").size(), 2u);
}

TEST(Url, ParsesWhatTheSourcesUse) {
  auto u = parse_url("http://127.0.0.1:9000/bucket/a?b=c").value();
  EXPECT_EQ(u.host, "127.0.0.1");
  EXPECT_EQ(u.port, "9000");
  EXPECT_EQ(u.target, "/bucket/a?b=c");
  EXPECT_EQ(u.host_header(), "127.0.0.1:9000");
  auto s = parse_url("https://s3.eu-west-1.amazonaws.com").value();
  EXPECT_TRUE(s.tls);
  EXPECT_EQ(s.port, "443");
  EXPECT_EQ(s.target, "/");
  EXPECT_EQ(s.host_header(), "s3.eu-west-1.amazonaws.com");
  EXPECT_EQ(parse_url("[::1]:80").status().code(), Code::kInvalidArgument);
  EXPECT_EQ(parse_url("http://host:port/").status().code(), Code::kInvalidArgument);
  EXPECT_EQ(parse_url("http://[::1]:8080/x").value().host_header(), "[::1]:8080");
}

// An object store in memory; `fail` makes the next list() fail, `corrupt` the next fetch.
class FakeSource : public ObjectSource {
 public:
  std::map<std::string, std::string> objects;  // path -> bytes
  std::map<std::string, std::string> etags;    // path -> ETag (default: none)
  bool fail = false, corrupt = false;
  int fetches = 0;
  StatusOr<std::vector<RemoteFile>> list() override {
    if (fail) return Unavailable("the store is down");
    std::vector<RemoteFile> out;
    for (const auto& [p, bytes] : objects) out.push_back({p, static_cast<int64_t>(bytes.size()), etags[p]});
    return out;
  }
  Status fetch(const std::string& path, const std::string& to) override {
    ++fetches;
    std::string bytes = objects.at(path);
    if (corrupt) {
      corrupt = false;
      bytes = bytes.substr(0, bytes.size() / 2);
    }
    std::ofstream(to, std::ios::binary) << bytes;
    return Status::OK();
  }
  const std::string& uri() const override { return uri_; }

 private:
  std::string uri_ = "fake://store";
};

std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::vector<std::string> entries(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

TEST(Mirror, VersionsArriveWholeAfterTheirUploadSettles) {
  const fs::path dir = fs::path(testing::TempDir()) / "mirror-settle";
  fs::remove_all(dir);
  auto* store = new FakeSource;
  store->objects = {{"1/model.onnx", "one"}, {"notes.txt", "x"}, {"2/readme", "no model here"}};
  Mirror m(std::unique_ptr<ObjectSource>(store), dir.string());
  VersionPolicy latest;  // latest 1
  ASSERT_TRUE(m.sync(latest).ok());
  EXPECT_EQ(entries(dir), (std::vector<std::string>{".source-1", "1"}));
  EXPECT_EQ(read(dir / "1" / "model.onnx"), "one");
  // Unchanged: nothing downloaded again.
  const int fetched = store->fetches;
  ASSERT_TRUE(m.sync(latest).ok());
  EXPECT_EQ(store->fetches, fetched);
  // Version 3 appears, then gains a file: it waits until a pass lists it the same.
  store->objects["3/model.onnx"] = "three";
  ASSERT_TRUE(m.sync(latest).ok());
  EXPECT_FALSE(fs::exists(dir / "3"));
  EXPECT_EQ(m.state().waiting.count(3), 1u);
  EXPECT_TRUE(fs::exists(dir / "1"));  // still the newest ready version
  store->objects["3/weights.bin"] = "w";
  ASSERT_TRUE(m.sync(latest).ok());
  EXPECT_FALSE(fs::exists(dir / "3"));
  ASSERT_TRUE(m.sync(latest).ok());
  EXPECT_EQ(read(dir / "3" / "weights.bin"), "w");
  EXPECT_FALSE(fs::exists(dir / "1"));  // no longer wanted under latest 1
  EXPECT_TRUE(m.state().waiting.empty());
  // Deleted from the store: deleted here.
  store->objects.erase("3/model.onnx");
  store->objects.erase("3/weights.bin");
  store->objects["1/model.onnx"] = "one";
  ASSERT_TRUE(m.sync(latest).ok());
  EXPECT_FALSE(fs::exists(dir / "3"));
  EXPECT_TRUE(fs::exists(dir / "1"));
}

TEST(Mirror, BadDownloadsAndFailedListingsChangeNothing) {
  VersionPolicy all;
  all.kind = VersionPolicy::Kind::kAll;
  // An object whose bytes do not match its (MD5) ETag is never mirrored.
  const fs::path bad = fs::path(testing::TempDir()) / "mirror-md5";
  fs::remove_all(bad);
  auto* lying = new FakeSource;
  lying->objects = {{"1/model.onnx", "version one"}};
  lying->etags = {{"1/model.onnx", "0123456789abcdef0123456789abcdef"}};
  Mirror md5(std::unique_ptr<ObjectSource>(lying), bad.string());
  for (int pass = 0; pass < 2; ++pass) {
    Status st = md5.sync(all);
    EXPECT_NE(st.message().find("arrived with another MD5 than its ETag"), std::string::npos) << st.message();
    EXPECT_TRUE(entries(bad).empty());
  }
  // A download cut mid-file (the size gives it away), then a store that cannot be listed.
  const fs::path dir = fs::path(testing::TempDir()) / "mirror-cut";
  fs::remove_all(dir);
  fs::create_directories(dir / ".tmp-7-0");  // left by an earlier process: cleaned
  auto* store = new FakeSource;
  store->objects = {{"1/model.onnx", "version one"}};
  Mirror m(std::unique_ptr<ObjectSource>(store), dir.string());
  EXPECT_FALSE(fs::exists(dir / ".tmp-7-0"));
  store->corrupt = true;
  Status st = m.sync(all);
  EXPECT_EQ(st.code(), Code::kUnavailable);
  EXPECT_NE(st.message().find("arrived with 5 bytes; the listing says 11"), std::string::npos) << st.message();
  EXPECT_TRUE(entries(dir).empty());
  ASSERT_TRUE(m.sync(all).ok());
  EXPECT_EQ(read(dir / "1" / "model.onnx"), "version one");
  store->fail = true;
  EXPECT_EQ(m.sync(all).message(), "the store is down");
  EXPECT_EQ(read(dir / "1" / "model.onnx"), "version one");
  EXPECT_EQ(m.state().failures, 2);
  EXPECT_FALSE(m.state().last.ok());
}

}  // namespace
}  // namespace mserve::server
