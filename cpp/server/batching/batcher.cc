#include "server/batching/batcher.h"

#include <algorithm>
#include <cstring>

namespace mserve::server {
namespace {

Shape with_first(Shape s, int64_t first) {
  s[0] = first;
  return s;
}

// Rows [begin, begin + n) of `t` along dim 0, sharing its buffer.
Tensor slice_rows(const Tensor& t, int64_t begin, int64_t n) {
  const size_t row_bytes = t.dim(0) ? t.nbytes() / static_cast<size_t>(t.dim(0)) : 0;
  return Tensor(t.dtype(), with_first(t.shape(), n), t.buffer(), static_cast<char*>(t.raw()) + begin * row_bytes);
}

// Copies `src` into the leading corner of `dst` (same rank, every dim of dst >= src's) starting
// at row `row0` of dst; the rest of dst is left as is (zeroed by the caller when padding).
void copy_block(const Tensor& src, const Tensor& dst, int64_t row0) {
  const size_t es = dtype_size(src.dtype());
  const int rank = src.rank();
  if (src.shape() == with_first(dst.shape(), src.dim(0))) {  // same trailing dims: one copy
    const size_t row_bytes = src.numel() ? src.nbytes() / static_cast<size_t>(src.dim(0)) : 0;
    std::memcpy(static_cast<char*>(dst.raw()) + row0 * row_bytes, src.raw(), src.nbytes());
    return;
  }
  // Padded copy: walk every innermost row of src.
  int64_t dst_stride[Shape::kMaxRank], src_stride[Shape::kMaxRank];
  dst_stride[rank - 1] = src_stride[rank - 1] = 1;
  for (int i = rank - 2; i >= 0; --i) {
    dst_stride[i] = dst_stride[i + 1] * dst.dim(i + 1);
    src_stride[i] = src_stride[i + 1] * src.dim(i + 1);
  }
  const int64_t inner = src.dim(rank - 1);
  const int64_t rows = inner ? src.numel() / inner : 0;
  for (int64_t r = 0; r < rows; ++r) {
    int64_t rem = r * inner, s_off = 0, d_off = row0 * dst_stride[0];
    for (int i = 0; i < rank - 1; ++i) {
      const int64_t idx = rem / src_stride[i];
      rem %= src_stride[i];
      s_off += idx * src_stride[i];
      d_off += idx * dst_stride[i];
    }
    std::memcpy(static_cast<char*>(dst.raw()) + d_off * es, static_cast<const char*>(src.raw()) + s_off * es,
                inner * es);
  }
}

}  // namespace

Batcher::Batcher(std::shared_ptr<Session> session, const BatchingOptions& opts, std::function<void(size_t)> on_batch,
                 std::function<void(const std::vector<Tensor>&)> on_outputs)
    : session_(std::move(session)), opts_(opts), on_batch_(std::move(on_batch)), on_outputs_(std::move(on_outputs)) {
  int n = static_cast<int>(opts_.num_batch_threads);
  if (n <= 0) n = std::max(1u, std::thread::hardware_concurrency());
  for (int i = 0; i < n; ++i) threads_.emplace_back([this] { worker(); });
}

Batcher::~Batcher() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

size_t Batcher::queued_rows() const {
  std::lock_guard<std::mutex> lk(mu_);
  return static_cast<size_t>(queued_rows_);
}

Status Batcher::submit(std::vector<Tensor> inputs, Clock::time_point deadline, RunDone done) {
  if (inputs.empty()) return InvalidArgument("batching needs at least one input");
  int64_t rows = -1;
  for (const Tensor& t : inputs) {
    if (t.rank() == 0) return InvalidArgument("batching: input " + t.desc() + " has no batch dimension");
    if (rows >= 0 && t.dim(0) != rows)
      return InvalidArgument("batching: inputs disagree on the batch size (dim 0): " + std::to_string(rows) + " vs " +
                             std::to_string(t.dim(0)));
    rows = t.dim(0);
  }
  if (rows > opts_.max_batch_size)
    return InvalidArgument("batch size " + std::to_string(rows) + " is larger than max_batch_size " +
                           std::to_string(opts_.max_batch_size));
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (stopping_) return Unavailable("the model is unloading");
    if (queued_rows_ + rows > opts_.max_enqueued_batches * opts_.max_batch_size)
      return Unavailable("the batching queue is full (" + std::to_string(queued_rows_) + " rows queued); retry later");
    queue_.push_back(Task{std::move(inputs), rows, Clock::now(), deadline, std::move(done)});
    queued_rows_ += rows;
  }
  cv_.notify_one();
  return Status::OK();
}

