// Transpose on the GPU, every dtype of 1, 2, 4 or 8 bytes and every rank a Shape holds. The
// permutation is simplified first (size-1 dims dropped, dims that stay neighbours merged): what
// keeps its order is a plain copy, a (batched) swap of two axes runs in shared-memory tiles, the
// rest as a strided copy (whole contiguous runs moving as wide words where they are aligned).
#include "gpu/ops/transpose.h"

#include <cstdint>
#include <string>
#include <vector>

#include "gpu/cuda_status.h"
#include "gpu/ops/families.h"
#include "gpu/ops/gpu_kernel.h"
#include "gpu/ops/views.h"

namespace mserve::gpu {
namespace {

class TransposeKernel final : public GpuKernel {
 public:
  TransposeKernel(KernelPtr cpu, std::vector<int64_t> perm) : GpuKernel(std::move(cpu)), perm_(std::move(perm)) {}

  Status compute(const ComputeContext& ctx) const override {
    const Tensor& in = ctx.input(0);
    Tensor& out = ctx.output(0);
    if (in.numel() == 0) return Status::OK();
    const int r = in.rank();
    int perm[Shape::kMaxRank];
    for (int i = 0; i < r; ++i) perm[i] = perm_.empty() ? r - 1 - i : static_cast<int>(perm_[i]);
    const TransposePlan p = plan_transpose(r, in.shape().begin(), perm);
    const int esize = static_cast<int>(dtype_size(in.dtype()));
    void* stream = cuda_context(ctx).stream();
    switch (p.kind) {
      case TransposePlan::kCopy:
        return cuda_status(copy_device_bytes(out.raw(), in.raw(), in.nbytes(), stream), "Transpose copy");
      case TransposePlan::kTiles:
        return cuda_status(launch_transpose_tiles(p.B, p.R, p.C, esize, in.raw(), out.raw(), stream),
                           "Transpose tiles kernel");
      case TransposePlan::kStrided: break;
    }
    StridedMap m = p.map;
    const int word = widen(m, esize, reinterpret_cast<uintptr_t>(in.raw()), reinterpret_cast<uintptr_t>(out.raw()));
    return cuda_status(launch_strided_copy(m, word, in.raw(), out.raw(), stream), "Transpose kernel");
  }

 protected:
  Status accept(InferContext& ctx) const override { return accept_movable(ctx); }

 private:
  std::vector<int64_t> perm_;  // empty: reverse the dims
};

}  // namespace

StatusOr<KernelPtr> create_gpu_transpose(const Node& node, const KernelInit&, KernelPtr cpu, const GpuOptions&) {
  return KernelPtr(new TransposeKernel(std::move(cpu), node.attr_ints("perm")));
}

}  // namespace mserve::gpu
