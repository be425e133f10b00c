// ReduceSum, ReduceMean, ReduceMax and ReduceMin on the GPU (float32): the outputs of
// rows_math.h. Callable from host code compiled by g++ (no CUDA headers here).
#pragma once
#include "gpu/ops/rows_math.h"

namespace mserve::gpu {

// y[o] for every output o of `plan` over x, on `stream` (a cudaStream_t). Device pointers.
// Returns the launch's cudaError_t as an int (0: queued).
int launch_reduce(rows::ReduceKind kind, const float* x, float* y, const rows::ReducePlan& plan, void* stream);

}  // namespace mserve::gpu
