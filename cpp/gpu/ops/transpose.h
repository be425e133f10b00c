// Transpose on the GPU, and the strided copy that Slice, Expand and Tile share with it
// (ops/concat_slice.cc). Callable from host code compiled by g++ (no CUDA headers here).
#pragma once
#include <cstdint>

#include "gpu/ops/transpose_math.h"

namespace mserve::gpu {

// dst word i = src word strided_source(map, i) for i < map.numel(), words of `word` bytes
// (1, 2, 4, 8 or 16; src, dst and the map aligned to it, see widen). On `stream` (a
// cudaStream_t); returns the launch's cudaError_t as an int (0: queued).
int launch_strided_copy(const StridedMap& map, int word, const void* src, void* dst, void* stream);

// out [B, C, R] = in [B, R, C] transposed, elements of `esize` bytes (1, 2, 4 or 8), in 32x32
// tiles through shared memory so that both the reads and the writes are coalesced.
int launch_transpose_tiles(int64_t B, int64_t R, int64_t C, int esize, const void* src, void* dst, void* stream);

}  // namespace mserve::gpu
