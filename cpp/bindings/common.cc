// The helpers both extension modules (_core and _server) compile in: errors, text, devices.
#include "bindings/common.h"

#include "core/device/mock.h"

namespace mserve::py_bind {

void raise_if_error(const Status& st) {
  if (st.ok()) return;
  const char* cls = "Error";
  switch (st.code()) {
    case Code::kInvalidArgument: cls = "InvalidArgument"; break;
    case Code::kLoadError: cls = "ModelLoadError"; break;
    case Code::kUnsupported: cls = "UnsupportedOperator"; break;
    case Code::kNotFound: cls = "NotFound"; break;
    case Code::kUnavailable: cls = "Unavailable"; break;
    default: break;
  }
  py::object exc = py::module_::import("mserve.errors").attr(cls);
  PyErr_SetObject(exc.ptr(), utf8(st.message()).ptr());
  throw py::error_already_set();
}

py::str utf8(const std::string& s) {
  PyObject* o = PyUnicode_DecodeUTF8(s.data(), static_cast<Py_ssize_t>(s.size()), "replace");
  if (!o) throw py::error_already_set();
  return py::reinterpret_steal<py::str>(o);
}

std::shared_ptr<const Backend> backend_of(const py::object& device) {
  if (device.is_none()) return nullptr;
  if (py::isinstance<py::str>(device)) {
    const std::string name = device.cast<std::string>();
    if (name == "cpu") return nullptr;
    if (name == "mock") return std::make_shared<MockBackend>();
    throw py::value_error("device '" + name + "' is not built into the runtime");
  }
  if (!PyCapsule_CheckExact(device.ptr()) || !PyCapsule_IsValid(device.ptr(), "mserve.Backend"))
    throw py::type_error("device must be None, 'mock' or a backend capsule");
  const auto* handle = static_cast<const BackendHandle*>(PyCapsule_GetPointer(device.ptr(), "mserve.Backend"));
  if (handle->abi != kBackendAbi)
    throw py::value_error("the device backend was built against another mserve runtime; reinstall mserve");
  return handle->backend;
}

}  // namespace mserve::py_bind
