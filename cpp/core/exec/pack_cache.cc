#include "core/exec/pack_cache.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "core/kernels/dnnl_matmul.h"

#ifndef MSERVE_VERSION
#error "MSERVE_VERSION comes from pyproject.toml through CMakeLists.txt"
#endif

namespace mserve {
namespace {

constexpr char kMagic[8] = {'M', 'S', 'P', 'A', 'C', 'K', '1', '\0'};
constexpr size_t kAlign = 64;

struct Header {
  char magic[8];
  uint64_t env_lo, env_hi, count, table, size, reserved, digest;
};
static_assert(sizeof(Header) == 64);
struct Row {
  uint64_t key_lo, key_hi, offset, size, digest;
};
static_assert(sizeof(Row) == 40);

uint64_t header_digest(const Header& h) { return pack_digest64(&h, offsetof(Header, digest)); }

// The build and machine a file's packed bytes are for.
PackKey environment() {
  static const PackKey env = [] {
    const std::string s = std::string("mspack 1; mserve ") + MSERVE_VERSION + "; " + DnnlMatMul::packing_environment();
    return PackKeyBuilder("environment").add(s.data(), s.size()).key();
  }();
  return env;
}

std::string errno_text() { return std::strerror(errno); }

// Writes all of [data, data + n) at `offset`; false on an error (errno says which).
bool write_at(int fd, const void* data, size_t n, uint64_t offset) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = pwrite(fd, p, n, static_cast<off_t>(offset));
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += w;
    n -= static_cast<size_t>(w);
    offset += static_cast<uint64_t>(w);
  }
  return true;
}

}  // namespace

struct PackCache::Entry {
  PackKey key;
  uint64_t offset, size, digest;
  enum class State { kUnchecked, kGood, kBad } state = State::kUnchecked;
};

struct PackCache::Mapped {
  void* data = nullptr;
  size_t size = 0;
  ~Mapped() {
    if (data) munmap(data, size);
  }
  const char* bytes() const { return static_cast<const char*>(data); }
};

std::shared_ptr<PackCache> PackCache::open(const std::string& dir, const std::string& model_name) {
  std::shared_ptr<PackCache> c(new PackCache());
  char env[17];
  std::snprintf(env, sizeof env, "%016llx", static_cast<unsigned long long>(environment().lo));
  c->dir_ = dir;
  c->path_ = dir + "/" + model_name + "." + env + ".mspack";
  c->report_.path = c->path_;
  c->load_file();
  return c;
}

PackCache::~PackCache() = default;

void PackCache::load_file() {
  const int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno != ENOENT) report_.error = "cannot open the pack cache: " + errno_text();
    return;
  }
  struct stat st;
  auto map = std::make_shared<Mapped>();
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && static_cast<size_t>(st.st_size) >= sizeof(Header)) {
    void* p = mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_SHARED, fd, 0);
    if (p != MAP_FAILED) {
      map->data = p;
      map->size = static_cast<size_t>(st.st_size);
    }
  }
  ::close(fd);
  auto reject = [&](const std::string& why) { report_.error = "ignored the pack cache (" + why + ")"; };
  if (!map->data) return reject("not a readable pack cache file");
  Header h;
  std::memcpy(&h, map->bytes(), sizeof h);
  const PackKey env = environment();
  if (std::memcmp(h.magic, kMagic, sizeof kMagic) != 0 || h.digest != header_digest(h)) return reject("bad header");
  if (h.env_lo != env.lo || h.env_hi != env.hi) return reject("made by another build or CPU");
  if (h.size != map->size || h.table < sizeof(Header) || h.table > h.size ||
      h.count > (h.size - h.table) / sizeof(Row) || h.table + h.count * sizeof(Row) != h.size)
    return reject("truncated or inconsistent");
  std::vector<Entry> entries(h.count);
  for (uint64_t i = 0; i < h.count; ++i) {
    Row r;
    std::memcpy(&r, map->bytes() + h.table + i * sizeof(Row), sizeof r);
    if (r.offset % kAlign != 0 || r.offset < sizeof(Header) || r.offset > h.table || r.size > h.table - r.offset)
      return reject("an entry lies outside the file");
    entries[i] = Entry{{r.key_lo, r.key_hi}, r.offset, r.size, r.digest};
  }
  entries_ = std::move(entries);
  file_ = std::move(map);
}

