#include "core/device/mock.h"

#include <cstring>
#include <vector>

#include "core/kernels/registry.h"

namespace mserve {

namespace {

// Host memory counted as the mock device's while it is held.
std::shared_ptr<Buffer> counted(size_t bytes, const std::shared_ptr<MockBackend::Counters>& counters) {
  std::shared_ptr<Buffer> b = Buffer::allocate(bytes);
  if (!b) return nullptr;
  counters->bytes.fetch_add(static_cast<int64_t>(bytes));
  void* data = b->data();
  auto release = [b, counters, bytes](void*) { counters->bytes.fetch_sub(static_cast<int64_t>(bytes)); };
  return Buffer::borrow(data, bytes, std::shared_ptr<void>(data, release));
}

Status check_tag(const std::string& node, const Tensor& t, const char* what, int i, DeviceType want) {
  if (t.device() == want) return Status::OK();
  return Internal(node + ": " + what + " " + std::to_string(i) + " is on '" + device_name(t.device()) + "', not on " +
                  (want == DeviceType::kMock ? "the mock device" : "the host"));
}

// The CPU kernel, run on mock-device tensors.
class MockKernel : public Kernel {
 public:
  MockKernel(const Node& node, KernelPtr cpu, bool refuse, bool host_params,
             std::shared_ptr<MockBackend::Counters> counters)
      : node_(node.describe()),
        op_(node.op_type),
        cpu_(std::move(cpu)),
        refuse_(refuse),
        host_params_(host_params),
        counters_(std::move(counters)) {}
  DeviceType device() const override { return DeviceType::kMock; }
  Status infer(InferContext& ctx) const override {
    if (refuse_) return InferContext::refuse("the mock device refuses " + op_);
    return cpu_->infer(ctx);
  }
  Status compute(const ComputeContext& ctx) const override {
    if (!ctx.device()) return Internal(node_ + ": a mock kernel ran without a device context");
    for (int i = 0; i < ctx.num_inputs(); ++i)
      if (ctx.has_input(i))
        MS_RETURN_IF_ERROR(
            check_tag(node_, ctx.input(i), "input", i, host_input(i) ? DeviceType::kCpu : DeviceType::kMock));
    for (int o = 0; o < ctx.num_outputs(); ++o)
      if (ctx.has_output(o)) MS_RETURN_IF_ERROR(check_tag(node_, ctx.output(o), "output", o, DeviceType::kMock));
    counters_->kernels.fetch_add(1, std::memory_order_relaxed);
    return cpu_->compute(ctx);
  }
  bool reads_input_data() const override { return cpu_->reads_input_data(); }
  bool output_is_input_view() const override { return cpu_->output_is_input_view(); }
  bool host_input(int i) const override { return host_params_ && i > 0; }

 private:
  std::string node_, op_;
  KernelPtr cpu_;
  bool refuse_, host_params_;
  std::shared_ptr<MockBackend::Counters> counters_;
};

class MockContext : public DeviceContext {
 public:
  explicit MockContext(std::shared_ptr<MockBackend::Counters> counters) : counters_(std::move(counters)) {}
  void* stream() const override { return nullptr; }
  Status copy_to_device(const void* host, void* device, size_t bytes) override {
    counters_->to_device.fetch_add(1, std::memory_order_relaxed);
    std::memcpy(device, host, bytes);
    return Status::OK();
  }
  Status copy_to_host(const void* device, void* host, size_t bytes) override {
    counters_->to_host.fetch_add(1, std::memory_order_relaxed);
    std::memcpy(host, device, bytes);
    return Status::OK();
  }
  Status synchronize() override {
    counters_->syncs.fetch_add(1, std::memory_order_relaxed);
    return Status::OK();
  }
  bool can_capture() const override { return true; }
  Status capture(std::function<Status()> enqueue, bool* ran) override {
    graph_ = nullptr;
    MS_RETURN_IF_ERROR(enqueue());
    counters_->captures.fetch_add(1, std::memory_order_relaxed);
    graph_ = std::move(enqueue);
    *ran = true;
    return Status::OK();
  }
  Status replay() override {
    if (!graph_) return Internal("replay without a recorded graph");
    counters_->replays.fetch_add(1, std::memory_order_relaxed);
    return graph_();
  }
  StatusOr<void*> staging(size_t bytes) override {
    if (!staging_ || staging_->size() < bytes) {
      staging_ = nullptr;
      staging_ = counted(bytes, counters_);
      if (!staging_) return InvalidArgument("out of memory for " + std::to_string(bytes) + " bytes of staging");
    }
    return staging_->data();
  }
  StatusOr<void*> arena(size_t bytes) override {
    if (!arena_ || arena_->size() < bytes) {
      arena_ = nullptr;
      arena_ = counted(bytes, counters_);
      if (!arena_) return InvalidArgument("out of mock device memory: " + std::to_string(bytes) + " bytes");
    }
    return arena_->data();
  }

 private:
  std::shared_ptr<MockBackend::Counters> counters_;
  std::shared_ptr<Buffer> arena_, staging_;
  std::function<Status()> graph_;
};

}  // namespace

StatusOr<KernelPtr> MockBackend::create_kernel(const Node& node, const KernelInit& init) const {
  if (!opts_.ops.empty() && !opts_.ops.count(node.op_type)) return KernelPtr();
  MS_ASSIGN_OR_RETURN(KernelPtr cpu, mserve::create_kernel(node, init));
  if (cpu->produces_own_outputs()) return Unsupported("control flow runs on the CPU");
  return KernelPtr(new MockKernel(node, std::move(cpu), opts_.refuse.count(node.op_type) > 0,
                                  opts_.host_params.count(node.op_type) > 0, counters_));
}

std::shared_ptr<Buffer> MockBackend::allocate(size_t bytes) const { return counted(bytes, counters_); }

Status MockBackend::upload(const void* host, void* device, size_t bytes) const {
  counters_->uploads.fetch_add(1, std::memory_order_relaxed);
  std::memcpy(device, host, bytes);
  return Status::OK();
}

Status MockBackend::download(const void* device, void* host, size_t bytes) const {
  std::memcpy(host, device, bytes);
  return Status::OK();
}

StatusOr<std::unique_ptr<DeviceContext>> MockBackend::new_context() const {
  counters_->contexts.fetch_add(1, std::memory_order_relaxed);
  return std::unique_ptr<DeviceContext>(new MockContext(counters_));
}

}  // namespace mserve
