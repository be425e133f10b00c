// Pad(x) -> Conv becomes Conv with larger pads when the Pad adds zeros around the spatial axes
// only (mode "constant", value 0, non-negative pads, none on the batch and channel axes) and the
// Conv is its only reader: tf2onnx writes Keras' ZeroPadding2D before every strided depthwise
// conv that way, and a separate Pad costs a copy of the image (and, channels-last, a layout
// change on each side).
#include <vector>

#include "core/passes/graph_index.h"
#include "core/passes/passes.h"

namespace mserve {
namespace {

// The pads of a zero constant Pad (begin values of every axis, then end values), or false.
bool zero_pads(const Graph& g, const Node& pad, std::vector<int64_t>* pads) {
  const Attribute* mode = pad.attr("mode");
  if (mode && mode->s != "constant") return false;
  if (pad.opset < 11) {
    *pads = pad.attr_ints("pads");
    return pad.attr_float("value", 0.0f) == 0.0f;
  }
  const Tensor* p = input_constant(g, pad, 1);
  if (!p || p->dtype() != DType::kInt64 || !input_absent(pad, 3)) return false;
  pads->assign(p->data<int64_t>(), p->data<int64_t>() + p->numel());
  if (!input_absent(pad, 2)) {
    const Tensor* v = input_constant(g, pad, 2);
    if (!v || v->numel() != 1 || v->float_at(0) != 0.0) return false;
  }
  return true;
}

}  // namespace

Status fold_pad(Graph& g) {
  GraphIndex ix(g);
  std::vector<bool> removed(g.nodes.size(), false);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node& pad = g.nodes[i];
    if (pad.op_type != "Pad" || !pad.domain.empty() || pad.inputs.empty() || pad.outputs.size() != 1) continue;
    const int ci = ix.sole_reader(pad.outputs[0]);
    if (ci < 0) continue;
    Node& conv = g.nodes[ci];
    if (conv.op_type != "Conv" || !conv.domain.empty() || conv.inputs.empty() || conv.inputs[0] != pad.outputs[0])
      continue;
    const Attribute* ap = conv.attr("auto_pad");
    if (ap && ap->s != "NOTSET") continue;
    const Tensor* w = input_constant(g, conv, 1);
    std::vector<int64_t> pads;
    if (!w || !zero_pads(g, pad, &pads)) continue;
    const int64_t r = w->rank(), sp = r - 2;
    if (sp < 1 || static_cast<int64_t>(pads.size()) != 2 * r) continue;
    bool ok = pads[0] == 0 && pads[1] == 0 && pads[r] == 0 && pads[r + 1] == 0;
    for (int64_t v : pads) ok = ok && v >= 0;
    if (!ok) continue;
    std::vector<int64_t> cp = conv.attr_ints("pads");
    if (cp.empty()) cp.assign(2 * sp, 0);
    if (static_cast<int64_t>(cp.size()) != 2 * sp) continue;
    for (int64_t d = 0; d < sp; ++d) {
      cp[d] += pads[2 + d];
      cp[sp + d] += pads[r + 2 + d];
    }
    conv.attrs["pads"] = Attribute::of_ints(cp);
    conv.inputs[0] = pad.inputs[0];
    removed[i] = true;
  }
  erase_nodes(g, removed);
  return Status::OK();
}

}  // namespace mserve
