// A float16 or bfloat16 model (16-bit weights, inputs or outputs) computes in float32 from its
// inputs to its outputs: 16-bit
// constants become float32 once, a Cast to float32 follows each 16-bit input and a Cast back
// precedes each 16-bit output, and every 16-bit type the graph names (Cast's 'to', 'dtype',
// 'output_dtype', constant attributes, declared value types) becomes float32. Every kernel then
// runs its float32 path with the float32 fusions and layouts (BatchNorm folding, bias and
// activation fusion, channels-last convs), and the results are rounded once, at the outputs:
// more accurate than rounding after every node, and what onnxruntime does on CPU where it keeps
// runs of float32 nodes. mserve.load(optimize=False) keeps the graph's own rounding (each node
// rounded by HalfAsFloat, kernels/half_as_float.h).
//
// Left as it is: a graph whose subgraphs (If, Loop, Scan bodies) hold 16-bit floats, since their
// declared types would then disagree with the outer values they read; a graph with a BitCast,
// whose result is the 16-bit pattern itself; a graph with an output of no declared type.
#include <string>
#include <vector>

#include "core/kernels/cast.h"
#include "core/passes/passes.h"

namespace mserve {
namespace {

constexpr int64_t kOnnxFloat = 1, kOnnxFloat16 = 10, kOnnxBFloat16 = 16;

// A model stored in 16 bits: 16-bit constants or 16-bit inputs or outputs (a float32 model that
// only casts to float16 somewhere keeps that rounding).
bool stored_in_half(const Graph& g) {
  for (const auto& [id, t] : g.initializers)
    if (dtype_is_half(t.dtype())) return true;
  for (int v : g.inputs)
    if (dtype_is_half(g.values[v].dtype)) return true;
  for (int v : g.outputs)
    if (dtype_is_half(g.values[v].dtype)) return true;
  return false;
}

Node cast_node(int from, int to, int64_t onnx_type, const std::string& name, int opset) {
  Node n;
  n.name = name;
  n.op_type = "Cast";
  n.opset = opset;
  n.inputs = {from};
  n.outputs = {to};
  n.attrs["to"] = Attribute::of_int(onnx_type);
  return n;
}

}  // namespace

Status widen_half_floats(Graph& g) {
  if (!stored_in_half(g)) return Status::OK();
  for (const Node& n : g.nodes) {
    if (n.op_type == "BitCast" && n.domain.empty()) return Status::OK();  // the bits are its meaning
    for (const auto& [key, a] : n.attrs)
      if (a.kind == Attribute::Kind::kGraph && a.g && holds_16bit_floats(*a.g)) return Status::OK();
  }
  for (int v : g.outputs)  // an output of no declared type might be a 16-bit one: left as it is
    if (g.values[v].dtype == DType::kUndefined) return Status::OK();
  auto onnx_opset = g.opsets.find("");
  if (onnx_opset == g.opsets.end()) return Status::OK();  // the Casts this adds need the default domain
  const int opset = static_cast<int>(onnx_opset->second);

  std::vector<bool> is_input(g.values.size(), false), is_output(g.values.size(), false);
  for (int v : g.inputs) is_input[v] = true;
  for (int v : g.outputs) is_output[v] = true;

  // Constants, except one the graph returns as it is (its output keeps the 16-bit type).
  for (auto& [id, t] : g.initializers) {
    if (!dtype_is_half(t.dtype()) || is_output[id]) continue;
    MS_ASSIGN_OR_RETURN(t, cast_copy(t, DType::kFloat32));
    g.values[id].dtype = DType::kFloat32;
  }
  for (Node& n : g.nodes)
    for (auto& [key, a] : n.attrs) {
      if (a.kind == Attribute::Kind::kInt && (a.i == kOnnxFloat16 || a.i == kOnnxBFloat16) &&
          (key == "to" || key == "dtype" || key == "output_dtype"))
        a.i = kOnnxFloat;
      if (a.kind == Attribute::Kind::kTensor && dtype_is_half(a.t.dtype())) {
        MS_ASSIGN_OR_RETURN(a.t, cast_copy(a.t, DType::kFloat32));
      }
    }
  const size_t declared = g.values.size();
  for (size_t v = 0; v < declared; ++v)
    if (dtype_is_half(g.values[v].dtype) && !is_input[v] && !is_output[v]) g.values[v].dtype = DType::kFloat32;

  // Each 16-bit input is read through its float32 copy.
  std::vector<Node> front;
  for (int v : g.inputs) {
    if (!dtype_is_half(g.values[v].dtype)) continue;
    Value w;
    w.name = g.values[v].name + "/float32";
    w.dtype = DType::kFloat32;
    const int wid = g.add_value(std::move(w));
    for (Node& n : g.nodes)
      for (int& in : n.inputs)
        if (in == v) in = wid;
    front.push_back(cast_node(v, wid, kOnnxFloat, g.values[v].name + "/to_float32", opset));
  }
  // Each 16-bit output is written in float32 and rounded once.
  std::vector<Node> back;
  for (int v : g.outputs) {
    const DType t = g.values[v].dtype;
    if (!dtype_is_half(t) || is_input[v] || g.initializers.count(v)) continue;
    bool produced = false;
    for (const Node& n : g.nodes)
      for (int o : n.outputs) produced = produced || o == v;
    if (!produced) continue;
    Value w;
    w.name = g.values[v].name + "/float32";
    w.dtype = DType::kFloat32;
    const int wid = g.add_value(std::move(w));
    for (Node& n : g.nodes) {
      for (int& o : n.outputs)
        if (o == v) o = wid;
      for (int& in : n.inputs)
        if (in == v) in = wid;
    }
    back.push_back(cast_node(wid, v, t == DType::kFloat16 ? kOnnxFloat16 : kOnnxBFloat16,
                             g.values[v].name + "/to_" + dtype_name(t), opset));
  }
  g.nodes.insert(g.nodes.begin(), front.begin(), front.end());
  g.nodes.insert(g.nodes.end(), back.begin(), back.end());
  return Status::OK();
}

}  // namespace mserve
