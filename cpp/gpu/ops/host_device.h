// MS_HD marks arithmetic compiled both for the GPU (nvcc) and the host (g++ in the tests).
#pragma once
#if defined(__CUDACC__)
#define MS_HD __host__ __device__ __forceinline__
#else
#define MS_HD inline
#endif
