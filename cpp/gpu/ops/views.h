// Reshape, Flatten, Squeeze, Unsqueeze and Identity on the GPU: output 0 holds input 0's bytes,
// so the planner usually gives both the same memory and nothing runs; otherwise one
// device-to-device copy on the run's stream. Also what the other data-movement families
// (transpose, gather, concat_slice) share: the dtypes they move and a plain device copy.
#pragma once
#include <cstddef>

#include "core/kernels/kernel.h"

namespace mserve::gpu {

// Copies `bytes` from src to dst (device pointers) on `stream` unless they are equal or bytes is
// 0. Returns the cudaError_t as an int.
int copy_device_bytes(void* dst, const void* src, size_t bytes, void* stream);

// The movement kernels copy elements as 1, 2, 4 or 8-byte words, whatever the dtype: refuses
// strings (std::string objects never live in device memory) and anything else, for input
// `input` and output 0.
Status accept_movable(const InferContext& ctx, int input = 0);

}  // namespace mserve::gpu
