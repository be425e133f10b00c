// Remote model repositories: a base path on an object store, mirrored into a local folder that
// ModelManager then polls like any other (repository/manager.h).
//
//   s3://bucket/prefix             AWS S3 (region from AWS_REGION / AWS_DEFAULT_REGION, else
//                                  us-east-1), or the endpoint in AWS_ENDPOINT_URL_S3 /
//                                  AWS_ENDPOINT_URL (path-style requests)
//   s3://host:port/bucket/prefix   an S3-compatible server at http://host:port (path-style)
// Credentials: sigv4.h. Listing: ListObjectsV2, paginated; objects: GET, SigV4-signed.
//   webhdfs://namenode[:port]/path  WebHDFS (port 9870 by default): LISTSTATUS down the version
//                                   folders, OPEN through its redirect to a datanode; simple
//                                   authentication as HADOOP_USER_NAME (else USER). No Kerberos.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"

namespace mserve::server {

struct RemoteFile {
  std::string path;  // relative to the base path: "3/model.onnx"
  int64_t size = 0;
  std::string etag;  // as the store reports it, quotes removed ("" when none)
};

// A base path's objects. Thread-safety: one call at a time.
class ObjectSource {
 public:
  virtual ~ObjectSource() = default;
  virtual StatusOr<std::vector<RemoteFile>> list() = 0;
  // Writes the object at `path` (relative) to the local file `to`.
  virtual Status fetch(const std::string& path, const std::string& to) = 0;
  virtual const std::string& uri() const = 0;
};

struct RemoteOptions {
  std::string cache_dir;   // where base paths are mirrored ("": $XDG_CACHE_HOME/mserve, ~/.cache/mserve or /tmp)
  int timeout_ms = 30000;  // per request step
};

bool is_remote(const std::string& base_path);  // s3:// or webhdfs:// (a scheme this server mirrors)
// The source of a remote base path; InvalidArgument for a malformed one.
StatusOr<std::unique_ptr<ObjectSource>> open_source(const std::string& uri, const RemoteOptions& opts);
StatusOr<std::unique_ptr<ObjectSource>> open_s3(const std::string& uri, const RemoteOptions& opts);
StatusOr<std::unique_ptr<ObjectSource>> open_webhdfs(const std::string& uri, const RemoteOptions& opts);
// Where the mirror of `uri` for `model` lives under the cache folder.
std::string mirror_dir(const RemoteOptions& opts, const std::string& model, const std::string& uri);

}  // namespace mserve::server
