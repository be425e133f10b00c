// mserve.DeviceTensor: a tensor on a device, as Python holds it. Its bytes stay on the device until
// numpy() copies them to the host; it can be given back to predict (of a model on the same device)
// as an input. It exports __cuda_array_interface__ (version 3, CUDA) and DLPack (__dlpack__,
// __dlpack_device__), so CuPy, PyTorch, JAX and Numba take it without a copy; it is complete when
// handed out (the run waited for the device). Other libraries' device arrays come in the same
// two ways (from_cuda_array, from_dlpack), viewed in place.
#pragma once
#include <memory>

#include "bindings/common.h"
#include "core/exec/session.h"

namespace mserve::py_bind {

struct DeviceTensor {
  Tensor tensor;
  std::shared_ptr<const Backend> backend;
  py::object owner;  // another library's array (or DLPack capsule) whose memory `tensor` views; null for mserve's own
};

// Registers _core.DeviceTensor.
void bind_device_tensor(py::module_& m);

}  // namespace mserve::py_bind
