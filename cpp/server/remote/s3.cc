// The S3 source (source.h); open_source() picks a source by scheme.
#include <cstdlib>
#include <thread>

#include "server/remote/sigv4.h"
#include "server/remote/source.h"

namespace mserve::server {
namespace {

// The text of each <tag>...</tag> in `xml` (S3's XML has no attributes on these), entities decoded.
std::vector<std::string> elements(const std::string& xml, const std::string& tag) {
  std::vector<std::string> out;
  const std::string open = "<" + tag + ">", close = "</" + tag + ">";
  for (size_t at = xml.find(open); at != std::string::npos; at = xml.find(open, at)) {
    const size_t begin = at + open.size(), end = xml.find(close, begin);
    if (end == std::string::npos) break;
    std::string raw = xml.substr(begin, end - begin), text;
    for (size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] != '&') {
        text += raw[i];
        continue;
      }
      const size_t semi = raw.find(';', i);
      const std::string ent = semi == std::string::npos ? "" : raw.substr(i + 1, semi - i - 1);
      if (ent == "amp")
        text += '&';
      else if (ent == "lt")
        text += '<';
      else if (ent == "gt")
        text += '>';
      else if (ent == "quot")
        text += '"';
      else if (ent == "apos")
        text += '\'';
      else if (ent.size() > 1 && ent[0] == '#') {
        const long c =
            ent[1] == 'x' ? std::strtol(ent.c_str() + 2, nullptr, 16) : std::strtol(ent.c_str() + 1, nullptr, 10);
        if (c > 0 && c < 128) text += static_cast<char>(c);
      } else {
        text += '&';
        continue;
      }
      i = semi;
    }
    out.push_back(std::move(text));
    at = end + close.size();
  }
  return out;
}

std::string unquote(std::string s) {
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') return s.substr(1, s.size() - 2);
  return s;
}

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

class S3Source : public ObjectSource {
 public:
  S3Source(std::string uri, Url endpoint, std::string bucket, std::string prefix, std::string region, int timeout_ms)
      : uri_(std::move(uri)),
        endpoint_(std::move(endpoint)),
        bucket_(std::move(bucket)),
        prefix_(std::move(prefix)),
        region_(std::move(region)),
        client_(timeout_ms) {}

  const std::string& uri() const override { return uri_; }

  StatusOr<std::vector<RemoteFile>> list() override {
    std::vector<RemoteFile> out;
    std::string token;
    const std::string prefix = prefix_.empty() ? "" : prefix_ + "/";
    for (int page = 0; page < 100000; ++page) {
      std::vector<std::pair<std::string, std::string>> query = {{"list-type", "2"}, {"prefix", prefix}};
      if (!token.empty()) query.emplace_back("continuation-token", token);
      MS_ASSIGN_OR_RETURN(HttpReply r, call("/" + bucket_, query, ""));
      if (r.status != 200) return error(r, "list " + uri_);
      const auto keys = elements(r.body, "Key"), sizes = elements(r.body, "Size"), etags = elements(r.body, "ETag");
      if (keys.size() != sizes.size())
        return Unavailable("the listing of " + uri_ + " is malformed (" + std::to_string(keys.size()) + " keys, " +
                           std::to_string(sizes.size()) + " sizes)");
      for (size_t i = 0; i < keys.size(); ++i) {
        if (keys[i].compare(0, prefix.size(), prefix) != 0) continue;
        RemoteFile f;
        f.path = keys[i].substr(prefix.size());
        f.size = std::strtoll(sizes[i].c_str(), nullptr, 10);
        if (i < etags.size()) f.etag = unquote(etags[i]);
        if (!f.path.empty() && f.path.back() != '/') out.push_back(std::move(f));
      }
      const auto truncated = elements(r.body, "IsTruncated");
      if (truncated.empty() || truncated[0] != "true") return out;
      const auto next = elements(r.body, "NextContinuationToken");
      if (next.empty() || next[0].empty()) return Unavailable("the listing of " + uri_ + " is truncated with no token");
      token = next[0];
    }
    return Unavailable("the listing of " + uri_ + " does not end");
  }

