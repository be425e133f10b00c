#include "core/parallel/thread_pool.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>

namespace mserve {
namespace {

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::atomic<int64_t> crowded_until{0};  // steady-clock ns
thread_local bool in_alone_scope = false;

}  // namespace

bool ThreadPool::crowded() {
  if (in_alone_scope) return true;
  const int64_t until = crowded_until.load(std::memory_order_relaxed);
  return until != 0 && now_ns() < until;
}

bool ThreadPool::alone() { return in_alone_scope; }
ThreadPool::Alone::Alone() : was_(in_alone_scope) { in_alone_scope = true; }
ThreadPool::Alone::~Alone() { in_alone_scope = was_; }

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
  std::atomic<int64_t> next{0}, late{0};
  const int team = static_cast<int>(std::min<int64_t>(threads_, chunks));
  const int64_t t0 = now_ns();
#pragma omp parallel num_threads(team)
  {
    if (omp_get_thread_num() != 0) {
      const int64_t d = now_ns() - t0;
      if (d > late.load(std::memory_order_relaxed)) late.store(d, std::memory_order_relaxed);
    }
    for (;;) {
      const int64_t c = next.fetch_add(1, std::memory_order_relaxed);
      if (c >= chunks) break;
      const int64_t b = c * chunk;
      call(fn, b, std::min(n, b + chunk));
    }
  }
  // A caller's first region of a team size starts new OpenMP workers (libgomp keeps a team per
  // calling thread): their start-up is not lateness.
  thread_local int warm_team = 1;
  if (team > warm_team)
    warm_team = team;
  else if (late.load(std::memory_order_relaxed) > kLateNs)
    crowded_until.store(now_ns() + kCrowdedNs);
}

}  // namespace mserve
