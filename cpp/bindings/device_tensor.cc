#include "bindings/device_tensor.h"

#include <dlpack/dlpack.h>

#include <vector>

namespace mserve::py_bind {
namespace {

// A CUDA array of another library (CuPy, PyTorch, Numba: __cuda_array_interface__ v2/v3) as an
// input of `s`, viewed in place. The producer's stream, when the interface names one, is waited
// for (that stream only, never the whole device) before the run reads the memory.
DeviceTensor from_cuda_array(const py::object& array, const Session& s) {
  if (!s.backend() || s.backend()->device() != DeviceType::kCuda)
    throw py::value_error("a CUDA array given to a model on '" + s.device() + "'; load it with device='cuda'");
  py::dict cai = array.attr("__cuda_array_interface__").cast<py::dict>();
  const py::tuple shape_t = cai["shape"].cast<py::tuple>();
  const py::dtype dt = py::dtype::from_args(cai["typestr"]);
  const DType dtype = from_numpy(dt);
  if (dtype == DType::kUndefined || dtype == DType::kString)
    throw py::value_error("a CUDA array of dtype " + py::str(dt).cast<std::string>() + " is not supported");
  if (!Shape::fits(static_cast<int>(shape_t.size()))) throw py::value_error("a CUDA array of too many dimensions");
  Shape shape;
  for (const auto& d : shape_t) shape.push_back(d.cast<int64_t>());
  if (cai.contains("strides") && !cai["strides"].is_none()) {
    // C-contiguous strides are allowed spelled out; anything else must be copied by its owner.
    int64_t expect = dt.itemsize();
    const py::tuple strides = cai["strides"].cast<py::tuple>();
    for (int i = shape.rank() - 1; i >= 0; --i) {
      if (shape[i] > 1 && strides[i].cast<int64_t>() != expect)
        throw py::value_error("a CUDA array must be C-contiguous (given strides are not)");
      expect *= shape[i];
    }
  }
  const py::tuple data = cai["data"].cast<py::tuple>();
  void* ptr = reinterpret_cast<void*>(data[0].cast<uintptr_t>());
  if (cai.contains("stream") && !cai["stream"].is_none()) {
    const uintptr_t stream = cai["stream"].cast<uintptr_t>();
    Status st;
    {
      py::gil_scoped_release nogil;
      st = s.backend()->wait_for(stream);
    }
    raise_if_error(st);
  }
  return DeviceTensor{Tensor(dtype, shape, ptr, DeviceType::kCuda), s.backend(), array};
}

py::object numpy_of(const DeviceTensor& d) {
  py::array out(to_numpy(d.tensor.dtype()), std::vector<py::ssize_t>(d.tensor.shape().begin(), d.tensor.shape().end()));
  Status st;
  {
    py::gil_scoped_release nogil;
    if (d.tensor.nbytes()) st = d.backend->download(d.tensor.raw(), out.mutable_data(), d.tensor.nbytes());
  }
  raise_if_error(st);
  return std::move(out);
}

// ---- DLPack (dlpack.h, the protocol of the Python array API standard) -------------------------

// DLPack's device of a DeviceTensor: CUDA memory is the current CUDA device's (mserve runs on
// device 0); the mock device's memory is host memory, so its tensors say kDLCPU (and numpy takes
// them).
DLDevice dl_device_of(const Tensor& t) {
  return t.device() == DeviceType::kCuda ? DLDevice{kDLCUDA, 0} : DLDevice{kDLCPU, 0};
}

py::tuple dlpack_device(const DeviceTensor& d) {
  const DLDevice dev = dl_device_of(d.tensor);
  return py::make_tuple(static_cast<int>(dev.device_type), dev.device_id);
}

// kDLBool is DLPack 0.8's code for booleans (one byte each); dlpack.h 0.6 predates it.
constexpr uint8_t kDLBoolCode = 6;

bool dl_dtype_of(DType t, DLDataType* out) {
  auto set = [&](uint8_t code, int bits) {
    *out = DLDataType{code, static_cast<uint8_t>(bits), 1};
    return true;
  };
  switch (t) {
    case DType::kFloat32: return set(kDLFloat, 32);
    case DType::kFloat64: return set(kDLFloat, 64);
    case DType::kFloat16: return set(kDLFloat, 16);
    case DType::kBFloat16: return set(kDLBfloat, 16);
    case DType::kInt8: return set(kDLInt, 8);
    case DType::kInt16: return set(kDLInt, 16);
    case DType::kInt32: return set(kDLInt, 32);
    case DType::kInt64: return set(kDLInt, 64);
    case DType::kUInt8: return set(kDLUInt, 8);
    case DType::kUInt16: return set(kDLUInt, 16);
    case DType::kUInt32: return set(kDLUInt, 32);
    case DType::kUInt64: return set(kDLUInt, 64);
    case DType::kBool: return set(kDLBoolCode, 8);
    default: return false;
  }
}

DType dtype_of_dl(const DLDataType& t) {
  if (t.lanes != 1) return DType::kUndefined;
  for (int d = 0; d < kNumDTypes; ++d) {
    DLDataType dl;
    if (dl_dtype_of(static_cast<DType>(d), &dl) && dl.code == t.code && dl.bits == t.bits) return static_cast<DType>(d);
  }
  return DType::kUndefined;
}

// What a capsule handed out keeps alive: the tensor's buffer (mserve's own memory) or the
// foreign array it views, and the shape the DLTensor points at.
struct Exported {
  DLManagedTensor managed{};
  std::vector<int64_t> shape;
  std::shared_ptr<Buffer> buffer;
  PyObject* owner = nullptr;  // a reference, dropped with the GIL held
};

void delete_exported(DLManagedTensor* m) {
  auto* e = static_cast<Exported*>(m->manager_ctx);
  if (e->owner) {
    PyGILState_STATE g = PyGILState_Ensure();  // consumers may delete from any thread
    Py_DECREF(e->owner);
    PyGILState_Release(g);
  }
  delete e;
}

py::capsule to_dlpack(const DeviceTensor& d, const py::object& stream, const py::object& max_version,
                      const py::object& dl_device, const py::object& copy) {
  (void)stream;       // the tensor is complete when handed out: nothing for any stream to wait for
  (void)max_version;  // the unversioned capsule ("dltensor"), which every consumer reads
  const DLDevice dev = dl_device_of(d.tensor);
  if (!dl_device.is_none()) {
    const auto want = dl_device.cast<std::pair<int, int>>();
    if (want.first != static_cast<int>(dev.device_type) || want.second != dev.device_id)
      throw py::buffer_error("a DeviceTensor on '" + std::string(device_name(d.tensor.device())) +
                             "' is exported on its own device only");
  }
  if (!copy.is_none() && copy.cast<bool>())
    throw py::buffer_error("DeviceTensor exports without a copy; numpy() makes a host copy");
  DLDataType dt{};
  if (!dl_dtype_of(d.tensor.dtype(), &dt))
    throw py::buffer_error(std::string("DLPack has no ") + dtype_name(d.tensor.dtype()) + " tensors");
  auto* e = new Exported;
  e->shape.assign(d.tensor.shape().begin(), d.tensor.shape().end());
  e->buffer = d.tensor.buffer();
  if (d.owner.ptr() && !d.owner.is_none()) {  // null for mserve's own tensors
    e->owner = d.owner.ptr();
    Py_INCREF(e->owner);
  }
  DLTensor& t = e->managed.dl_tensor;
  t.data = const_cast<void*>(d.tensor.raw());
  t.device = dev;
  t.ndim = d.tensor.rank();
  t.dtype = dt;
  t.shape = e->shape.data();
  t.strides = nullptr;  // C-contiguous
  t.byte_offset = 0;
  e->managed.manager_ctx = e;
  e->managed.deleter = delete_exported;
  // A capsule no consumer took (still named "dltensor") frees what it holds when it goes.
  return py::capsule(&e->managed, "dltensor", [](PyObject* cap) {
    if (!PyCapsule_IsValid(cap, "dltensor")) return;  // consumed: the consumer calls the deleter
    auto* m = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(cap, "dltensor"));
    if (m && m->deleter) m->deleter(m);
  });
}

// Another library's array as an input of `s`, through DLPack, viewed in place: on a CUDA session
// a CUDA array (the producer orders its work before the legacy default stream, which the run then
// waits for); on the mock device, whose memory is host memory, a CPU array.
DeviceTensor from_dlpack(const py::object& array, const Session& s) {
  if (!s.backend()) throw py::value_error("a DLPack array given to a model on the CPU: pass numpy (numpy.from_dlpack)");
  const bool cuda = s.backend()->device() == DeviceType::kCuda;
  const int want = cuda ? kDLCUDA : kDLCPU;
  py::object cap = cuda ? array.attr("__dlpack__")(py::arg("stream") = 1) : array.attr("__dlpack__")();
  if (!PyCapsule_IsValid(cap.ptr(), "dltensor"))
    throw py::value_error("__dlpack__ did not return an unused DLPack capsule (\"dltensor\")");
  auto* m = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(cap.ptr(), "dltensor"));
  // From here the capsule is ours: renamed so its own destructor leaves it alone, and its deleter
  // called when the owner below goes (every error path included).
  PyCapsule_SetName(cap.ptr(), "used_dltensor");
  py::capsule owner(m, [](void* p) {
    auto* managed = static_cast<DLManagedTensor*>(p);
    if (managed->deleter) managed->deleter(managed);
  });
  const DLTensor& t = m->dl_tensor;
  if (t.device.device_type != want)
    throw py::value_error("a DLPack array on device type " + std::to_string(t.device.device_type) +
                          " given to a model on '" + s.device() + "'");
  const DType dtype = dtype_of_dl(t.dtype);
  if (dtype == DType::kUndefined)
    throw py::value_error("a DLPack array of type code " + std::to_string(t.dtype.code) + ", " +
                          std::to_string(t.dtype.bits) + " bits, " + std::to_string(t.dtype.lanes) +
                          " lanes is not supported");
  if (!Shape::fits(t.ndim) || t.ndim < 0) throw py::value_error("a DLPack array of too many dimensions");
  Shape shape;
  for (int i = 0; i < t.ndim; ++i) {
    if (t.shape[i] < 0) throw py::value_error("a DLPack array with a negative dimension");
    shape.push_back(t.shape[i]);
  }
  if (t.strides) {  // in elements; C-contiguous spelled out is fine, anything else is refused
    int64_t expect = 1;
    for (int i = t.ndim - 1; i >= 0; --i) {
      if (shape[i] > 1 && t.strides[i] != expect)
        throw py::value_error("a DLPack array must be C-contiguous (its strides are not)");
      expect *= shape[i];
    }
  }
  void* ptr = static_cast<char*>(t.data) + t.byte_offset;
  if (cuda) {
    Status st;
    {
      py::gil_scoped_release nogil;
      st = s.backend()->wait_for(1);
    }
    raise_if_error(st);
  }
  return DeviceTensor{Tensor(dtype, shape, ptr, s.backend()->device()), s.backend(), owner};
}

}  // namespace