PackStore::Found PackCache::find(const PackKey& key, size_t size) {
  std::lock_guard<std::mutex> lk(mu_);
  for (Entry& e : entries_) {
    if (!(e.key == key) || e.size != size || e.state == Entry::State::kBad) continue;
    const char* data = file_->bytes() + e.offset;
    if (e.state == Entry::State::kUnchecked) {
      e.state = pack_digest64(data, size) == e.digest ? Entry::State::kGood : Entry::State::kBad;
      if (e.state == Entry::State::kBad) {
        report_.error = "ignored a corrupt entry of the pack cache";
        continue;
      }
    }
    used_.push_back({key, data, size, file_, {}});
    ++report_.found;
    return {data, file_};
  }
  return {};
}

void PackCache::add(const PackKey& key, const void* data, size_t size, std::shared_ptr<const void> keep) {
  std::lock_guard<std::mutex> lk(mu_);
  used_.push_back({key, data, size, std::move(keep), {}});
  ++report_.packed;
}

void PackCache::offer(const PackKey& key, const void* data, size_t size, std::weak_ptr<const void> owner) {
  std::lock_guard<std::mutex> lk(mu_);
  used_.push_back({key, data, size, nullptr, std::move(owner)});
  ++report_.copied;
}

Status PackCache::save() {
  std::lock_guard<std::mutex> lk(mu_);
  std::vector<Used> used;
  used.swap(used_);  // what the packed weights' owners no longer need is freed on return
  size_t fresh = 0;  // entries the file lacks
  for (Used& u : used) {
    if (!u.keep) u.keep = u.owner.lock();  // an offered copy: kept only while still used
    if (u.keep && u.keep != file_) ++fresh;
  }
  if (fresh == 0) return Status::OK();
  auto fail = [&](const std::string& what) {
    report_.error = "could not write the pack cache: " + what;
    return Unavailable(report_.error);
  };
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  if (ec) return fail("cannot create '" + dir_ + "': " + ec.message());
  static std::atomic<unsigned> serial{0};
  const std::string tmp = path_ + ".tmp." + std::to_string(getpid()) + "." + std::to_string(serial++);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return fail(errno_text());
  std::vector<Row> rows;
  uint64_t at = sizeof(Header);
  bool ok = true;
  for (const Used& u : used) {
    if (!u.keep) continue;
    bool dup = false;
    for (const Row& r : rows) dup = dup || (r.key_lo == u.key.lo && r.key_hi == u.key.hi && r.size == u.size);
    if (dup) continue;
    at = (at + kAlign - 1) / kAlign * kAlign;
    rows.push_back({u.key.lo, u.key.hi, at, u.size, pack_digest64(u.data, u.size)});
    ok = ok && write_at(fd, u.data, u.size, at);
    at += u.size;
  }
  Header h;
  std::memcpy(h.magic, kMagic, sizeof kMagic);
  const PackKey env = environment();
  h.env_lo = env.lo;
  h.env_hi = env.hi;
  h.count = rows.size();
  h.table = at;
  h.size = at + rows.size() * sizeof(Row);
  h.reserved = 0;
  h.digest = header_digest(h);
  ok = ok && write_at(fd, rows.data(), rows.size() * sizeof(Row), h.table) && write_at(fd, &h, sizeof h, 0);
  const std::string why = ok ? "" : errno_text();
  if (::close(fd) != 0 && ok) return (::unlink(tmp.c_str()), fail(errno_text()));
  if (!ok) return (::unlink(tmp.c_str()), fail(why));
  if (::rename(tmp.c_str(), path_.c_str()) != 0) {
    const std::string e = errno_text();
    ::unlink(tmp.c_str());
    return fail(e);
  }
  report_.written = true;
  return Status::OK();
}

PackCache::Report PackCache::report() const {
  std::lock_guard<std::mutex> lk(mu_);
  return report_;
}

}  // namespace mserve
