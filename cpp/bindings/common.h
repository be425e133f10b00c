// Shared by the binding files: the one Status -> Python exception mapping, and dtype mapping.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

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

void bind_session(py::module_& m);
void bind_server(py::module_& m);

}  // namespace mserve::py_bind
