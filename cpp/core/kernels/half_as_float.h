// float16 and bfloat16 computed in float32 where a kernel does not compute them itself.
//
// Models converted to float16 (onnxconverter-common, onnxruntime's float16 tools) or bfloat16
// keep weights and activations in 16 bits; most of mserve's kernels compute float16 themselves
// (accumulating in float), but the heavy ones (MatMul, Gemm, Conv, ConvTranspose: oneDNN and
// mserve's float32 GEMM) and every kernel for bfloat16 (a storage type, dtype.h) do not. In a
// graph that holds 16-bit floats (KernelInit::has_half), every kernel is created through
// create_half_as_float, which returns a HalfAsFloat kernel:
//   - native: the op's own kernel, used as is when its infer accepts the 16-bit inputs (never
//     for bfloat16 inputs, nor for the matmul/conv families, which compute in float32 anyway);
//   - lowered: the op's kernel created over float32 copies of the node's 16-bit constants
//     (converted once, at load: the kernel prepacks them as it does float32 weights), run on
//     float32 copies of the 16-bit inputs; its float32 outputs are rounded to the 16-bit type
//     of the inputs (to nearest even), as onnxruntime does when it runs such a node in float32.
// So each node's result is its float32 result rounded once: what the ONNX reference computes,
// and what accumulating in float32 means for MatMul and Conv.
//
// Left as they are (never wrapped): Cast and CastLike (they convert 16-bit floats themselves),
// views (Reshape, Squeeze, ...: bytes unchanged) and control flow (their subgraphs' kernels are
// wrapped instead). A node with a 'to', 'dtype' or 'output_dtype' attribute keeps its kernel's
// output dtypes when lowered (its float32 outputs are float32 by that attribute).
#pragma once
#include <string>

#include "core/kernels/kernel.h"

namespace mserve {

// Whether any kernel of `g` may see a 16-bit float: a 16-bit constant, a 16-bit value read or
// written by a node other than a Cast, a 16-bit type or tensor attribute of such a node, a Cast
// to 16 bits whose result other nodes read, a subgraph holding 16-bit floats. False for a
// widened model (passes/widen_half.cc), whose 16-bit inputs and outputs only Casts touch: its
// kernels are created as they are (KernelInit::has_half).
bool needs_half_as_float(const Graph& g);

// `factory`'s kernel for `node`, wrapped as above when that applies; `family` is the op's
// family in op_list.inc.
StatusOr<KernelPtr> create_half_as_float(const Node& node, const KernelInit& init, KernelFactory factory,
                                         const std::string& family);

}  // namespace mserve
