// Shared by the binding files of both extension modules, _core (the runtime) and _server (the
// server): the one Status -> Python exception mapping, text, devices (common.cc), and, in _core,
// dtype mapping (module.cc).
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <memory>

#include "core/device/device.h"
#include "core/status.h"
#include "core/tensor/dtype.h"

namespace mserve::py_bind {

namespace py = pybind11;

// Raises the mserve.errors exception for `st` (InvalidArgument, ModelLoadError,
// UnsupportedOperator, or Error for internal failures). No-op when ok.
void raise_if_error(const Status& st);

// Model-supplied text (names, messages quoting them) may be any bytes: invalid UTF-8 is
// replaced, never raised.
py::str utf8(const std::string& s);

// numpy dtype -> DType; kUndefined when mserve has no such element type. Object, unicode ('U')
// and bytes ('S') arrays map to kString (their elements are copied in); kString maps to object.
DType from_numpy(const py::dtype& dt);
py::dtype to_numpy(DType t);

// The device a model runs on besides the CPU, from Python: None or "cpu" (the CPU only), "mock"
// (device/mock.h), or the capsule a backend module hands over (mserve._core_cuda.backend()),
// checked against this module's kBackendAbi. TypeError / ValueError otherwise.
std::shared_ptr<const Backend> backend_of(const py::object& device);

void bind_session(py::module_& m);  // _core
void bind_server(py::module_& m);   // _server

}  // namespace mserve::py_bind
