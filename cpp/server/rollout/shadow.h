// ShadowRunner: runs requests a rollout mirrored to its shadow label, after their answers were
// sent, on one low-priority thread of its own (nice 10, the model's intra-op pool not used), and
// compares the shadow's outputs with the answer's. Each model's queue is bounded by its rollout's
// shadow.queue: a request that finds it full is dropped and counted, so a slow, failing or missing
// shadow never delays or fails a client.
//
// Thread-safety: submit() may be called from any thread.
#pragma once
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "core/tensor/tensor.h"

namespace mserve::server {

class ModelManager;
class RolloutModel;

// How far a shadow's outputs are from the answer's: the largest absolute difference over every
// element of every output (strings: 0 when equal, infinity when not; NaN against NaN is equal),
// and for classifier-shaped outputs (float, [rows, classes > 1]) how many rows agree on the argmax.
struct ShadowDiff {
  double max_abs = 0;
  uint64_t rows = 0, agree = 0;
};
// InvalidArgument when the outputs differ in number, element type or shape.
StatusOr<ShadowDiff> compare_outputs(const std::vector<Tensor>& answer, const std::vector<Tensor>& shadow);

class ShadowRunner {
 public:
  explicit ShadowRunner(ModelManager* manager);
  ~ShadowRunner();  // stops; what is still queued is dropped
  // A place in `model`'s queue, or false (the request counted as dropped) when it is full.
  // Every reserved place is then either submitted or released.
  bool reserve(RolloutModel& model);
  void release(RolloutModel& model);
  // Queues a request for `model`'s shadow: `inputs` and `answer` must own their memory (the
  // request's body is reused once it is answered).
  void submit(const std::shared_ptr<RolloutModel>& model, std::vector<Tensor> inputs, std::vector<Tensor> answer);

 private:
  struct Job {
    std::shared_ptr<RolloutModel> model;
    std::vector<Tensor> inputs, answer;
  };
  void loop();
  void run(Job& job);
  ModelManager* manager_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> queue_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace mserve::server
