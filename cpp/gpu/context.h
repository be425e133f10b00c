// The CUDA backend: its Backend (kernel table, memory, uploads) and its per-run context.
//
// A CudaContext is what one run owns on the GPU: a non-blocking stream, the cuBLASLt and cuDNN
// handles bound to it, the cuBLASLt workspace, the plan's fixed device arena and a flag that
// kernels raise for errors found on the device (an index out of range), read after the stream
// synchronizes, and the plan's recorded graph with its page-locked staging memory. Concurrent runs use separate
// contexts, so they overlap on separate streams. Memory: cudaMalloc for arenas and constants, never managed memory.
//
// No CUDA headers here: handles are passed as void* and cast by the code that includes the
// libraries' headers.
#pragma once
#include <cstddef>
#include <memory>

#include "core/device/device.h"
#include "gpu/options.h"

namespace mserve::gpu {

// Error codes kernels write into the context's device flag (the first one wins).
enum DeviceError : int {
  kNoDeviceError = 0,
  kIndexOutOfRange = 1,  // Gather / GatherElements / embedding: an index outside [-n, n)
};

class CudaContext : public DeviceContext {
 public:
  ~CudaContext() override;
  void* stream() const override { return stream_; }
  Status copy_to_device(const void* host, void* device, size_t bytes) override;
  Status copy_to_host(const void* device, void* host, size_t bytes) override;
  // Waits for the stream; then reports (and clears) the error a kernel raised on the device.
  Status synchronize() override;
  StatusOr<void*> arena(size_t bytes) override;
  // CUDA Graphs: the stream's work recorded (thread-local capture mode, so other contexts'
  // runs on other threads go on) and instantiated; replayed with one launch.
  bool can_capture() const override { return true; }
  Status capture(std::function<Status()> enqueue, bool* ran) override;
  Status replay() override;
  // Page-locked host memory (cudaHostAlloc), so the recorded copies are true async DMA.
  StatusOr<void*> staging(size_t bytes) override;

  void* cublaslt() const { return cublaslt_; }  // cublasLtHandle_t
  void* cudnn() const { return cudnn_; }        // cudnnHandle_t, bound to stream()
  // The cuBLASLt workspace (device memory) and its size.
  void* blas_workspace() const { return blas_workspace_; }
  size_t blas_workspace_bytes() const { return kBlasWorkspace; }
  // The flag kernels write a DeviceError into (device-visible, mapped host memory).
  int* error_flag() const { return flag_device_; }

  static StatusOr<std::unique_ptr<DeviceContext>> create();
  // 32 MiB: what cuBLASLt's heuristics use on Hopper.
  static constexpr size_t kBlasWorkspace = size_t{32} << 20;

 private:
  CudaContext() = default;
  void* stream_ = nullptr;
  void* cublaslt_ = nullptr;
  void* cudnn_ = nullptr;
  void* blas_workspace_ = nullptr;
  void* arena_ = nullptr;
  size_t arena_bytes_ = 0;
  int* flag_host_ = nullptr;
  int* flag_device_ = nullptr;
  void* graph_ = nullptr;  // cudaGraphExec_t
  void* staging_ = nullptr;
  size_t staging_bytes_ = 0;
};

class CudaBackend : public Backend {
 public:
  explicit CudaBackend(GpuOptions opts = {}) : opts_(opts) {}
  const GpuOptions& options() const { return opts_; }
  DeviceType device() const override { return DeviceType::kCuda; }
  std::string name() const override { return "cuda"; }
  // The kernel of the op from the GPU kernel table (ops/op_list.inc), or null when it has none.
  StatusOr<KernelPtr> create_kernel(const Node& node, const KernelInit& init) const override;
  std::shared_ptr<Buffer> allocate(size_t bytes) const override;
  Status upload(const void* host, void* device, size_t bytes) const override;
  Status download(const void* device, void* host, size_t bytes) const override;
  // __cuda_array_interface__'s stream: 1 is the legacy default stream, 2 the per-thread one.
  Status wait_for(uintptr_t stream) const override;
  StatusOr<std::unique_ptr<DeviceContext>> new_context() const override { return CudaContext::create(); }
  // The current device's memory as the driver reports it (every process's allocations).
  std::optional<Memory> memory() const override;

 private:
  GpuOptions opts_;
};

// The CUDA context of a device kernel's run (the planner hands CUDA kernels CUDA contexts).
inline CudaContext& cuda_context(const ComputeContext& ctx) { return *static_cast<CudaContext*>(ctx.device()); }

}  // namespace mserve::gpu