  Status fetch(const std::string& path, const std::string& to) override {
    const std::string key = (prefix_.empty() ? "" : prefix_ + "/") + path;
    MS_ASSIGN_OR_RETURN(HttpReply r, call("/" + bucket_ + "/" + aws_uri_encode(key, true), {}, to));
    if (r.status != 200) return error(r, "fetch " + uri_ + "/" + path);
    return Status::OK();
  }

 private:
  // A signed GET, retried with backoff while the store says it is busy (503, SlowDown).
  StatusOr<HttpReply> call(const std::string& path, const std::vector<std::pair<std::string, std::string>>& query,
                           const std::string& to_file) {
    std::string target = endpoint_.target == "/" ? path : endpoint_.target + path;
    std::string qs;
    for (const auto& [k, v] : query)
      qs += (qs.empty() ? "?" : "&") + aws_uri_encode(k, false) + "=" + aws_uri_encode(v, false);
    Url u = endpoint_;
    u.target = target + qs;
    SigV4Request req{"GET", endpoint_.host_header(), target, query, {}, sha256_hex("")};
    for (int attempt = 0;; ++attempt) {
      const Headers headers = sign_v4(req, aws_credentials(), region_, "s3", amz_date_now());
      auto r = client_.request(u, "GET", headers, "", to_file);
      const bool busy =
          r.ok() && (r.value().status == 503 || r.value().body.find("<Code>SlowDown</Code>") != std::string::npos);
      if (!busy || attempt == 3) return r;
      std::this_thread::sleep_for(std::chrono::milliseconds(200 << attempt));
    }
  }

  static Status error(const HttpReply& r, const std::string& what) {
    const auto code = elements(r.body, "Code"), message = elements(r.body, "Message");
    std::string why = "HTTP " + std::to_string(r.status);
    if (!code.empty()) why += " " + code[0];
    if (!message.empty()) why += ": " + message[0];
    if (r.status == 403 || r.status == 401) return PermissionDenied("cannot " + what + ": " + why);
    if (r.status == 404) return NotFound("cannot " + what + ": " + why);
    return Unavailable("cannot " + what + ": " + why);
  }

  const std::string uri_;
  const Url endpoint_;
  const std::string bucket_, prefix_, region_;
  HttpClient client_;
};

}  // namespace

StatusOr<std::unique_ptr<ObjectSource>> open_s3(const std::string& uri, const RemoteOptions& opts) {
  std::string rest = uri.substr(5);
  while (!rest.empty() && rest.back() == '/') rest.pop_back();
  std::string region = env("AWS_REGION");
  if (region.empty()) region = env("AWS_DEFAULT_REGION");
  if (region.empty()) region = "us-east-1";
  Url endpoint;
  const size_t slash = rest.find('/');
  const std::string first = rest.substr(0, slash);
  if (first.find(':') != std::string::npos) {  // s3://host:port/bucket/prefix
    MS_ASSIGN_OR_RETURN(endpoint, parse_url("http://" + first));
    rest = slash == std::string::npos ? "" : rest.substr(slash + 1);
  } else {
    std::string e = env("AWS_ENDPOINT_URL_S3");
    if (e.empty()) e = env("AWS_ENDPOINT_URL");
    if (e.empty()) e = "https://s3." + region + ".amazonaws.com";
    MS_ASSIGN_OR_RETURN(endpoint, parse_url(e));
    if (endpoint.target.size() > 1 && endpoint.target.back() == '/') endpoint.target.pop_back();
  }
  const size_t b = rest.find('/');
  const std::string bucket = rest.substr(0, b), prefix = b == std::string::npos ? "" : rest.substr(b + 1);
  if (bucket.empty()) return InvalidArgument("'" + uri + "': no bucket");
  return std::unique_ptr<ObjectSource>(new S3Source(uri, endpoint, bucket, prefix, region, opts.timeout_ms));
}

bool is_remote(const std::string& base_path) {
  return base_path.compare(0, 5, "s3://") == 0 || base_path.compare(0, 10, "webhdfs://") == 0;
}

StatusOr<std::unique_ptr<ObjectSource>> open_source(const std::string& uri, const RemoteOptions& opts) {
  if (uri.compare(0, 5, "s3://") == 0) return open_s3(uri, opts);
  if (uri.compare(0, 10, "webhdfs://") == 0) return open_webhdfs(uri, opts);
  return InvalidArgument("'" + uri + "': not a remote base path this server reads");
}

}  // namespace mserve::server
