#include "gpu/cuda_status.h"

#include <cuda_runtime.h>

#include <string>

namespace mserve::gpu {

Status cuda_status(int cuda_error, const char* what) {
  const auto e = static_cast<cudaError_t>(cuda_error);
  if (e == cudaSuccess) return Status::OK();
  std::string msg = std::string(what) + ": " + cudaGetErrorName(e) + ": " + cudaGetErrorString(e);
  if (e == cudaErrorMemoryAllocation) return InvalidArgument("out of GPU memory: " + msg);
  return Internal(msg);
}

}  // namespace mserve::gpu
