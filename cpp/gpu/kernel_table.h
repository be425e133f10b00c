// The GPU kernel table: the ops the CUDA backend runs, keyed by the same (domain, op) names as
// the CPU table, each created by its family's factory (ops/op_list.inc).
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "core/kernels/kernel.h"
#include "gpu/options.h"

namespace mserve::gpu {

// The CUDA kernel for `node`; null when the table has no row for its op. A family may answer
// Unsupported for attributes it does not run (the node then stays on the CPU, with the reason).
StatusOr<KernelPtr> create_gpu_kernel(const Node& node, const KernelInit& init, const GpuOptions& opts = {});

// Every (domain, op) in the table, in table order.
std::vector<std::pair<std::string, std::string>> gpu_ops();

}  // namespace mserve::gpu