void bind_device_tensor(py::module_& m) {
  py::class_<DeviceTensor>(m, "DeviceTensor")
      .def_property_readonly("shape",
                             [](const DeviceTensor& d) {
                               py::tuple t(d.tensor.rank());
                               for (int i = 0; i < d.tensor.rank(); ++i) t[i] = d.tensor.dim(i);
                               return t;
                             })
      .def_property_readonly("dtype", [](const DeviceTensor& d) { return to_numpy(d.tensor.dtype()); })
      .def_property_readonly("device",
                             [](const DeviceTensor& d) { return std::string(device_name(d.tensor.device())); })
      .def_property_readonly("nbytes", [](const DeviceTensor& d) { return d.tensor.nbytes(); })
      .def("numpy", &numpy_of, "A host copy of the tensor (numpy).")
      .def_static("from_cuda_array", &from_cuda_array, py::arg("array"), py::arg("session"),
                  "Another library's CUDA array (__cuda_array_interface__) as an input of a CUDA session, in place.")
      .def_static("from_dlpack", &from_dlpack, py::arg("array"), py::arg("session"),
                  "Another library's array exporting DLPack (__dlpack__) on the session's device, in place.")
      .def("__dlpack__", &to_dlpack, py::kw_only(), py::arg("stream") = py::none(), py::arg("max_version") = py::none(),
           py::arg("dl_device") = py::none(), py::arg("copy") = py::none(),
           "A DLPack capsule viewing the tensor (no copy).")
      .def("__dlpack_device__", &dlpack_device, "(device type, device id) as DLPack numbers them.")
      .def_property_readonly("__cuda_array_interface__",
                             [](const DeviceTensor& d) -> py::object {
                               if (d.tensor.device() != DeviceType::kCuda)
                                 throw py::attribute_error("a tensor on '" +
                                                           std::string(device_name(d.tensor.device())) +
                                                           "' has no __cuda_array_interface__");
                               py::tuple shape(d.tensor.rank());
                               for (int i = 0; i < d.tensor.rank(); ++i) shape[i] = d.tensor.dim(i);
                               py::dict cai;
                               cai["shape"] = shape;
                               cai["typestr"] = to_numpy(d.tensor.dtype()).attr("str");
                               cai["data"] = py::make_tuple(reinterpret_cast<uintptr_t>(d.tensor.raw()), false);
                               cai["strides"] = py::none();
                               cai["version"] = 3;
                               return std::move(cai);
                             })
      .def("__repr__", [](const DeviceTensor& d) {
        return "<mserve.DeviceTensor " + std::string(dtype_name(d.tensor.dtype())) + d.tensor.shape().str() + " on " +
               device_name(d.tensor.device()) + ">";
      });
}

}  // namespace mserve::py_bind
