// Softmax on the GPU (float32): the rows of rows_math.h. Callable from host code compiled by g++
// (no CUDA headers here).
#pragma once
#include <cstdint>

namespace mserve::gpu {

// y = softmax(x) along the middle dim of x viewed as [outer, len, inner], on `stream` (a
// cudaStream_t). Device pointers. Returns the launch's cudaError_t as an int (0: queued).
int launch_softmax(const float* x, float* y, int64_t outer, int64_t len, int64_t inner, void* stream);

}  // namespace mserve::gpu
