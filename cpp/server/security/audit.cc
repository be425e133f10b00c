#include "server/security/audit.h"

#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <deque>
#include <mutex>
#include <random>
#include <thread>

#include "server/codec/json.h"

namespace mserve::server {

struct AuditLog::Impl {
  AuditOptions opts;
  std::FILE* file = nullptr;
  int64_t size = 0;
  bool regular = false;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::string> queue;
  bool stopping = false;
  std::atomic<int64_t> dropped{0}, errors{0};
  bool failing = false;  // in a burst of write errors (reported once)
  std::thread writer;

  bool reopen() {
    if (file) std::fclose(file);
    file = std::fopen(opts.path.c_str(), "a");
    if (!file) return false;
    struct stat st;
    regular = ::fstat(fileno(file), &st) == 0 && S_ISREG(st.st_mode);
    size = regular ? static_cast<int64_t>(st.st_size) : 0;
    return true;
  }

  void rotate() {
    std::fclose(file);
    file = nullptr;
    const std::string oldest = opts.path + "." + std::to_string(opts.keep);
    std::remove(oldest.c_str());
    for (int i = opts.keep - 1; i >= 1; --i)
      std::rename((opts.path + "." + std::to_string(i)).c_str(), (opts.path + "." + std::to_string(i + 1)).c_str());
    if (opts.keep >= 1)
      std::rename(opts.path.c_str(), (opts.path + ".1").c_str());
    else
      std::remove(opts.path.c_str());
    reopen();
  }

  void write_batch(std::deque<std::string>& lines) {
    for (const std::string& line : lines) {
      if (regular && size > 0 && size + static_cast<int64_t>(line.size()) > opts.max_bytes) rotate();
      if (!file && !reopen()) {
        fail(1, "cannot open");
        continue;
      }
      if (std::fwrite(line.data(), 1, line.size(), file) != line.size()) {
        fail(1, std::strerror(errno));
        std::clearerr(file);
        continue;
      }
      size += static_cast<int64_t>(line.size());
    }
    if (file && std::fflush(file) != 0) {
      fail(static_cast<int64_t>(lines.size()), std::strerror(errno));
      std::clearerr(file);
      return;
    }
    if (failing) {
      failing = false;
      std::fprintf(stderr, "mserve: the audit log '%s' is being written again\n", opts.path.c_str());
    }
  }

  void fail(int64_t n, const char* why) {
    errors += n;
    if (!failing) {
      failing = true;
      std::fprintf(stderr, "mserve: cannot write the audit log '%s' (%s); requests go on, lines are counted\n",
                   opts.path.c_str(), why);
    }
  }

  void run() {
    std::unique_lock<std::mutex> lk(mu);
    while (true) {
      cv.wait(lk, [&] { return stopping || !queue.empty(); });
      if (queue.empty() && stopping) break;
      std::deque<std::string> batch;
      batch.swap(queue);
      lk.unlock();
      write_batch(batch);
      lk.lock();
    }
  }
};

AuditLog::AuditLog(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

AuditLog::~AuditLog() {
  {
    std::lock_guard<std::mutex> lk(impl_->mu);
    impl_->stopping = true;
  }
  impl_->cv.notify_all();
  if (impl_->writer.joinable()) impl_->writer.join();
  if (impl_->file) std::fclose(impl_->file);
}

StatusOr<std::unique_ptr<AuditLog>> AuditLog::open(const AuditOptions& opts) {
  auto impl = std::make_unique<Impl>();
  impl->opts = opts;
  if (opts.max_bytes < 1024) return InvalidArgument("the audit log's rotation size must be at least 1024 bytes");
  if (opts.keep < 0) return InvalidArgument("the number of rotated audit logs kept cannot be negative");
  if (!impl->reopen()) return InvalidArgument("cannot open the audit log '" + opts.path + "': " + std::strerror(errno));
  Impl* raw = impl.get();
  impl->writer = std::thread([raw] { raw->run(); });
  return std::unique_ptr<AuditLog>(new AuditLog(std::move(impl)));
}

int64_t AuditLog::dropped() const { return impl_->dropped; }
int64_t AuditLog::write_errors() const { return impl_->errors; }

std::string AuditLog::new_request_id() {
  static const uint64_t prefix = std::random_device{}() ^ (static_cast<uint64_t>(std::random_device{}()) << 32);
  static std::atomic<uint64_t> counter{0};
  char buf[40];
  std::snprintf(buf, sizeof buf, "%016llx-%08llx", static_cast<unsigned long long>(prefix),
                static_cast<unsigned long long>(counter.fetch_add(1) & 0xffffffffull));
  return buf;
}

void AuditLog::record(const AuditRecord& r) {
  using namespace std::chrono;
  const auto now = system_clock::now();
  const std::time_t t = system_clock::to_time_t(now);
  std::tm tm;
  gmtime_r(&t, &tm);
  char ts[64];  // room for any int the compiler cannot bound, not just four-digit years
  const int ms = static_cast<int>(duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000);
  std::snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
  std::string o = "{\"time\":\"";
  o += ts;
  o += "\",\"protocol\":\"";
  o += r.protocol;
  o += "\",\"client\":";
  json_string(&o, r.client);
  o += ",\"identity\":";
  json_string(&o, r.identity);
  o += ",\"model\":";
  json_string(&o, r.model);
  o += ",\"version\":" + std::to_string(r.version) + ",\"endpoint\":";
  json_string(&o, r.endpoint);
  if (!r.method.empty()) {
    o += ",\"method\":";
    json_string(&o, r.method);
  }
  o += ",\"status\":" + std::to_string(r.status);
  if (!r.status_name.empty()) o += ",\"status_name\":\"" + r.status_name + "\"";
  char lat[32];
  std::snprintf(lat, sizeof lat, "%.3f", r.latency_ms);
  o += ",\"latency_ms\":";
  o += lat;
  o += ",\"request_id\":";
  json_string(&o, r.request_id);
  if (!r.event.empty()) {
    o += ",\"event\":";
    json_string(&o, r.event);
    o += ",\"detail\":";
    json_string(&o, r.detail);
  }
  o += "}\n";
  {
    std::lock_guard<std::mutex> lk(impl_->mu);
    if (impl_->queue.size() >= impl_->opts.max_queued) {
      ++impl_->dropped;
      return;
    }
    impl_->queue.push_back(std::move(o));
  }
  impl_->cv.notify_one();
}

}  // namespace mserve::server
