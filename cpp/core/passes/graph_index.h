// What the rewriting passes ask of a graph: who reads each value and who writes it; and the
// removal of the nodes a pass has folded into others.
#pragma once
#include <vector>

#include "core/graph/graph.h"

namespace mserve {

struct GraphIndex {
  std::vector<int> uses;      // per value: node inputs reading it, +1 when it is a graph output
  std::vector<int> producer;  // per value: the node index writing it, or -1

  explicit GraphIndex(const Graph& g) : uses(g.values.size(), 0), producer(g.values.size(), -1) {
    for (size_t i = 0; i < g.nodes.size(); ++i) {
      for (int v : g.nodes[i].inputs)
        if (v != kNoValue) ++uses[v];
      for (int v : g.nodes[i].outputs)
        if (v != kNoValue) producer[v] = static_cast<int>(i);
    }
    for (int v : g.outputs) ++uses[v];
  }
};

// Drops the nodes marked in `removed` (indexed like g.nodes), keeping the others' order.
inline void erase_nodes(Graph& g, const std::vector<bool>& removed) {
  std::vector<Node> kept;
  kept.reserve(g.nodes.size());
  for (size_t i = 0; i < g.nodes.size(); ++i)
    if (!removed[i]) kept.push_back(std::move(g.nodes[i]));
  g.nodes = std::move(kept);
}

}  // namespace mserve
