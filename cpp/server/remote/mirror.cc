#include "server/remote/mirror.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>

#include "server/security/digest.h"

namespace mserve::server {
namespace fs = std::filesystem;
namespace {

bool version_of(const std::string& name, int64_t* v) {
  if (name.empty() || name.size() > 18 || name.find_first_not_of("0123456789") != std::string::npos) return false;
  *v = std::stoll(name);
  return true;
}

bool plain_md5(const std::string& etag) {
  return etag.size() == 32 && etag.find_first_not_of("0123456789abcdef") == std::string::npos;
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

Mirror::Mirror(std::unique_ptr<ObjectSource> source, std::string dir)
    : source_(std::move(source)), dir_(std::move(dir)) {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  for (const auto& e : fs::directory_iterator(dir_, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind(".tmp-", 0) == 0 || name.rfind(".old-", 0) == 0) fs::remove_all(e.path(), ec);
  }
}

Mirror::State Mirror::state() const {
  std::lock_guard<std::mutex> lk(mu_);
  return state_;
}

Status Mirror::sync(const VersionPolicy& policy) {
  auto listed = source_->list();
  std::map<int64_t, std::string> waiting;
  Status result = listed.status();
  if (listed.ok()) {
    // Version -> its files, and the listing that says whether it changed.
    std::map<int64_t, std::vector<RemoteFile>> versions;
    for (RemoteFile& f : listed.value()) {
      const size_t slash = f.path.find('/');
      int64_t v;
      if (slash == std::string::npos || !version_of(f.path.substr(0, slash), &v)) continue;
      f.path = f.path.substr(slash + 1);
      if (f.path.find("..") != std::string::npos || f.path.empty() || f.path[0] == '/') continue;
      versions[v].push_back(std::move(f));
    }
    std::map<int64_t, std::string> listing;
    std::set<int64_t> candidates;
    for (auto& [v, files] : versions) {
      std::sort(files.begin(), files.end(), [](const RemoteFile& a, const RemoteFile& b) { return a.path < b.path; });
      std::string text;
      size_t onnx = 0;
      bool named = false;
      for (const RemoteFile& f : files) {
        text += f.path + " " + std::to_string(f.size) + " " + f.etag + "\n";
        named |= f.path == "model.onnx";
        onnx += f.path.find('/') == std::string::npos && f.path.size() > 5 &&
                f.path.compare(f.path.size() - 5, 5, ".onnx") == 0;
      }
      listing[v] = text;
      if (named || onnx == 1) candidates.insert(v);
    }
    // Ready: listed the same as at the previous pass (or this is the first), or already mirrored
    // (a version re-uploaded in place keeps its mirrored files until the new ones settle).
    std::set<int64_t> ready;
    std::error_code ec;
    auto mirrored = [&](int64_t v) { return fs::is_directory(fs::path(dir_) / std::to_string(v), ec); };
    for (int64_t v : candidates) {
      if (first_ || seen_[v] == listing[v] || mirrored(v))
        ready.insert(v);
      else
        waiting[v] = "its files changed since the last look (an upload in progress?)";
    }
    std::set<int64_t> wanted;
    if (policy.kind == VersionPolicy::Kind::kAll) {
      wanted = ready;
    } else if (policy.kind == VersionPolicy::Kind::kSpecific) {
      for (int64_t v : policy.versions)
        if (ready.count(v)) wanted.insert(v);
    } else {
      int k = 0;
      for (auto it = ready.rbegin(); it != ready.rend() && k < policy.num_versions; ++it, ++k) wanted.insert(*it);
    }
    for (int64_t v : wanted) {
      const fs::path record = fs::path(dir_) / (".source-" + std::to_string(v));
      if (mirrored(v) && read_file(record) == listing[v]) continue;
      if (mirrored(v) && !first_ && seen_[v] != listing[v]) {
        waiting[v] = "its files changed since the last look (an upload in progress?)";
        continue;
      }
      Status st = bring(v, versions[v], listing[v]);
      if (!st.ok() && result.ok()) result = st;
    }
    // Versions gone from the source, or no longer wanted (the manager unloads them once another
    // is available; their files are not needed for that).
    for (const auto& e : fs::directory_iterator(dir_, ec)) {
      int64_t v;
      const std::string name = e.path().filename().string();
      if (version_of(name, &v) && !wanted.count(v)) {
        fs::remove_all(e.path(), ec);
        fs::remove(fs::path(dir_) / (".source-" + std::to_string(v)), ec);
      }
    }
    seen_ = std::move(listing);
    first_ = false;
  }
  std::lock_guard<std::mutex> lk(mu_);
  ++state_.syncs;
  if (!result.ok()) ++state_.failures;
  state_.last = result;
  state_.waiting = std::move(waiting);
  return result;
}

Status Mirror::bring(int64_t version, const std::vector<RemoteFile>& files, const std::string& listing) {
  static std::atomic<uint64_t> counter{0};
  const std::string v = std::to_string(version);
  const fs::path tmp = fs::path(dir_) / (".tmp-" + v + "-" + std::to_string(counter++));
  std::error_code ec;
  fs::create_directories(tmp, ec);
  if (ec) return Unavailable("cannot create '" + tmp.string() + "': " + ec.message());
  auto fail = [&](Status st) {
    fs::remove_all(tmp, ec);
    return st;
  };
  int64_t bytes = 0;
  for (const RemoteFile& f : files) {
    const fs::path to = tmp / f.path;
    fs::create_directories(to.parent_path(), ec);
    const std::string what = source_->uri() + "/" + v + "/" + f.path;
    Status st = source_->fetch(v + "/" + f.path, to.string());
    if (!st.ok()) return fail(st);
    const auto size = static_cast<int64_t>(fs::file_size(to, ec));
    if (ec || size != f.size)
      return fail(Unavailable("'" + what + "' arrived with " + std::to_string(size) + " bytes; the listing says " +
                              std::to_string(f.size)));
    if (plain_md5(f.etag) && file_md5_hex(to.string()) != f.etag)
      return fail(Unavailable("'" + what + "' arrived with another MD5 than its ETag " + f.etag));
    bytes += size;
  }
  const fs::path target = fs::path(dir_) / v, old = fs::path(dir_) / (".old-" + v);
  if (fs::exists(target, ec)) fs::rename(target, old, ec);
  fs::rename(tmp, target, ec);
  if (ec) return fail(Unavailable("cannot move version " + v + " into '" + dir_ + "': " + ec.message()));
  fs::remove_all(old, ec);
  std::ofstream(fs::path(dir_) / (".source-" + v), std::ios::binary) << listing;
  std::lock_guard<std::mutex> lk(mu_);
  state_.downloaded_bytes += bytes;
  return Status::OK();
}

std::string mirror_dir(const RemoteOptions& opts, const std::string& model, const std::string& uri) {
  std::string root = opts.cache_dir;
  if (root.empty()) {
    const char* xdg = std::getenv("XDG_CACHE_HOME");
    const char* home = std::getenv("HOME");
    root = xdg && *xdg     ? std::string(xdg) + "/mserve"
           : home && *home ? std::string(home) + "/.cache/mserve"
                           : "/tmp/mserve";
  }
  // One folder per model and source: a model that moves to another base path starts afresh.
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (unsigned char c : uri) h = (h ^ c) * 1099511628211ull;
  char tag[17];
  std::snprintf(tag, sizeof tag, "%016llx", static_cast<unsigned long long>(h));
  std::string safe;
  for (char c : model) safe += std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' ? c : '_';
  return (fs::path(root) / "models" / (safe + "-" + tag)).string();
}

}  // namespace mserve::server
