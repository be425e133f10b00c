// Activations on the GPU: the table's expressions (kernels/activation_table.h) applied element by
// element. Callable from host code compiled by g++ (no CUDA headers here).
#pragma once
#include <cstdint>

#include "core/kernels/fused_activation.h"

namespace mserve::gpu {

// y[i] = a(x[i]) for i < n on `stream` (a cudaStream_t; null: the legacy default stream). x and y
// are device pointers and may be equal. Returns the launch's cudaError_t as an int (0: queued).
int launch_activation(const FusedActivation& a, const float* x, float* y, int64_t n, void* stream);

}  // namespace mserve::gpu
