// The base of every CUDA kernel. Shapes come from the CPU's kernel for the same node (one source
// of truth for shape inference); a family adds what the GPU needs at plan time (accept: the
// dtypes and shapes it runs, its device workspace) and the launch (compute, on the run's stream).
//
// A family is three files: <family>.cc (this class's subclasses, host code, g++),
// <family>.cu (the __global__ kernels and their launch functions, nvcc) and, where the
// arithmetic is more than a line, <family>_math.h: __host__ __device__ code (MS_HD) that both
// compilers build, so tests/cpp/gpu compares it with the CPU kernels on machines without a GPU.
#pragma once
#include <utility>

#include "core/kernels/kernel.h"
#include "gpu/context.h"

namespace mserve::gpu {

class GpuKernel : public Kernel {
 public:
  explicit GpuKernel(KernelPtr cpu) : cpu_(std::move(cpu)) {}
  DeviceType device() const final { return DeviceType::kCuda; }
  Status infer(InferContext& ctx) const final {
    MS_RETURN_IF_ERROR(cpu_->infer(ctx));
    ctx.set_workspace(0);                     // the CPU's scratch is not the GPU's
    if (ctx.deferred()) return Status::OK();  // the planner keeps the node on the CPU
    return accept(ctx);
  }
  bool output_is_input_view() const override { return cpu_->output_is_input_view(); }

 protected:
  // Plan time: InferContext::refuse for dtypes or shapes this kernel does not run; the device
  // workspace it needs (set_workspace). Outputs are already inferred.
  virtual Status accept(InferContext& ctx) const = 0;
  const Kernel& cpu() const { return *cpu_; }

 private:
  KernelPtr cpu_;
};

// Refuses unless every present input and output of the node is float32.
Status accept_float32(const InferContext& ctx);

}  // namespace mserve::gpu
