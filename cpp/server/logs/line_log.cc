#include "server/logs/line_log.h"

#include <sys/stat.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <deque>
#include <mutex>
#include <thread>

namespace mserve::server {

struct LineLog::Impl {
  LineLogOptions opts;
  std::FILE* file = nullptr;
  int64_t size = 0;
  bool regular = false;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::string> queue;
  bool stopping = false;
  std::atomic<int64_t> dropped{0}, errors{0}, written{0};
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
      ++written;
    }
    if (file && std::fflush(file) != 0) {
      fail(static_cast<int64_t>(lines.size()), std::strerror(errno));
      std::clearerr(file);
      return;
    }
    if (failing) {
      failing = false;
      std::fprintf(stderr, "mserve: %s '%s' is being written again\n", opts.what.c_str(), opts.path.c_str());
    }
  }

  void fail(int64_t n, const char* why) {
    errors += n;
    if (!failing) {
      failing = true;
      std::fprintf(stderr, "mserve: cannot write %s '%s' (%s); requests go on, lines are counted\n", opts.what.c_str(),
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

LineLog::LineLog(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

LineLog::~LineLog() {
  {
    std::lock_guard<std::mutex> lk(impl_->mu);
    impl_->stopping = true;
  }
  impl_->cv.notify_all();
  if (impl_->writer.joinable()) impl_->writer.join();
  if (impl_->file) std::fclose(impl_->file);
}

StatusOr<std::unique_ptr<LineLog>> LineLog::open(const LineLogOptions& opts) {
  auto impl = std::make_unique<Impl>();
  impl->opts = opts;
  if (opts.max_bytes < 1024) return InvalidArgument(opts.what + "'s rotation size must be at least 1024 bytes");
  if (opts.keep < 0) return InvalidArgument("the number of rotated files of " + opts.what + " kept cannot be negative");
  if (!impl->reopen())
    return InvalidArgument("cannot open " + opts.what + " '" + opts.path + "': " + std::strerror(errno));
  Impl* raw = impl.get();
  impl->writer = std::thread([raw] { raw->run(); });
  return std::unique_ptr<LineLog>(new LineLog(std::move(impl)));
}

bool LineLog::write(std::string line) {
  {
    std::lock_guard<std::mutex> lk(impl_->mu);
    if (impl_->queue.size() >= impl_->opts.max_queued) {
      ++impl_->dropped;
      return false;
    }
    impl_->queue.push_back(std::move(line));
  }
  impl_->cv.notify_one();
  return true;
}

int64_t LineLog::dropped() const { return impl_->dropped; }
int64_t LineLog::write_errors() const { return impl_->errors; }
int64_t LineLog::written() const { return impl_->written; }

std::string utc_timestamp() {
  using namespace std::chrono;
  const auto now = system_clock::now();
  const std::time_t t = system_clock::to_time_t(now);
  std::tm tm;
  gmtime_r(&t, &tm);
  char ts[64];  // room for any int the compiler cannot bound, not just four-digit years
  const int ms = static_cast<int>(duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000);
  std::snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
  return ts;
}

}  // namespace mserve::server
