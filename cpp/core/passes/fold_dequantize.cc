// DequantizeLinear of constants (what a static QDQ model writes for every weight and bias)
// becomes a float constant at load, before the passes that look for constant float weights run
// (fold_batchnorm, the MatMul fusions, nhwc_convs). The arithmetic is the kernel's own
// (kernels/dequantize.h). The quantized constant stays where other nodes read it.
#include <string>
#include <vector>

#include "core/kernels/dequantize.h"
#include "core/parallel/thread_pool.h"
#include "core/passes/graph_index.h"
#include "core/passes/passes.h"

namespace mserve {
Status fold_dequantize(Graph& g) {
  ThreadPool pool(1);
  std::vector<bool> removed(g.nodes.size(), false);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node& n = g.nodes[i];
    if (n.op_type != "DequantizeLinear" || !n.domain.empty() || n.inputs.size() < 2 || n.outputs.size() != 1) continue;
    const Tensor* x = input_constant(g, n, 0);
    const Tensor* s = input_constant(g, n, 1);
    const Tensor* z = input_constant(g, n, 2);
    if (!x || !s || (n.inputs.size() > 2 && n.inputs[2] != kNoValue && !z)) continue;
    DType yt = s->dtype();
    if (const int64_t od = n.attr_int("output_dtype", 0)) yt = dtype_of_onnx(od);
    if (!dtype_is_float(yt)) continue;
    auto y = Tensor::empty(yt, x->shape());
    if (!y.ok()) continue;
    // A model whose parameters do not fit (wrong scale shape, ...) keeps the node: its kernel
    // reports the error when the model is planned.
    if (!dequantize(*x, *s, z, n.attr_int("axis", 1), n.attr_int("block_size", 0), y.value(), pool).ok()) continue;
    g.initializers[n.outputs[0]] = std::move(y).value();
    removed[i] = true;
  }
  erase_nodes(g, removed);
  return Status::OK();
}

}  // namespace mserve
