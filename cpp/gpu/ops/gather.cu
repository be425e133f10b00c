#include "gpu/ops/gather.h"

#include <cuda_runtime.h>

namespace mserve::gpu {
namespace {

constexpr int kThreads = 256;

template <class W, class Idx, class I>
__global__ void gather_kernel(GatherGeo g, const W* __restrict__ data, const Idx* __restrict__ indices,
                              W* __restrict__ out, I n, int* flag, int error_code) {
  const I stride = static_cast<I>(gridDim.x) * blockDim.x;
  for (I t = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; t < n; t += stride) {
    const int64_t src = gather_source<I>(g, t, static_cast<int64_t>(indices[gather_slot<I>(g, t)]));
    if (src >= 0) {
      out[t] = data[src];
    } else {
      out[t] = W{};
      atomicCAS(flag, 0, error_code);  // the first error wins
    }
  }
}

// An empty output still has its indices checked, as the CPU kernel does.
template <class Idx>
__global__ void gather_check_kernel(const Idx* __restrict__ indices, int64_t nidx, int64_t size, int* flag,
                                    int error_code) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; j < nidx; j += stride)
    if (gather_index(static_cast<int64_t>(indices[j]), size) < 0) atomicCAS(flag, 0, error_code);
}

template <class W, class Idx>
int gather(const GatherGeo& g, const void* data, const void* indices, void* out, int* flag, int error_code,
           cudaStream_t stream) {
  const int64_t n = g.outer * g.nidx * g.inner;
  if (n <= 0) {
    if (g.nidx <= 0) return cudaSuccess;
    const int64_t blocks = (g.nidx + kThreads - 1) / kThreads;
    gather_check_kernel<Idx><<<static_cast<unsigned>(blocks < 65536 ? blocks : 65536), kThreads, 0, stream>>>(
        static_cast<const Idx*>(indices), g.nidx, g.size, flag, error_code);
    return static_cast<int>(cudaGetLastError());
  }
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  const unsigned grid = static_cast<unsigned>(blocks < 65536 ? blocks : 65536);
  const W* d = static_cast<const W*>(data);
  const Idx* ix = static_cast<const Idx*>(indices);
  W* o = static_cast<W*>(out);
  if (n < (int64_t{1} << 31))
    gather_kernel<W, Idx, uint32_t>
        <<<grid, kThreads, 0, stream>>>(g, d, ix, o, static_cast<uint32_t>(n), flag, error_code);
  else
    gather_kernel<W, Idx, int64_t><<<grid, kThreads, 0, stream>>>(g, d, ix, o, n, flag, error_code);
  return static_cast<int>(cudaGetLastError());
}

template <class Idx>
int gather_words(const GatherGeo& g, int word, const void* data, const void* indices, void* out, int* flag,
                 int error_code, cudaStream_t stream) {
  switch (word) {
    case 1: return gather<uint8_t, Idx>(g, data, indices, out, flag, error_code, stream);
    case 2: return gather<uint16_t, Idx>(g, data, indices, out, flag, error_code, stream);
    case 4: return gather<uint32_t, Idx>(g, data, indices, out, flag, error_code, stream);
    case 8: return gather<uint64_t, Idx>(g, data, indices, out, flag, error_code, stream);
    case 16: return gather<uint4, Idx>(g, data, indices, out, flag, error_code, stream);
    default: return static_cast<int>(cudaErrorInvalidValue);
  }
}

}  // namespace

int launch_gather(const GatherGeo& g, int word, const void* data, const void* indices, int index_bytes, void* out,
                  int* flag, int error_code, void* stream) {
  const auto s = static_cast<cudaStream_t>(stream);
  if (index_bytes == 8) return gather_words<int64_t>(g, word, data, indices, out, flag, error_code, s);
  if (index_bytes == 4) return gather_words<int32_t>(g, word, data, indices, out, flag, error_code, s);
  return static_cast<int>(cudaErrorInvalidValue);
}

}  // namespace mserve::gpu
