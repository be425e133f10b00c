// Opset normalization: rewrites operators of the default ONNX domain from the forms older opsets
// define into the newest equivalent form, once at import, so that passes and kernels see one form.
//
// What changes (each rewritten node's `opset` becomes the version whose form it now has):
//   Clip < 11           min/max attributes -> optional inputs 1, 2 (opset 11)
//   Split < 13          split attribute -> input 1 (opset 13); num_outputs dropped below 18
//   Slice < 10          starts/ends/axes attributes -> inputs 1..3 (opset 10)
//   Pad < 11            pads (paddings at opset 1) / value attributes -> inputs 1, 2 (opset 11);
//   Pad 11..17          an axes input 3 (only defined from 18) is dropped
//   Squeeze/Unsqueeze < 13, ReduceSum < 13, other Reduce* < 18
//                       axes attribute -> input 1 (opset 13 / 18)
//   TopK < 10           k attribute -> input 1 (opset 10)
//   Upsample < 10       -> Resize (opset 10): the scales attribute (opset 7) becomes input 1,
//                       mode 'bilinear' becomes 'linear'
//   Softmax, LogSoftmax, Hardmax < 13
//                       (rows of the input flattened to 2-D at `axis`): the opset-13 node along the
//                       last axis where that is the same (axis -1, or the last axis of an input of
//                       known rank); otherwise X -> Flatten(axis) -> op(axis=-1) -> Reshape(Shape(X))
//   BatchNormalization  spatial=1 (the default before 9) -> opset 9; `spatial` is dropped from 9 on
//                       (it is not defined there); spatial=0 keeps its own opset and form
//
// Quantized forms of com.microsoft operators (what onnxruntime's quantize_dynamic writes for a
// transformer its optimizer fused) become the operator they quantize, over DequantizeLinear of
// their 8-bit inputs, (q - zero_point) * scale:
//   QAttention               input, weight (scale scalar or per column), bias, mask_index, past
//                            -> Attention(DQ(input), DQ(weight), bias, mask_index, past)
//   QEmbedLayerNormalization the five tables -> EmbedLayerNormalization over their DQ
// (onnxruntime multiplies the integers and scales the sums; the float products here differ from
// that by float rounding only).
//
// Attributes turned into inputs become initializers of the graph (int64 for integer lists; for
// the float bounds of Clip and the Pad value, the input's dtype where the graph declares it,
// else float32, which those kernels accept for any float input).
#pragma once

#include "core/graph/graph.h"
#include "core/status.h"

namespace mserve {

// Normalizes `g`'s nodes in place (not its subgraphs: the loader calls this for every graph it
// builds). Fails with InvalidArgument, naming the node, when a required attribute is missing or
// has the wrong type.
Status normalize_opsets(Graph& g);

}  // namespace mserve