bool Batcher::compatible(const Task& a, const Task& b) const {
  if (a.inputs.size() != b.inputs.size()) return false;
  for (size_t i = 0; i < a.inputs.size(); ++i) {
    const Tensor &x = a.inputs[i], &y = b.inputs[i];
    if (x.dtype() != y.dtype() || x.rank() != y.rank()) return false;
    if (x.dtype() == DType::kString) return false;  // string requests run alone (never memcpy'd)
    if (opts_.pad_variable_length_inputs) continue;
    for (int d = 1; d < x.rank(); ++d)
      if (x.dim(d) != y.dim(d)) return false;
  }
  return true;
}

void Batcher::worker() {
  const auto timeout = std::chrono::microseconds(opts_.batch_timeout_micros);
  std::unique_lock<std::mutex> lk(mu_);
  for (;;) {
    cv_.wait(lk, [&] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping with nothing left
    // Wait for the batch to fill or the first task's timeout, whichever comes first.
    const auto close_at = queue_.front().enqueued + timeout;
    while (!stopping_ && queued_rows_ < opts_.max_batch_size && Clock::now() < close_at) {
      if (cv_.wait_until(lk, close_at) == std::cv_status::timeout) break;
      if (queue_.empty()) break;
    }
    if (queue_.empty()) continue;  // another worker took it
    std::vector<Task> batch;
    int64_t rows = 0;
    batch.push_back(std::move(queue_.front()));
    queue_.pop_front();
    rows = batch[0].rows;
    for (auto it = queue_.begin(); it != queue_.end() && rows < opts_.max_batch_size;) {
      if (rows + it->rows <= opts_.max_batch_size && compatible(batch[0], *it)) {
        rows += it->rows;
        batch.push_back(std::move(*it));
        it = queue_.erase(it);
      } else {
        ++it;
      }
    }
    queued_rows_ -= rows;
    lk.unlock();
    if (!queue_.empty()) cv_.notify_one();
    run_batch(batch);
    lk.lock();
  }
}

void Batcher::run_batch(std::vector<Task>& tasks) {
  const auto now = Clock::now();
  std::vector<Task> live;
  for (Task& t : tasks) {
    if (t.deadline < now)
      t.done(DeadlineExceeded("the request timed out while queued for batching"), {});
    else
      live.push_back(std::move(t));
  }
  if (live.empty()) return;
  int64_t rows = 0;
  for (const Task& t : live) rows += t.rows;
  int64_t padded = rows;
  bool strings = false;
  for (const Tensor& t : live[0].inputs) strings = strings || t.dtype() == DType::kString;
  for (int64_t a : opts_.allowed_batch_sizes)
    if (a >= rows && !strings) {
      padded = a;
      break;
    }
  if (on_batch_) on_batch_(static_cast<size_t>(rows));

  std::vector<Tensor> inputs, outputs;
  Status st;
  if (live.size() == 1 && padded == rows) {
    inputs = std::move(live[0].inputs);
  } else {
    const size_t n_in = live[0].inputs.size();
    for (size_t i = 0; i < n_in && st.ok(); ++i) {
      Shape shape = live[0].inputs[i].shape();
      for (const Task& t : live)
        for (int d = 1; d < shape.rank(); ++d) shape[d] = std::max(shape[d], t.inputs[i].dim(d));
      shape[0] = padded;
      auto merged = Tensor::empty(live[0].inputs[i].dtype(), shape);
      if (!merged.ok()) {
        st = merged.status();
        break;
      }
      Tensor m = std::move(merged).value();
      bool exact = padded == rows;
      for (const Task& t : live)
        if (!(t.inputs[i].shape() == with_first(shape, t.rows))) exact = false;
      if (!exact) std::memset(m.raw(), 0, m.nbytes());
      int64_t row = 0;
      for (const Task& t : live) {
        copy_block(t.inputs[i], m, row);
        row += t.rows;
      }
      inputs.push_back(std::move(m));
    }
  }
  if (st.ok()) st = session_->run(inputs, &outputs);
  if (st.ok() && live.size() > 1) {
    for (const Tensor& o : outputs)
      if (o.rank() == 0 || o.dim(0) != padded) {
        st = InvalidArgument("batching: output " + o.desc() + " does not keep the batch dimension (" +
                             std::to_string(padded) + "); serve this model without batching");
        break;
      }
  }
  if (!st.ok()) {
    for (Task& t : live) t.done(st, {});
    return;
  }
  if (padded != rows)
    for (Tensor& o : outputs)
      if (o.rank() > 0 && o.dim(0) == padded) o = slice_rows(o, 0, rows);
  if (on_outputs_) on_outputs_(outputs);
  if (live.size() == 1) {
    live[0].done(Status::OK(), std::move(outputs));
    return;
  }
  int64_t row = 0;
  for (Task& t : live) {
    std::vector<Tensor> mine;
    mine.reserve(outputs.size());
    for (const Tensor& o : outputs) mine.push_back(slice_rows(o, row, t.rows));
    row += t.rows;
    t.done(Status::OK(), std::move(mine));
  }
}

}  // namespace mserve::server
