// One factory per kernel family (ops/<family>.cc), named by op_list.inc's third column.
#pragma once
#include "core/kernels/kernel.h"
#include "gpu/options.h"

namespace mserve::gpu {

// Creates the CUDA kernel for `node` around the CPU's kernel `cpu` (which infers its shapes), as
// the backend's options say; Unsupported for attributes the family does not run.
using GpuFactory = StatusOr<KernelPtr> (*)(const Node& node, const KernelInit& init, KernelPtr cpu,
                                           const GpuOptions& opts);

#define MS_GPU_OP(DOMAIN, NAME, FAMILY)                                                            \
  StatusOr<KernelPtr> create_gpu_##FAMILY(const Node& node, const KernelInit& init, KernelPtr cpu, \
                                          const GpuOptions& opts);
#include "gpu/ops/op_list.inc"
#undef MS_GPU_OP

}  // namespace mserve::gpu
