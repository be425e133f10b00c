// The mock device: host memory that the runtime treats as a separate device, so everything
// device placement involves (placement, copy insertion, the device arena, constant uploads,
// fallback and the outputs' copy back) runs and is tested on machines without a GPU.
//
// Its kernels wrap the CPU ones and check, on every call, that each input and output carries
// the mock device's tag (a value the planner forgot to copy is an error, not a silent read of
// host memory); its copies count what moved. It records graphs as the CUDA backend does, by
// keeping the queued work and running it again on replay (it runs while recording, too). Users
// reach it as device="mock".
#pragma once
#include <atomic>
#include <memory>
#include <set>
#include <string>

#include "core/device/device.h"

namespace mserve {

struct MockDeviceOptions {
  // The ops the mock device has kernels for; empty: every op the CPU runs, except control flow.
  std::set<std::string> ops;
  // Ops whose mock kernel refuses every shape at plan time (to test InferContext::refuse).
  std::set<std::string> refuse;
  // Ops whose inputs after the first are read on the host (Kernel::host_input), as a device's
  // kernels read shapes, axes and pads: the mock kernel checks those carry the host's tag.
  std::set<std::string> host_params = {"Reshape", "Unsqueeze", "Squeeze", "Slice", "Expand",
                                       "Tile",    "Pad",       "Split",   "TopK"};
};

class MockBackend : public Backend {
 public:
  struct Counters {
    std::atomic<int64_t> to_device{0};  // copy_to_device calls
    std::atomic<int64_t> to_host{0};    // copy_to_host calls
    std::atomic<int64_t> uploads{0};    // upload calls (constants)
    std::atomic<int64_t> syncs{0};      // synchronize calls
    std::atomic<int64_t> kernels{0};    // kernel runs on the mock device
    std::atomic<int64_t> contexts{0};   // contexts created
    std::atomic<int64_t> captures{0};   // graphs recorded
    std::atomic<int64_t> replays{0};    // graphs replayed
    std::atomic<int64_t> bytes{0};      // mock device memory held now (constants, arenas, staging)
  };

  explicit MockBackend(MockDeviceOptions opts = {}) : opts_(std::move(opts)) {}
  DeviceType device() const override { return DeviceType::kMock; }
  std::string name() const override { return "mock"; }
  StatusOr<KernelPtr> create_kernel(const Node& node, const KernelInit& init) const override;
  std::shared_ptr<Buffer> allocate(size_t bytes) const override;
  Status upload(const void* host, void* device, size_t bytes) const override;
  Status download(const void* device, void* host, size_t bytes) const override;
  StatusOr<std::unique_ptr<DeviceContext>> new_context() const override;
  std::optional<Memory> memory() const override { return Memory{static_cast<size_t>(counters_->bytes.load()), 0}; }

  const Counters& counters() const { return *counters_; }

 private:
  MockDeviceOptions opts_;
  std::shared_ptr<Counters> counters_ = std::make_shared<Counters>();
};

}  // namespace mserve
