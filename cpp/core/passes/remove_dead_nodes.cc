#include <vector>

#include "core/passes/passes.h"

namespace mserve {

Status remove_dead_nodes(Graph& g) {
  // Walk back from the graph outputs; nodes are visited in reverse file order, and a second
  // sweep covers graphs whose nodes are not topologically ordered in the file.
  std::vector<bool> live_value(g.values.size(), false);
  for (int v : g.outputs) live_value[v] = true;
  std::vector<bool> live_node(g.nodes.size(), false);
  for (bool changed = true; changed;) {
    changed = false;
    for (size_t i = g.nodes.size(); i-- > 0;) {
      if (live_node[i]) continue;
      bool needed = false;
      for (int v : g.nodes[i].outputs) needed = needed || (v != kNoValue && live_value[v]);
      if (!needed) continue;
      live_node[i] = changed = true;
      for (int v : g.nodes[i].inputs)
        if (v != kNoValue) live_value[v] = true;
    }
  }
  std::vector<Node> kept;
  for (size_t i = 0; i < g.nodes.size(); ++i)
    if (live_node[i]) kept.push_back(std::move(g.nodes[i]));
  g.nodes = std::move(kept);
  // Initializers nothing reads any more are dropped too (their memory is released).
  for (auto it = g.initializers.begin(); it != g.initializers.end();)
    it = live_value[it->first] ? std::next(it) : g.initializers.erase(it);
  return Status::OK();
}

}  // namespace mserve
