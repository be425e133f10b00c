// Intra-op thread pool.
//
// parallel_for splits [0, n) into chunks run by the calling thread and the workers. A worker
// that runs out of work watches for the next job for a few tens of microseconds (the next
// operator of the same predict call usually comes that fast), then sleeps on a condition
// variable: an idle model costs no CPU. Safe to call
// from many threads at once: jobs queue up and workers help the oldest first. Must not be
// called from inside a parallel_for body.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace mserve {

class ThreadPool {
 public:
  // `threads` counts the caller: threads == 1 runs everything inline, with no worker.
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int threads() const { return static_cast<int>(workers_.size()) + 1; }

  // fn(begin, end) over [0, n), in chunks of at least `grain` items.
  template <class F>
  void parallel_for(int64_t n, int64_t grain, F&& fn) {
    if (n <= 0) return;
    if (workers_.empty() || n <= grain) {
      fn(int64_t{0}, n);
      return;
    }
    auto call = [](void* f, int64_t b, int64_t e) { (*static_cast<F*>(f))(b, e); };
    run(n, grain, call, &fn);
  }

  static int default_threads();

  // Workers watching for the next job go to sleep now instead of at the end of their watch:
  // called before work runs on another pool (oneDNN's OpenMP team), so they do not spin on the
  // cores it needs.
  void quiesce() { park_epoch_.fetch_add(1, std::memory_order_relaxed); }

 private:
  struct Job {
    void (*call)(void*, int64_t, int64_t);
    void* fn;
    int64_t n, chunk, num_chunks;
    std::atomic<int64_t> next{0};
    std::atomic<int> helpers{0};  // workers inside this job; joined only under mu_
    Job* link = nullptr;
  };
  void run(int64_t n, int64_t grain, void (*call)(void*, int64_t, int64_t), void* fn);
  static void work_on(Job& job);
  void worker_loop();
  void unlink(Job* job);  // requires mu_

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable work_cv_;  // workers wait for jobs
  std::condition_variable done_cv_;  // callers wait for helpers to leave their job
  std::atomic<int> queued_{0};  // jobs in the queue; read without the lock while spinning
  std::atomic<uint64_t> park_epoch_{0};  // bumped by quiesce()
  Job* head_ = nullptr;
  Job* tail_ = nullptr;
  bool stop_ = false;
};

}  // namespace mserve
