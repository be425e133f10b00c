#include "server/rollout/shadow.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/parallel/thread_pool.h"
#include "server/repository/manager.h"
#include "server/rollout/rollout.h"

namespace mserve::server {

StatusOr<ShadowDiff> compare_outputs(const std::vector<Tensor>& answer, const std::vector<Tensor>& shadow) {
  if (answer.size() != shadow.size())
    return InvalidArgument("the shadow has " + std::to_string(shadow.size()) + " outputs, the answer " +
                           std::to_string(answer.size()));
  ShadowDiff d;
  for (size_t k = 0; k < answer.size(); ++k) {
    const Tensor &a = answer[k], &s = shadow[k];
    if (a.dtype() != s.dtype() || a.shape() != s.shape())
      return InvalidArgument("output " + std::to_string(k) + " is " + s.desc() + " from the shadow, " + a.desc() +
                             " in the answer");
    const int64_t n = a.numel();
    if (a.dtype() == DType::kString) {
      for (int64_t i = 0; i < n; ++i)
        if (a.str(i) != s.str(i)) d.max_abs = std::numeric_limits<double>::infinity();
      continue;
    }
    for (int64_t i = 0; i < n; ++i) {
      const double x = a.float_at(i), y = s.float_at(i);
      if (std::isnan(x) && std::isnan(y)) continue;
      const double diff = std::isnan(x) || std::isnan(y) ? std::numeric_limits<double>::infinity() : std::fabs(x - y);
      d.max_abs = std::max(d.max_abs, diff);
    }
    const bool floating = a.dtype() == DType::kFloat32 || a.dtype() == DType::kFloat64 ||
                          a.dtype() == DType::kFloat16 || a.dtype() == DType::kBFloat16;
    if (floating && a.rank() == 2 && a.dim(1) > 1) {
      const int64_t rows = a.dim(0), cols = a.dim(1);
      auto argmax = [cols](const Tensor& t, int64_t r) {
        int64_t best = 0;
        for (int64_t c = 1; c < cols; ++c)
          if (t.float_at(r * cols + c) > t.float_at(r * cols + best)) best = c;
        return best;
      };
      for (int64_t r = 0; r < rows; ++r) {
        ++d.rows;
        d.agree += argmax(a, r) == argmax(s, r);
      }
    }
  }
  return d;
}

ShadowRunner::ShadowRunner(ModelManager* manager) : manager_(manager), thread_([this] { loop(); }) {}

ShadowRunner::~ShadowRunner() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
  for (Job& j : queue_) {
    --j.model->shadow_queued();
    j.model->shadow_outcome(RolloutModel::kDropped);
  }
}

bool ShadowRunner::reserve(RolloutModel& model) {
  if (++model.shadow_queued() <= model.config().shadow.queue) return true;
  --model.shadow_queued();
  model.shadow_outcome(RolloutModel::kDropped);
  return false;
}

void ShadowRunner::release(RolloutModel& model) { --model.shadow_queued(); }

void ShadowRunner::submit(const std::shared_ptr<RolloutModel>& model, std::vector<Tensor> inputs,
                          std::vector<Tensor> answer) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (!stopping_) {
      queue_.push_back(Job{model, std::move(inputs), std::move(answer)});
      cv_.notify_one();
      return;
    }
  }
  release(*model);
  model->shadow_outcome(RolloutModel::kDropped);
}

void ShadowRunner::loop() {
  // Below the request threads: the shadow takes what the answers leave.
  setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), 10);
  ThreadPool::Alone alone;
  std::unique_lock<std::mutex> lk(mu_);
  while (true) {
    cv_.wait(lk, [this] { return stopping_ || !queue_.empty(); });
    if (stopping_) return;
    Job job = std::move(queue_.front());
    queue_.pop_front();
    lk.unlock();
    run(job);
    --job.model->shadow_queued();
    job = Job{};
    lk.lock();
  }
}

void ShadowRunner::run(Job& job) {
  RolloutModel& m = *job.model;
  auto sv = manager_->get(m.model(), std::nullopt, m.config().shadow.label);
  if (!sv.ok()) return m.shadow_outcome(RolloutModel::kUnavailable);
  std::vector<Tensor> outs;
  if (!sv.value()->session->run(job.inputs, &outs).ok()) return m.shadow_outcome(RolloutModel::kFailed);
  auto diff = compare_outputs(job.answer, outs);
  if (!diff.ok()) return m.shadow_outcome(RolloutModel::kMismatched);
  m.shadow_outcome(RolloutModel::kCompared);
  m.shadow_compared(diff.value().max_abs, diff.value().rows, diff.value().agree);
}

}  // namespace mserve::server
