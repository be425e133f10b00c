// CUDA errors as Status. No CUDA headers: callable from code g++ compiles; the CUDA error is
// passed as its int value.
#pragma once
#include "core/status.h"

namespace mserve::gpu {

// OK for cudaSuccess (0), else an error "<what>: <cudaErrorName>: <description>": out of memory
// is InvalidArgument (the request was too big for the device), everything else Internal.
Status cuda_status(int cuda_error, const char* what);

}  // namespace mserve::gpu

#define MS_CUDA_RETURN_IF_ERROR(expr, what)                                          \
  do {                                                                               \
    ::mserve::Status _st = ::mserve::gpu::cuda_status(static_cast<int>(expr), what); \
    if (!_st.ok()) return _st;                                                       \
  } while (0)
