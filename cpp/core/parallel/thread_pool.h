// Intra-op thread pool.
//
// parallel_for splits [0, n) into chunks run by a team of `threads` threads: the caller and
// OpenMP workers. The team is OpenMP's, the same one oneDNN's kernels (Debian builds oneDNN on
// OpenMP) run on, so the two never compete for cores: with two pools, a pool's workers watching
// for work after a oneDNN call (or OpenMP's after ours) took the core the other needed, and a
// 2-thread MobileNetV3 spent twice as long in ReduceMean as on 1 thread. Idle OpenMP workers
// spin briefly, then sleep (libgomp's default): an idle model costs no CPU. Safe to call from
// many threads at once (each caller leads its own team). Must not be called from inside a
// parallel_for body.
//
// A crowded machine: when other processes (or other callers' teams) keep the cores busy, a
// worker may start its share a scheduler time slice late, and every parallel region (ours and
// oneDNN's, which end in a barrier) then waits milliseconds for it: a 2-thread BERT took 8.7x
// its quiet latency beside one busy process, running on one thread 1.1x. So each region notes
// how late its workers started; one over kLateNs (quiet: under 0.2 ms, seen; crowded: 3-5 ms)
// makes crowded() true for kCrowdedNs, during which parallel_for runs on the caller alone and
// the oneDNN wrappers use their one-thread primitives. Then regions try the full team again.
//
// A caller that knows the cores are taken (a server running several requests at once, each on
// its own thread) runs a call alone in a ThreadPool::Alone scope: crowded() is true on that
// thread for the scope's life, so the call's work stays on it and no team oversubscribes.
#pragma once
#include <cstdint>

namespace mserve {

class ThreadPool {
 public:
  // `threads` counts the caller: threads == 1 runs everything inline.
  explicit ThreadPool(int threads);
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int threads() const { return threads_; }

  // fn(begin, end) over [0, n), in chunks of at least `grain` items.
  template <class F>
  void parallel_for(int64_t n, int64_t grain, F&& fn) {
    if (n <= 0) return;
    if (threads_ == 1 || n <= grain || crowded()) {
      fn(int64_t{0}, n);
      return;
    }
    auto call = [](void* f, int64_t b, int64_t e) { (*static_cast<F*>(f))(b, e); };
    run(n, grain, call, &fn);
  }

  static int default_threads();

  // Whether a recent region's worker started late (process-wide; see above), or the calling
  // thread is in an Alone scope.
  static bool crowded();

  static bool alone();  // whether the calling thread is in an Alone scope
  class Alone {
   public:
    Alone();
    ~Alone();
    Alone(const Alone&) = delete;
    Alone& operator=(const Alone&) = delete;

   private:
    bool was_;
  };
  static constexpr int64_t kLateNs = 1'000'000, kCrowdedNs = 1'000'000'000;

 private:
  void run(int64_t n, int64_t grain, void (*call)(void*, int64_t, int64_t), void* fn);
  int threads_;
};

}  // namespace mserve
