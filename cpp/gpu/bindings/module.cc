// mserve._core_cuda: the CUDA backend's extension module, imported by mserve/cuda.py on the first
// device="cuda" (never by `import mserve`). It links the CUDA runtime statically; the driver
// (libcuda) is opened by it at the first CUDA call, so importing needs no GPU.
#include <cuda_runtime.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <stdexcept>
#include <string>

#include "core/device/device.h"
#include "gpu/context.h"
#include "gpu/kernel_table.h"
#include "gpu/ops/activation.h"

namespace py = pybind11;

namespace {

std::string error_text(cudaError_t e) { return std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e); }

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + error_text(e));
}

// Device memory for the length of one call.
class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t bytes) { check(cudaMalloc(&p_, bytes ? bytes : 1), "cudaMalloc"); }
  ~DeviceBuffer() { cudaFree(p_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  float* get() const { return static_cast<float*>(p_); }

 private:
  void* p_ = nullptr;
};

// (number of devices, "") or (0, the CUDA error) when none can be used. cudaGetDeviceCount does
// not write the count when it fails (no driver, no device), so the return code decides.
py::tuple device_count() {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) return py::make_tuple(0, error_text(e));
  return py::make_tuple(n, std::string());
}

// The activation `name` (an activation_table.h row) of a float32 array, computed on device 0:
// copied in, one kernel, copied out. For the device checks against the CPU kernels.
py::array_t<float> activation(const std::string& name, py::array_t<float, py::array::c_style | py::array::forcecast> x,
                              py::object alpha, py::object beta) {
  mserve::FusedActivation act = mserve::FusedActivation::named(name);
  if (act.kind == mserve::FusedActivation::Kind::kNone) throw py::value_error("no activation named '" + name + "'");
  if (!alpha.is_none()) act.alpha = alpha.cast<float>();
  if (!beta.is_none()) act.beta = beta.cast<float>();
  const int64_t n = x.size();
  py::array_t<float> y(x.request().shape);
  const size_t bytes = static_cast<size_t>(n) * sizeof(float);
  const float* in = x.data();
  float* out = y.mutable_data();
  {
    py::gil_scoped_release unlocked;
    DeviceBuffer d(bytes);
    check(cudaMemcpy(d.get(), in, bytes, cudaMemcpyHostToDevice), "copy to the device");
    check(static_cast<cudaError_t>(mserve::gpu::launch_activation(act, d.get(), d.get(), n, nullptr)), "kernel");
    check(cudaMemcpy(out, d.get(), bytes, cudaMemcpyDeviceToHost), "copy from the device");
  }
  return y;
}

// The backend, as the runtime (mserve._core) takes it: a capsule "mserve.Backend" holding a
// BackendHandle (device/device.h), whose abi the runtime checks.
py::capsule backend(const std::string& precision, bool fused_attention) {
  mserve::gpu::GpuOptions opts;
  if (!mserve::gpu::parse_precision(precision, &opts.precision))
    throw py::value_error("precision '" + precision + "': use fp32, tf32, fp16 or bf16");
  opts.fused_attention = fused_attention;
  auto* handle = new mserve::BackendHandle{mserve::kBackendAbi, std::make_shared<mserve::gpu::CudaBackend>(opts)};
  return py::capsule(handle, "mserve.Backend", [](PyObject* cap) {
    delete static_cast<mserve::BackendHandle*>(PyCapsule_GetPointer(cap, "mserve.Backend"));
  });
}

}  // namespace

PYBIND11_MODULE(_core_cuda, m) {
  m.doc() = "mserve's CUDA backend (loaded by mserve.cuda on first use)";
  m.def("device_count", &device_count);
  m.def("backend", &backend, py::arg("precision") = "fp32", py::arg("fused_attention") = true,
        "The CUDA backend for mserve._core's Session.load_* (device=...); precision: fp32 (exact), tf32 (TF32 "
        "tensor cores for float32 products and convolutions), fp16 / bf16 (their weights in 16 bits, fp32 "
        "accumulation); fused_attention: MultiHeadAttention's one-kernel path where it fits "
        "(False: two cuBLASLt products).");
  m.def(
      "ops",
      [] {
        py::list rows;
        for (const auto& [domain, op] : mserve::gpu::gpu_ops()) rows.append(py::make_tuple(domain, op));
        return rows;
      },
      "(domain, op) of every op with a CUDA kernel.");
  m.def("activation", &activation, py::arg("name"), py::arg("x"), py::arg("alpha") = py::none(),
        py::arg("beta") = py::none());
}
