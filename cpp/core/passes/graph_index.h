// What the rewriting passes ask of a graph: who reads each value and who writes it, constant
// scalars; and the removal of the nodes a pass has folded into others.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "core/graph/graph.h"

namespace mserve {

struct GraphIndex {
  std::vector<int> uses;      // per value: node inputs reading it, +1 when it is a graph output
  std::vector<int> producer;  // per value: the node index writing it, or -1
  std::vector<int> reader;    // per value: the last node index reading it, or -1

  explicit GraphIndex(const Graph& g)
      : uses(g.values.size(), 0), producer(g.values.size(), -1), reader(g.values.size(), -1) {
    for (size_t i = 0; i < g.nodes.size(); ++i) {
      for (int v : g.nodes[i].inputs)
        if (v != kNoValue) ++uses[v], reader[v] = static_cast<int>(i);
      for (int v : g.nodes[i].outputs)
        if (v != kNoValue) producer[v] = static_cast<int>(i);
    }
    for (int v : g.outputs) ++uses[v];
  }

  // The node reading `v` when it is its only reader and `v` is no graph output; else -1.
  int sole_reader(int v) const { return v != kNoValue && uses[v] == 1 ? reader[v] : -1; }
};

// Whether input i of n is left out (past the end or empty).
inline bool input_absent(const Node& n, size_t i) { return i >= n.inputs.size() || n.inputs[i] == kNoValue; }

// The constant value of input i of n, or null when it is absent or computed.
inline const Tensor* input_constant(const Graph& g, const Node& n, size_t i) {
  if (input_absent(n, i)) return nullptr;
  auto it = g.initializers.find(n.inputs[i]);
  return it == g.initializers.end() ? nullptr : &it->second;
}

// Whether Quantize/DequantizeLinear node q quantizes per tensor with constant parameters: one
// float32 scale (input 1) and one 8-bit zero point (input 2), no blocks.
inline bool per_tensor_8bit(const Graph& g, const Node& q) {
  const Tensor *s = input_constant(g, q, 1), *z = input_constant(g, q, 2);
  return q.attr_int("block_size", 0) == 0 && s && z && s->dtype() == DType::kFloat32 && s->numel() == 1 &&
         z->numel() == 1 && (z->dtype() == DType::kUInt8 || z->dtype() == DType::kInt8);
}

// The value of `v` when it is a constant float32 scalar (one element); false otherwise.
inline bool float_scalar(const Graph& g, int v, float* out) {
  auto it = g.initializers.find(v);
  if (it == g.initializers.end() || it->second.dtype() != DType::kFloat32 || it->second.numel() != 1) return false;
  *out = it->second.data<float>()[0];
  return true;
}

// A new initializer value holding `t`, named `name`; its id.
inline int add_initializer(Graph& g, const std::string& name, Tensor t) {
  Value v;
  v.name = name;
  v.dtype = t.dtype();
  v.has_shape = true;
  for (int d = 0; d < t.rank(); ++d) v.dims.push_back(Dim{t.dim(d), ""});
  const int id = g.add_value(std::move(v));
  g.initializers[id] = std::move(t);
  return id;
}

// Drops the nodes marked in `removed` (indexed like g.nodes), keeping the others' order.
inline void erase_nodes(Graph& g, const std::vector<bool>& removed) {
  std::vector<Node> kept;
  kept.reserve(g.nodes.size());
  for (size_t i = 0; i < g.nodes.size(); ++i)
    if (!removed[i]) kept.push_back(std::move(g.nodes[i]));
  g.nodes = std::move(kept);
}

}  // namespace mserve
