// Concat, Split and Pad on the GPU (Slice, Expand and Tile use transpose.h's strided copy).
// Callable from host code compiled by g++ (no CUDA headers here).
#pragma once
#include <cstdint>

#include "gpu/ops/concat_slice_math.h"

namespace mserve::gpu {

// The block `p` (in words of `word` bytes: 1, 2, 4, 8 or 16, see pitched_words) from src to
// dst. On `stream`; returns the cudaError_t as an int.
int launch_pitched_copy(const Pitched& p, int word, const void* src, void* dst, void* stream);

// dst element i = src element pad_source(m, i), or the `esize`-byte value at `value` (host
// memory, read before the launch) where that is -1. esize 1, 2, 4 or 8.
int launch_pad(const PadMap& m, int esize, const void* src, void* dst, const void* value, void* stream);

}  // namespace mserve::gpu
