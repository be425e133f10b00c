// Devices: where a tensor's bytes live and where a kernel runs.
//
// The runtime knows devices only through this interface (no CUDA headers here). A Backend is a
// second kernel table beside the CPU one, keyed by the same op names, plus the memory and
// stream operations the executor needs to move values between the host and the device. The CUDA
// backend (cpp/gpu) is one; MockBackend (device/mock.h) is another that keeps the device's
// bytes in host memory, so placement, copies, the device arena and fallback are tested
// everywhere.
//
// Contract for backends built as a separate module (the CUDA backend is the extension module
// mserve._core_cuda): the module is compiled from the same runtime headers as the module that
// runs it and hands over a BackendHandle whose `abi` must equal kBackendAbi; only the virtual
// functions below and the plain types they take (Tensor, Node, Status, Shape) cross the
// boundary.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "core/kernels/kernel.h"

namespace mserve {

// Per-run device state: one stream, the libraries' handles and a fixed device arena. A
// context is used by one run at a time; concurrent runs use separate contexts (and streams).
class DeviceContext {
 public:
  virtual ~DeviceContext() = default;
  // The device's stream as the device's kernels see it (cudaStream_t for CUDA); opaque here.
  virtual void* stream() const = 0;
  // Stream-ordered copies. copy_to_device may return before the copy ran (the source is host
  // memory that stays valid until synchronize()); copy_to_host likewise: read `host` only after
  // synchronize().
  virtual Status copy_to_device(const void* host, void* device, size_t bytes) = 0;
  virtual Status copy_to_host(const void* device, void* host, size_t bytes) = 0;
  // Waits for everything queued on the stream; reports the first asynchronous error.
  virtual Status synchronize() = 0;
  // The context's device arena, at least `bytes` long. Its address changes only when it grows
  // (a plan keeps its contexts, so once per context in practice).
  virtual StatusOr<void*> arena(size_t bytes) = 0;

  // Graphs (CUDA Graphs): a plan whose every step runs on the device is recorded once and
  // replayed with one launch. A context serves one plan, so it keeps at most one graph, bound to
  // the context's fixed addresses (arena, staging) and dropped with it.
  virtual bool can_capture() const { return false; }
  // Records what `enqueue` queues on the stream as the context's graph. *ran says whether that
  // work also ran (a device that executes while recording); otherwise replay() runs it. On an
  // error nothing is kept.
  virtual Status capture(std::function<Status()> enqueue, bool* ran) {
    return Unsupported("this device does not record graphs");
  }
  virtual Status replay() { return Unsupported("this device does not record graphs"); }
  // Host memory the device copies from and to at fixed addresses (page-locked for CUDA), at
  // least `bytes` long: where a graph's inputs are staged and its outputs land.
  virtual StatusOr<void*> staging(size_t bytes) { return Unsupported("this device has no staging memory"); }
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual DeviceType device() const = 0;
  // The device's name as users write it ("cuda", "mock").
  virtual std::string name() const = 0;
  // The device kernel for `node`, created once per node at load time (after load-time folding):
  // nullptr when the device has none for this op, or an Unsupported error whose message says
  // why (the node then runs on the CPU and Session::placement() reports the reason). A device
  // kernel may also refuse particular shapes or dtypes at plan time (InferContext::refuse).
  virtual StatusOr<KernelPtr> create_kernel(const Node& node, const KernelInit& init) const = 0;
  // Device memory released with the last reference to the buffer (weights, plan constants).
  virtual std::shared_ptr<Buffer> allocate(size_t bytes) const = 0;
  // Synchronous copies between host and device memory: constants uploaded at plan time, device
  // tensors handed to users read back on request.
  virtual Status upload(const void* host, void* device, size_t bytes) const = 0;
  virtual Status download(const void* device, void* host, size_t bytes) const = 0;
  // Waits until the work queued on another library's stream (a handle of this device's kind, as
  // __cuda_array_interface__ gives it) is done, so memory it produced may be read.
  virtual Status wait_for(uintptr_t stream) const { return Unsupported(name() + " has no streams to wait for"); }
  virtual StatusOr<std::unique_ptr<DeviceContext>> new_context() const = 0;

  // The device's memory for monitoring: bytes in use and in all (total 0: no fixed size);
  // nullopt where the device cannot say.
  struct Memory {
    size_t used = 0, total = 0;
  };
  virtual std::optional<Memory> memory() const { return std::nullopt; }
};

// Bumped whenever a type that crosses the module boundary changes; the sizes catch a forgotten
// bump.
constexpr uint64_t kBackendAbi = (uint64_t{1} << 48) ^ (uint64_t{sizeof(Tensor)} << 32) ^
                                 (uint64_t{sizeof(Node)} << 16) ^ (uint64_t{sizeof(InferContext)} << 8) ^
                                 uint64_t { sizeof(ComputeContext) };

// What a backend module hands to the runtime (in a PyCapsule named "mserve.Backend").
struct BackendHandle {
  uint64_t abi = kBackendAbi;
  std::shared_ptr<const Backend> backend;
};

}  // namespace mserve
