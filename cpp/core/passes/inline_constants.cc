// Constant nodes become initializers, so the passes after this one (fusions, BatchNorm folding,
// the layout pass) see their values as they see initializers: PyTorch exports ReLU6 as
// Clip(x, Constant, Constant).
#include <vector>

#include "core/kernels/common.h"
#include "core/passes/passes.h"

namespace mserve {

Status inline_constants(Graph& g) {
  std::vector<Node> kept;
  kept.reserve(g.nodes.size());
  for (Node& n : g.nodes) {
    if (n.op_type == "Constant" && n.domain.empty() && n.outputs.size() == 1 && n.outputs[0] != kNoValue &&
        n.unsupported.empty()) {
      auto value = constant_node_value(n);
      if (value.ok() && value.value().dtype() != DType::kString) {  // else the kernel reports it
        g.initializers[n.outputs[0]] = std::move(value).value();
        continue;
      }
    }
    kept.push_back(std::move(n));
  }
  g.nodes = std::move(kept);
  return Status::OK();
}

}  // namespace mserve
