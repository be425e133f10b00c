// The WebHDFS source (source.h): LISTSTATUS walked down the version folders, OPEN followed through
// its redirect to a datanode; simple authentication (user.name).
#include <simdjson.h>

#include <cstdlib>

#include "server/remote/http_client.h"
#include "server/remote/source.h"

namespace mserve::server {
namespace {

class WebHdfsSource : public ObjectSource {
 public:
  WebHdfsSource(std::string uri, Url namenode, std::string root, std::string user, int timeout_ms)
      : uri_(std::move(uri)),
        namenode_(std::move(namenode)),
        root_(std::move(root)),
        user_(std::move(user)),
        client_(timeout_ms),
        datanode_(timeout_ms) {}

  const std::string& uri() const override { return uri_; }

  StatusOr<std::vector<RemoteFile>> list() override {
    std::vector<RemoteFile> out;
    MS_RETURN_IF_ERROR(walk("", 0, &out));
    return out;
  }

  Status fetch(const std::string& path, const std::string& to) override {
    MS_ASSIGN_OR_RETURN(HttpReply r, client_.request(url(path, "OPEN"), "GET", {}));
    if (r.status == 307 || r.status == 302 || r.status == 301) {
      auto where = parse_url(r.header("location"));
      if (!where.ok()) return Unavailable("WebHDFS sent " + uri_ + "/" + path + " to '" + r.header("location") + "'");
      MS_ASSIGN_OR_RETURN(r, datanode_.request(where.value(), "GET", {}, "", to));
    } else if (r.status == 200) {  // a server that answers in place: fetch it again to the file
      MS_ASSIGN_OR_RETURN(r, client_.request(url(path, "OPEN"), "GET", {}, "", to));
    }
    if (r.status != 200) return error(r, "fetch " + uri_ + "/" + path);
    return Status::OK();
  }

 private:
  Url url(const std::string& path, const char* op) const {
    Url u = namenode_;
    std::string p = root_;
    if (!path.empty()) p += "/" + path;
    std::string encoded;
    for (unsigned char c : p) {
      if (std::isalnum(c) || c == '/' || c == '-' || c == '.' || c == '_' || c == '~') {
        encoded += static_cast<char>(c);
      } else {
        char b[4];
        std::snprintf(b, sizeof b, "%%%02X", c);
        encoded += b;
      }
    }
    u.target = "/webhdfs/v1" + encoded + "?op=" + op + (user_.empty() ? "" : "&user.name=" + user_);
    return u;
  }

  // Files under `rel` (depth-limited: a version folder is at depth 1, its files below).
  Status walk(const std::string& rel, int depth, std::vector<RemoteFile>* out) {
    if (depth > 16) return Status::OK();
    MS_ASSIGN_OR_RETURN(HttpReply r, client_.request(url(rel, "LISTSTATUS"), "GET", {}));
    if (r.status != 200) return error(r, "list " + uri_ + (rel.empty() ? "" : "/" + rel));
    simdjson::dom::parser parser;
    simdjson::dom::element doc;
    simdjson::dom::array statuses;
    if (parser.parse(r.body).get(doc) || doc["FileStatuses"]["FileStatus"].get(statuses))
      return Unavailable("the WebHDFS listing of " + uri_ + " is malformed");
    for (auto st : statuses) {
      std::string_view name, type;
      int64_t length = 0, mtime = 0;
      if (st["pathSuffix"].get(name) || st["type"].get(type))
        return Unavailable("the WebHDFS listing of " + uri_ + " is malformed");
      (void)st["length"].get(length);
      (void)st["modificationTime"].get(mtime);
      const std::string path = rel.empty() ? std::string(name) : rel + "/" + std::string(name);
      if (type == "DIRECTORY") {
        // At the top only numbered folders matter.
        if (depth == 0 && std::string(name).find_first_not_of("0123456789") != std::string::npos) continue;
        MS_RETURN_IF_ERROR(walk(path, depth + 1, out));
      } else if (depth > 0) {
        // No ETag: a file's size and modification time say whether it changed.
        out->push_back({path, length, std::to_string(length) + "-" + std::to_string(mtime)});
      }
    }
    return Status::OK();
  }

  Status error(const HttpReply& r, const std::string& what) const {
    std::string why = "HTTP " + std::to_string(r.status);
    simdjson::dom::parser parser;
    simdjson::dom::element doc;
    std::string_view message;
    if (!parser.parse(r.body).get(doc) && !doc["RemoteException"]["message"].get(message))
      why += ": " + std::string(message);
    if (r.status == 401 || r.status == 403) return PermissionDenied("cannot " + what + ": " + why);
    if (r.status == 404) return NotFound("cannot " + what + ": " + why);
    return Unavailable("cannot " + what + ": " + why);
  }

  const std::string uri_;
  const Url namenode_;
  const std::string root_, user_;
  HttpClient client_, datanode_;
};

}  // namespace

StatusOr<std::unique_ptr<ObjectSource>> open_webhdfs(const std::string& uri, const RemoteOptions& opts) {
  std::string rest = uri.substr(std::string("webhdfs://").size());
  while (!rest.empty() && rest.back() == '/') rest.pop_back();
  const size_t slash = rest.find('/');
  std::string authority = rest.substr(0, slash), root = slash == std::string::npos ? "" : rest.substr(slash);
  if (authority.find(':') == std::string::npos) authority += ":9870";
  auto namenode = parse_url("http://" + authority);
  if (!namenode.ok()) return InvalidArgument("'" + uri + "': " + namenode.status().message());
  const char* user = std::getenv("HADOOP_USER_NAME");
  if (!user || !*user) user = std::getenv("USER");
  return std::unique_ptr<ObjectSource>(
      new WebHdfsSource(uri, std::move(namenode).value(), root, user ? user : "", opts.timeout_ms));
}

}  // namespace mserve::server
