// Gather on the GPU. Callable from host code compiled by g++ (no CUDA headers here).
#pragma once
#include <cstdint>

#include "gpu/ops/gather_math.h"

namespace mserve::gpu {

// out word t = data word gather_source(g, t, indices[gather_slot(g, t)]) for t < outer * nidx *
// inner, words of `word` bytes (1, 2, 4, 8 or 16). indices are int64 (index_bytes 8) or int32
// (4). An index out of range writes a zero word, reads nothing, and stores `error_code` into
// *flag unless it already holds an error; an empty output still has its indices checked. On `stream`; returns the
// cudaError_t as an int.
int launch_gather(const GatherGeo& g, int word, const void* data, const void* indices, int index_bytes, void* out,
                  int* flag, int error_code, void* stream);

}  // namespace mserve::gpu
