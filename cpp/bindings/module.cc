#include "bindings/common.h"
#include "core/kernels/dnnl_conv.h"
#include "core/kernels/dnnl_matmul.h"
#include "core/kernels/isa/isa.h"

#include "core/kernels/registry.h"
#include "core/onnx/opset.h"

#ifndef MSERVE_VERSION
#error "MSERVE_VERSION comes from pyproject.toml through CMakeLists.txt"
#endif

namespace mserve::py_bind {

DType from_numpy(const py::dtype& dt) {
  const char kind = dt.kind();
  const auto size = dt.itemsize();
  if (size == 1 && (kind == 'V' || kind == 'f')) {
    // ml_dtypes' narrow types (float8_e5m2 says kind 'f'), one byte per element, by name
    const std::string name = py::str(dt.attr("name")).cast<std::string>();
    for (int d = static_cast<int>(DType::kFloat8E4M3FN); d < kNumDTypes; ++d)
      if (name == dtype_name(static_cast<DType>(d))) return static_cast<DType>(d);
    return DType::kUndefined;
  }
  if (kind == 'f') {
    if (size == 4) return DType::kFloat32;
    if (size == 8) return DType::kFloat64;
    if (size == 2) return DType::kFloat16;
  } else if (kind == 'i') {
    if (size == 1) return DType::kInt8;
    if (size == 2) return DType::kInt16;
    if (size == 4) return DType::kInt32;
    if (size == 8) return DType::kInt64;
  } else if (kind == 'u') {
    if (size == 1) return DType::kUInt8;
    if (size == 2) return DType::kUInt16;
    if (size == 4) return DType::kUInt32;
    if (size == 8) return DType::kUInt64;
  } else if (kind == 'b' && size == 1) {
    return DType::kBool;
  } else if (kind == 'O' || kind == 'U' || kind == 'S') {
    return DType::kString;  // object arrays of str/bytes, fixed-width unicode or bytes
  } else if (kind == 'V' && size == 2 && py::str(dt.attr("name")).cast<std::string>() == "bfloat16") {
    return DType::kBFloat16;  // ml_dtypes.bfloat16
  }
  return DType::kUndefined;
}

py::dtype to_numpy(DType t) {
  // Made once per type: building a dtype from its name parses the string (measured at ~5% of a
  // one-node predict). Leaked on purpose, so nothing is released after the interpreter.
  static py::object* cache[kNumDTypes] = {};  // the GIL guards it
  py::object*& slot = cache[static_cast<int>(t)];
  if (!slot) {
    if (t == DType::kString) {
      slot = new py::object(py::dtype("O"));
    } else if (t == DType::kBFloat16 || dtype_is_lowbit(t)) {
      // numpy has no bfloat16, float8, float4, int4 or int2: ml_dtypes (which onnx needs) does,
      // under the names dtype_name gives them
      py::module_ ml;
      try {
        ml = py::module_::import("ml_dtypes");
      } catch (py::error_already_set&) {
        raise_if_error(
            Unsupported(std::string(dtype_name(t)) + " tensors need the ml_dtypes package (pip install ml_dtypes)"));
      }
      if (!py::hasattr(ml, dtype_name(t)))
        raise_if_error(Unsupported(std::string(dtype_name(t)) + " tensors need a newer ml_dtypes package"));
      slot = new py::object(py::dtype::from_args(ml.attr(dtype_name(t))));
    } else {
      slot = new py::object(py::dtype(dtype_name(t)));
    }
  }
  return py::reinterpret_borrow<py::dtype>(*slot);
}

}  // namespace mserve::py_bind

PYBIND11_MODULE(_core, m) {
  namespace py = pybind11;
  m.doc() = "mserve's compiled core (private: use the mserve package)";
  m.attr("__version__") = MSERVE_VERSION;
  mserve::py_bind::bind_session(m);
  m.def(
      "supported_ops",
      [] {
        py::list out;
        for (const auto& op : mserve::all_ops()) out.append(py::make_tuple(op.domain, op.name, op.since, op.family));
        return out;
      },
      "(domain, op_type, first supported opset, family) for every operator the runtime runs");
  m.attr("max_opset") = mserve::kMaxOnnxOpset;
  m.def(
      "cpu_isa", [] { return std::string(mserve::isa_name(mserve::cpu_isa())); },
      "The instruction set mserve's own vectorized kernels run with: base, avx2 or avx512");
  m.def(
      "int8_vnni", [] { return mserve::DnnlMatMul::has_vnni(); },
      "Whether the CPU has VNNI: int8 products then run as one oneDNN product as given (else over "
      "weights made unsaturating plus a list of fixes, or split in two where the fixes would be "
      "many) and int8 convolutions on their activations as given (else narrowed to 7 bits plus the "
      "rest added back)");
  m.def(
      "int8_convs", [] { return mserve::DnnlConv::int8_supported(); },
      "Whether QLinearConv and QDQ convolutions run as oneDNN's int8 convolutions (AVX2 or later; "
      "else in float32 between the quantization steps, or the portable integer loops)");
}
