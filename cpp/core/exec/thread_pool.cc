#include "core/exec/thread_pool.h"

#include <algorithm>
#include <chrono>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define MS_CPU_RELAX() _mm_pause()
#else
#define MS_CPU_RELAX() std::this_thread::yield()
#endif

namespace mserve {

ThreadPool::ThreadPool(int threads) {
  for (int i = 1; i < threads; ++i) workers_.emplace_back([this] { worker_loop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  for (auto& t : workers_) t.join();
}

int ThreadPool::default_threads() {
  unsigned n = std::thread::hardware_concurrency();
  return n ? static_cast<int>(n) : 1;
}

void ThreadPool::work_on(Job& job) {
  for (;;) {
    int64_t c = job.next.fetch_add(1, std::memory_order_relaxed);
    if (c >= job.num_chunks) return;
    int64_t b = c * job.chunk;
    job.call(job.fn, b, std::min(job.n, b + job.chunk));
  }
}

void ThreadPool::unlink(Job* job) {
  Job* prev = nullptr;
  for (Job* j = head_; j; prev = j, j = j->link) {
    if (j != job) continue;
    (prev ? prev->link : head_) = j->link;
    if (tail_ == j) tail_ = prev;
    j->link = nullptr;
    queued_.fetch_sub(1, std::memory_order_relaxed);
    return;
  }
}

void ThreadPool::run(int64_t n, int64_t grain, void (*call)(void*, int64_t, int64_t), void* fn) {
  Job job;
  job.call = call;
  job.fn = fn;
  job.n = n;
  // A few chunks per thread balance uneven work without much scheduling overhead.
  int64_t max_chunks = static_cast<int64_t>(threads()) * 4;
  job.num_chunks = std::max<int64_t>(1, std::min(max_chunks, n / std::max<int64_t>(grain, 1)));
  job.chunk = (n + job.num_chunks - 1) / job.num_chunks;
  job.num_chunks = (n + job.chunk - 1) / job.chunk;
  {
    std::lock_guard<std::mutex> lk(mu_);
    (tail_ ? tail_->link : head_) = &job;
    tail_ = &job;
    queued_.fetch_add(1, std::memory_order_release);
  }
  work_cv_.notify_all();
  work_on(job);
  // All chunks are claimed; wait for helpers still running theirs, then the job may die.
  {
    std::lock_guard<std::mutex> lk(mu_);
    unlink(&job);  // no new helper can join now
  }
  // A helper's last chunk usually ends within microseconds: watch for that before sleeping, as
  // a futex sleep and wake-up costs more than most chunks (measured: a batch-32 BiLSTM ran
  // 3x slower on 2 threads than on 1 when the caller slept here every time step).
  const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(100);
  while (job.helpers.load(std::memory_order_acquire) != 0 && std::chrono::steady_clock::now() < until)
    for (int i = 0; i < 16; ++i) MS_CPU_RELAX();
  if (job.helpers.load(std::memory_order_acquire) != 0) {
    std::unique_lock<std::mutex> lk(mu_);
    done_cv_.wait(lk, [&] { return job.helpers.load(std::memory_order_acquire) == 0; });
  }
}

void ThreadPool::worker_loop() {
  // How long an idle worker watches for the next job before sleeping.
  constexpr auto kSpin = std::chrono::microseconds(50);
  std::unique_lock<std::mutex> lk(mu_);
  for (;;) {
    if (!stop_ && head_ == nullptr) {
      lk.unlock();
      const auto until = std::chrono::steady_clock::now() + kSpin;
      const uint64_t epoch = park_epoch_.load(std::memory_order_relaxed);
      while (queued_.load(std::memory_order_acquire) == 0 && park_epoch_.load(std::memory_order_relaxed) == epoch &&
             std::chrono::steady_clock::now() < until)
        for (int i = 0; i < 64; ++i) MS_CPU_RELAX();
      lk.lock();
    }
    work_cv_.wait(lk, [&] { return stop_ || head_ != nullptr; });
    if (stop_) return;
    Job* job = head_;
    job->helpers.fetch_add(1, std::memory_order_relaxed);
    lk.unlock();
    work_on(*job);
    lk.lock();
    unlink(job);  // exhausted: stop offering it to other workers
    // After this the caller may return and `job` may be gone: touch nothing of it.
    if (job->helpers.fetch_sub(1, std::memory_order_release) == 1) done_cv_.notify_all();
  }
}

}  // namespace mserve
