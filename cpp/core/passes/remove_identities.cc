#include <vector>

#include "core/passes/passes.h"

namespace mserve {

namespace {

// Dropout is an identity at inference unless training_mode (input 2) is given and not a
// constant false; its mask output must be unused.
bool is_inference_dropout(const Graph& g, const Node& n, const std::vector<int>& uses) {
  if (n.op_type != "Dropout" || !n.domain.empty()) return false;
  if (n.outputs.size() > 1 && n.outputs[1] != kNoValue && uses[n.outputs[1]] > 0) return false;
  if (n.inputs.size() > 2 && n.inputs[2] != kNoValue) {
    auto it = g.initializers.find(n.inputs[2]);
    if (it == g.initializers.end() || it->second.numel() != 1 || it->second.int_at(0) != 0) return false;
  }
  return n.attr_int("is_test", 1) != 0 || n.opset >= 7;
}

}  // namespace

Status remove_identities(Graph& g) {
  std::vector<int> uses(g.values.size(), 0);
  for (const Node& n : g.nodes)
    for (int v : n.inputs)
      if (v != kNoValue) ++uses[v];
  for (int v : g.outputs) ++uses[v];
  std::vector<bool> is_graph_output(g.values.size(), false);
  for (int v : g.outputs) is_graph_output[v] = true;

  std::vector<int> replace(g.values.size());
  for (size_t v = 0; v < replace.size(); ++v) replace[v] = static_cast<int>(v);
  std::vector<Node> kept;
  for (Node& n : g.nodes) {
    const bool identity = n.op_type == "Identity" && n.domain.empty() && n.inputs.size() == 1;
    if ((identity || is_inference_dropout(g, n, uses)) && !n.inputs.empty() && n.inputs[0] != kNoValue &&
        !is_graph_output[n.outputs[0]]) {
      replace[n.outputs[0]] = replace[n.inputs[0]];
      continue;
    }
    for (int& v : n.inputs)
      if (v != kNoValue) v = replace[v];
    kept.push_back(std::move(n));
  }
  g.nodes = std::move(kept);
  return Status::OK();
}

}  // namespace mserve
