// _core.Session: load, describe, run. Inputs are borrowed from numpy (zero copy); outputs are
// numpy arrays that own the runtime's result buffers through a capsule (zero copy). String
// tensors are the exception: they are copied in from object/'U'/'S' arrays and out into object
// arrays of str.
#include <pybind11/stl.h>

#include <memory>

#include "bindings/common.h"
#include "bindings/device_tensor.h"
#include "core/device/mock.h"
#include "core/exec/session.h"
#include "core/onnx/loader.h"

namespace mserve::py_bind {
namespace {

py::list describe_values(const Graph& g, const std::vector<int>& ids) {
  py::list out;
  for (int id : ids) {
    const Value& v = g.values[id];
    py::object shape = py::none();
    if (v.has_shape) {
      py::list dims;
      for (const Dim& d : v.dims) {
        if (d.known())
          dims.append(d.value);
        else if (!d.symbol.empty())
          dims.append(utf8(d.symbol));
        else
          dims.append(py::none());
      }
      shape = py::tuple(dims);
    }
    py::object zipmap = py::none();
    if (v.zipmap) {
      py::list labels;
      for (int64_t l : v.zipmap_labels) labels.append(l);
      for (const std::string& l : v.zipmap_string_labels) labels.append(utf8(l));
      zipmap = labels;
    }
    out.append(py::make_tuple(utf8(v.name), dtype_name(v.dtype), shape, zipmap));
  }
  return out;
}

// A string tensor becomes a numpy object array of str (invalid UTF-8 replaced), as onnxruntime
// returns them: a copy.
py::array strings_to_array(const Tensor& t) {
  py::tuple shape(t.rank());
  for (int d = 0; d < t.rank(); ++d) shape[d] = t.dim(d);
  auto out = py::module_::import("numpy").attr("empty")(shape, py::dtype("O")).cast<py::array>();
  auto** p = static_cast<PyObject**>(out.mutable_data());
  for (int64_t i = 0; i < t.numel(); ++i) {
    py::str s = utf8(t.str(i));
    Py_XDECREF(p[i]);
    p[i] = s.release().ptr();
  }
  return out;
}

// Copies the str / bytes elements of a numpy array (object, 'U' or 'S') into an owned string
// tensor; str is stored as UTF-8.
StatusOr<Tensor> strings_from_array(const py::array& a, const std::string& name) {
  Shape sh(a.shape(), a.shape() + a.ndim());
  MS_ASSIGN_OR_RETURN(Tensor t, Tensor::empty(DType::kString, sh));
  py::list items = a.attr("ravel")().attr("tolist")();
  if (static_cast<int64_t>(items.size()) != t.numel()) return Internal("string input element count");
  for (size_t i = 0; i < items.size(); ++i) {
    PyObject* o = items[i].ptr();
    if (PyUnicode_Check(o)) {
      Py_ssize_t n = 0;
      const char* s = PyUnicode_AsUTF8AndSize(o, &n);
      if (!s) {
        PyErr_Clear();
        return InvalidArgument("input '" + name + "': element " + std::to_string(i) + " is not encodable as UTF-8");
      }
      t.str(static_cast<int64_t>(i)).assign(s, static_cast<size_t>(n));
    } else if (PyBytes_Check(o)) {
      t.str(static_cast<int64_t>(i)).assign(PyBytes_AS_STRING(o), static_cast<size_t>(PyBytes_GET_SIZE(o)));
    } else {
      return InvalidArgument("input '" + name + "': element " + std::to_string(i) + " is a " +
                             std::string(Py_TYPE(o)->tp_name) + "; a string input takes str or bytes");
    }
  }
  return t;
}

py::array to_array(Tensor&& t) {
  if (t.dtype() == DType::kString) return strings_to_array(t);
  std::vector<py::ssize_t> shape(t.shape().begin(), t.shape().end());
  // The capsule holds a reference to the buffer: numpy owns the result without a copy.
  auto* keep = new std::shared_ptr<Buffer>(t.buffer());
  py::capsule owner(keep, [](void* p) { delete static_cast<std::shared_ptr<Buffer>*>(p); });
  return py::array(to_numpy(t.dtype()), shape, t.raw(), owner);
}

StatusOr<std::vector<Tensor>> run(const Session& s, const py::list& arrays, const RunOptions& options = {}) {
  std::vector<Tensor> inputs;
  inputs.reserve(arrays.size());
  const Graph& g = s.graph();
  for (size_t i = 0; i < arrays.size(); ++i) {
    const std::string& name = i < g.inputs.size() ? g.values[g.inputs[i]].name : std::to_string(i);
    if (!py::isinstance<py::array>(arrays[i])) {
      if (!py::isinstance<DeviceTensor>(arrays[i]))
        return InvalidArgument("input '" + name + "': expected a numpy array");
      inputs.push_back(arrays[i].cast<const DeviceTensor&>().tensor);  // read on its device (run checks which)
      continue;
    }
    auto a = arrays[i].cast<py::array>();
    DType dt = from_numpy(a.dtype());
    if (dt == DType::kUndefined)
      return InvalidArgument("input '" + name + "': numpy dtype " + py::str(a.dtype()).cast<std::string>() +
                             " is not supported");
    if (!Shape::fits(a.ndim()))
      return InvalidArgument("input '" + name + "': rank " + std::to_string(a.ndim()) + " exceeds " +
                             std::to_string(Shape::kMaxRank));
    if (dt == DType::kString) {  // copied in: zero copy is for numeric tensors
      MS_ASSIGN_OR_RETURN(Tensor t, strings_from_array(a, name));
      inputs.push_back(std::move(t));
      continue;
    }
    if (!(a.flags() & py::array::c_style) ||
        reinterpret_cast<uintptr_t>(a.data()) % static_cast<uintptr_t>(a.itemsize()) != 0)
      return InvalidArgument("input '" + name + "': array must be C-contiguous and aligned");
    Shape sh(a.shape(), a.shape() + a.ndim());
    inputs.emplace_back(dt, sh, const_cast<void*>(a.data()));
  }
  std::vector<Tensor> outputs;
  Status st;
  {
    py::gil_scoped_release nogil;
    st = s.run(inputs, &outputs, nullptr, options);
  }
  if (!st.ok()) return st;
  return outputs;
}

template <class T>
T unwrap(StatusOr<T>&& r) {
  raise_if_error(r.status());
  return std::move(r).value();
}

SessionOptions options(int threads, bool optimize, const py::object& device, bool graphs) {
  SessionOptions o;
  o.threads = threads;
  o.optimize = optimize;
  o.backend = backend_of(device);
  o.graphs = graphs;
  return o;
}

py::object placement_of(const Session& s) {
  std::shared_ptr<const Placement> p = s.placement();
  if (!p) return py::none();
  py::list fallbacks;
  for (const auto& f : p->fallbacks) fallbacks.append(py::make_tuple(utf8(f.node), f.op, f.reason));
  py::dict d;
  d["device"] = p->device;
  d["device_nodes"] = p->device_nodes;
  d["cpu_nodes"] = p->cpu_nodes;
  d["copies"] = p->copies;
  d["uploads"] = p->uploads;
  d["fallbacks"] = fallbacks;
  d["no_graph"] = p->no_graph;
  return std::move(d);
}

// Session.fast_run(): Model.predict's path for its commonest call, one C-contiguous aligned
// ndarray of the single input's dtype and one output: a plain C function (METH_O) over a capsule,
// with the checks the Python path would make done on numpy's structs. It returns None, having
// done nothing, for anything else (other types, dtypes or layouts, and errors): the general
// path then handles the call and reports what is wrong.
constexpr const char* kFastRunCapsule = "mserve.fast_run";

struct FastRun {
  std::shared_ptr<const Session> session;
  DType dtype;
  PyObject* descr;  // numpy's dtype object for `dtype` (to_numpy keeps it alive)
};

PyObject* fast_run_call(PyObject* self, PyObject* x) {
  auto* f = static_cast<FastRun*>(PyCapsule_GetPointer(self, kFastRunCapsule));
  auto& api = py::detail::npy_api::get();
  if (!f || Py_TYPE(x) != api.PyArray_Type_) Py_RETURN_NONE;
  const auto* a = py::detail::array_proxy(x);
  constexpr int kNeed = py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_ | py::detail::npy_api::NPY_ARRAY_ALIGNED_;
  if (a->descr != f->descr || (a->flags & kNeed) != kNeed || !Shape::fits(a->nd)) Py_RETURN_NONE;
  // Reused per thread: no allocation for the argument and result lists.
  thread_local std::vector<Tensor> ins, outs;
  try {
    ins.clear();
    outs.clear();
    ins.emplace_back(f->dtype, Shape(a->dimensions, a->dimensions + a->nd), a->data);
    Status st;
    {
      py::gil_scoped_release nogil;
      st = f->session->run(ins, &outs);
    }
    ins.clear();
    if (!st.ok() || outs.size() != 1 || outs[0].dtype() == DType::kString) {
      outs.clear();
      Py_RETURN_NONE;
    }
    py::array out = to_array(std::move(outs[0]));
    outs.clear();
    return out.release().ptr();
  } catch (...) {
    ins.clear();
    outs.clear();
    PyErr_Clear();
    Py_RETURN_NONE;
  }
}

PyMethodDef kFastRunDef = {"fast_run", fast_run_call, METH_O,
                           "fast_run(x): the model's single output for one C-contiguous array of its input's "
                           "dtype, or None (the caller's general path then runs)."};

py::object make_fast_run(const std::shared_ptr<Session>& s) {
  const Graph& g = s->graph();
  if (g.inputs.size() != 1 || g.outputs.size() != 1) return py::none();
  const Value& in = g.values[g.inputs[0]];
  if (in.dtype == DType::kUndefined || in.dtype == DType::kString || g.values[g.outputs[0]].zipmap) return py::none();
  auto* f = new FastRun{s, in.dtype, to_numpy(in.dtype).ptr()};
  py::capsule cap(f, kFastRunCapsule,
                  [](PyObject* c) { delete static_cast<FastRun*>(PyCapsule_GetPointer(c, kFastRunCapsule)); });
  PyObject* fn = PyCFunction_New(&kFastRunDef, cap.ptr());
  if (!fn) throw py::error_already_set();
  return py::reinterpret_steal<py::object>(fn);
}

// The floating-point type that holds most of a model's weight bytes: "float32", "float16",
// "bfloat16", "float64", or "" for a model without floating-point weights. Read from the file's
// structure; the weights are mapped, not read.
std::string weight_dtype(const py::object& model) {
  StatusOr<Graph> g = InvalidArgument("a model path or bytes");
  if (py::isinstance<py::bytes>(model)) {
    const std::string_view b = model.cast<std::string_view>();
    py::gil_scoped_release nogil;
    g = load_onnx_bytes(b.data(), b.size());
  } else {
    const std::string path = model.cast<std::string>();
    py::gil_scoped_release nogil;
    g = load_onnx_file(path);
  }
  raise_if_error(g.status());
  size_t bytes[kNumDTypes] = {};
  for (const auto& [v, t] : g.value().initializers) bytes[static_cast<int>(t.dtype())] += t.nbytes();
  DType best = DType::kUndefined;
  for (DType d : {DType::kFloat32, DType::kFloat16, DType::kBFloat16, DType::kFloat64})
    if (bytes[static_cast<int>(d)] > (best == DType::kUndefined ? 0 : bytes[static_cast<int>(best)])) best = d;
  return best == DType::kUndefined ? std::string() : std::string(dtype_name(best));
}

}  // namespace

// A ZipMap output as Python wants it: one {label: score} dict per row of float32 `scores` [N, C]
// (`keys`: the C labels). Built with the C API: the same in Python took 10 us for 32 rows x 3.
py::list zipmap_rows(const py::array_t<float, py::array::c_style | py::array::forcecast>& scores,
                     const py::list& keys) {
  if (scores.ndim() != 2 || static_cast<py::ssize_t>(keys.size()) != scores.shape(1))
    throw py::value_error("zipmap: scores must be [N, C] with C labels");
  const py::ssize_t n = scores.shape(0), c = scores.shape(1);
  const float* p = scores.data();
  PyObject* rows = PyList_New(n);
  if (!rows) throw py::error_already_set();
  py::list result = py::reinterpret_steal<py::list>(rows);
  for (py::ssize_t r = 0; r < n; ++r) {
    PyObject* d = PyDict_New();
    if (!d) throw py::error_already_set();
    PyList_SET_ITEM(rows, r, d);  // the list owns it from here
    for (py::ssize_t k = 0; k < c; ++k) {
      PyObject* v = PyFloat_FromDouble(static_cast<double>(p[r * c + k]));
      if (!v || PyDict_SetItem(d, keys[k].ptr(), v) != 0) {
        Py_XDECREF(v);
        throw py::error_already_set();
      }
      Py_DECREF(v);
    }
  }
  return result;
}

void bind_session(py::module_& m) {
  m.def("zipmap", &zipmap_rows, py::arg("scores"), py::arg("keys"),
        "One {label: score} dict per row of a float32 [N, C] array.");
  m.def("weight_dtype", &weight_dtype, py::arg("model"),
        "The floating-point type holding most of a model's weight bytes (a path or the model's bytes); '' for none.");
  py::class_<Session, std::shared_ptr<Session>>(m, "Session")
      .def_static(
          "load_file",
          [](const std::string& path, int threads, bool optimize, const py::object& device, bool graphs,
             const std::string& pack_cache) {
            SessionOptions opts = options(threads, optimize, device, graphs);
            opts.pack_cache = pack_cache;
            StatusOr<std::shared_ptr<Session>> s = Status::OK();
            {
              py::gil_scoped_release nogil;  // parsing and planning take a while
              s = Session::load_file(path, opts);
            }
            return unwrap(std::move(s));  // raises, so needs the GIL
          },
          py::arg("path"), py::arg("threads") = 0, py::arg("optimize") = true, py::arg("device") = py::none(),
          py::arg("graphs") = true, py::arg("pack_cache") = "")
      .def_static(
          "load_bytes",
          [](py::bytes data, int threads, const std::string& base_dir, bool optimize, const py::object& device,
             bool graphs) {
            std::string_view view = data;  // `data` stays referenced by the caller's frame
            SessionOptions opts = options(threads, optimize, device, graphs);
            StatusOr<std::shared_ptr<Session>> s = Status::OK();
            {
              py::gil_scoped_release nogil;
              s = Session::load_bytes(view.data(), view.size(), opts, base_dir);
            }
            return unwrap(std::move(s));
          },
          py::arg("data"), py::arg("threads") = 0, py::arg("base_dir") = "", py::arg("optimize") = true,
          py::arg("device") = py::none(), py::arg("graphs") = true)
      .def_property_readonly("inputs", [](const Session& s) { return describe_values(s.graph(), s.graph().inputs); })
      .def_property_readonly("outputs", [](const Session& s) { return describe_values(s.graph(), s.graph().outputs); })
      .def_property_readonly("threads", &Session::threads)
      .def_property_readonly("pack_cache",
                             [](const Session& s) -> py::object {
                               const PackCache::Report& r = s.pack_cache();
                               if (r.path.empty()) return py::none();
                               py::dict d;
                               d["path"] = utf8(r.path);
                               d["found"] = r.found;
                               d["packed"] = r.packed;
                               d["copied"] = r.copied;
                               d["written"] = r.written;
                               d["error"] = utf8(r.error);
                               return std::move(d);
                             })
      .def_property_readonly("producer", [](const Session& s) { return utf8(s.graph().producer); })
      .def_property_readonly("ir_version", [](const Session& s) { return s.graph().ir_version; })
      .def_property_readonly("opsets",
                             [](const Session& s) {
                               py::dict d;
                               for (const auto& [domain, version] : s.graph().opsets) d[utf8(domain)] = version;
                               return d;
                             })
      .def_property_readonly("cached_plans", &Session::cached_plans)
      .def_property_readonly("device", &Session::device)
      .def("placement", &placement_of,
           "Where the nodes of the latest plan run: a dict (device, device_nodes, cpu_nodes, copies, uploads, "
           "fallbacks as (node, op, reason), no_graph: why it cannot be recorded as one graph), or None before any "
           "plan.")
      .def_property_readonly("num_nodes", &Session::num_nodes)
      .def_property_readonly("node_ops", &Session::node_ops)
      .def("fast_run", &make_fast_run,
           "A function f(x) running a single-input, single-output model on one C-contiguous array of the "
           "input's dtype (None for anything else); None when the model has another signature.")
      .def("set_profiling", &Session::set_profiling, py::arg("on"))
      .def(
          "profile",
          [](const Session& s) {
            py::list rows;
            for (const auto& t : s.profile()) rows.append(py::make_tuple(t.op_type, t.calls, t.nanos));
            return rows;
          },
          "(op_type, calls, nanoseconds) per op type since profiling was turned on.")
      .def(
          "run",
          [](const Session& s, const py::list& arrays, bool device_outputs) {
            RunOptions options;
            options.device_outputs = device_outputs;
            auto outs = unwrap(run(s, arrays, options));
            py::list result;
            for (auto& t : outs) {
              if (t.on_host())
                result.append(to_array(std::move(t)));
              else
                result.append(py::cast(DeviceTensor{std::move(t), s.backend()}));
            }
            return result;
          },
          py::arg("inputs"), py::arg("device_outputs") = false,
          "Runs the model on C-contiguous arrays (or DeviceTensors on its device) in input order; returns arrays in "
          "output order (DeviceTensors for outputs computed on the device with device_outputs).");
  bind_device_tensor(m);
}

}  // namespace mserve::py_bind
