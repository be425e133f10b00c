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

}  // namespace mserve
