#include "core/parallel/thread_pool.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <thread>

namespace mserve {

ThreadPool::ThreadPool(int threads) : threads_(std::max(1, threads)) {}

int ThreadPool::default_threads() {
  unsigned n = std::thread::hardware_concurrency();
  return n ? static_cast<int>(n) : 1;
}

void ThreadPool::run(int64_t n, int64_t grain, void (*call)(void*, int64_t, int64_t), void* fn) {
  // A few chunks per thread balance uneven work without much scheduling overhead; threads take
  // the next chunk from a shared counter.
  const int64_t max_chunks = static_cast<int64_t>(threads_) * 4;
  int64_t chunks = std::max<int64_t>(1, std::min(max_chunks, n / std::max<int64_t>(grain, 1)));
  const int64_t chunk = (n + chunks - 1) / chunks;
  chunks = (n + chunk - 1) / chunk;
  std::atomic<int64_t> next{0};
  const int team = static_cast<int>(std::min<int64_t>(threads_, chunks));
#pragma omp parallel num_threads(team)
  {
    for (;;) {
      const int64_t c = next.fetch_add(1, std::memory_order_relaxed);
      if (c >= chunks) break;
      const int64_t b = c * chunk;
      call(fn, b, std::min(n, b + chunk));
    }
  }
}

}  // namespace mserve
