#include "core/graph/graph.h"

namespace mserve {

std::string Node::where() const {
  return "node '" + name + "' (" + (domain.empty() ? "" : domain + ".") + op_type + "): ";
}

std::string Node::describe() const {
  return "op " + op_type + ", domain '" + (domain.empty() ? "ai.onnx" : domain) + "', opset " + std::to_string(opset) +
         ", node '" + name + "'";
}

int Graph::find_value(const std::string& name) const {
  for (size_t i = 0; i < values.size(); ++i)
    if (values[i].name == name) return static_cast<int>(i);
  return -1;
}

bool attrs_hold_16bit_floats(const Node& n) {
  for (const auto& [key, a] : n.attrs) {
    if (a.kind == Attribute::Kind::kInt && (key == "to" || key == "dtype" || key == "output_dtype") &&
        dtype_is_half(dtype_of_onnx(a.i)))
      return true;
    if (a.kind == Attribute::Kind::kTensor && dtype_is_half(a.t.dtype())) return true;
    if (a.kind == Attribute::Kind::kGraph && a.g && holds_16bit_floats(*a.g)) return true;
  }
  return false;
}

bool holds_16bit_floats(const Graph& g) {
  for (const Value& v : g.values)
    if (dtype_is_half(v.dtype)) return true;
  for (const auto& [id, t] : g.initializers)
    if (dtype_is_half(t.dtype())) return true;
  for (const Node& n : g.nodes)
    if (attrs_hold_16bit_floats(n)) return true;
  return false;
}

}  // namespace mserve
