// Batcher: merges concurrent requests for one model version into one run along dim 0.
//
// Requests whose inputs agree on every dimension but the first are concatenated (or, with
// pad_variable_length_inputs, zero-padded to the largest), optionally padded up to the next
// allowed batch size, run once, and the outputs are split back per request. A full queue refuses
// a request at once (Unavailable) instead of queueing it; a request whose deadline passes while
// queued is answered DeadlineExceeded and never run.
//
// Thread-safety: submit() may be called from any thread; `done` runs on a batch thread.
#pragma once
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "core/exec/session.h"
#include "server/repository/config.h"

namespace mserve::server {

using Clock = std::chrono::steady_clock;
using RunDone = std::function<void(Status, std::vector<Tensor>)>;

class Batcher {
 public:
  // `on_batch(size)` is told the size of every batch run (for metrics); `on_outputs` sees each
  // batch's outputs (padding rows left out) before they are split back; either may be empty.
  Batcher(std::shared_ptr<Session> session, const BatchingOptions& opts, std::function<void(size_t)> on_batch = {},
          std::function<void(const std::vector<Tensor>&)> on_outputs = {});
  ~Batcher();  // answers what is queued (runs it), then joins the threads
  Batcher(const Batcher&) = delete;
  Batcher& operator=(const Batcher&) = delete;

  // Queues one request. Fails at once (without calling `done`) when the request cannot be
  // batched (no batch dimension, larger than max_batch_size) or the queue is full.
  Status submit(std::vector<Tensor> inputs, Clock::time_point deadline, RunDone done);
  size_t queued_rows() const;
  const BatchingOptions& options() const { return opts_; }

 private:
  struct Task {
    std::vector<Tensor> inputs;
    int64_t rows;
    Clock::time_point enqueued, deadline;
    RunDone done;
  };
  void worker();
  bool compatible(const Task& a, const Task& b) const;
  void run_batch(std::vector<Task>& tasks);

  std::shared_ptr<Session> session_;
  BatchingOptions opts_;
  std::function<void(size_t)> on_batch_;
  std::function<void(const std::vector<Tensor>&)> on_outputs_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Task> queue_;
  int64_t queued_rows_ = 0;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace mserve::server
