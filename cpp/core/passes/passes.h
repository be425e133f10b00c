// Graph clean-up passes that real exports need. Each rewrites a Graph in place, before kernels
// are created; constant folding (which needs kernels) lives with the planner (plan/plan.h).
// All of them are skipped with SessionOptions::optimize = false (mserve.load(optimize=False)).
#pragma once
#include "core/graph/graph.h"
#include "core/status.h"

namespace mserve {

// The whole pipeline, in the order the passes must run (pipeline.cc): what Session::create runs
// on a model unless SessionOptions::optimize is false.
Status optimize_graph(Graph& g);

// Removes Identity nodes, and Dropout nodes in inference mode whose mask output is unused,
// rewiring their consumers to the input. A node whose output is a graph output stays (the
// output keeps its name).
Status remove_identities(Graph& g);

// Turns Constant nodes into initializers.
Status inline_constants(Graph& g);

// A float16/bfloat16 graph computes in float32 between its inputs and outputs: 16-bit constants
// widened once, Casts at the 16-bit inputs and outputs (widen_half.cc).
Status widen_half_floats(Graph& g);

// Removes nodes none of whose outputs reach a graph output.
Status remove_dead_nodes(Graph& g);

// Runs 2-D float32 convs with constant weights channels-last (com.mserve NhwcConv), and int8
// QLinearConvs with constant weights on oneDNN's int8 convolution (NhwcQLinearConv), and moves
// the layout changes around them out of conv/activation/residual chains (nhwc_convs.cc).
Status nhwc_convs(Graph& g);

// A static QDQ model's Conv between DequantizeLinear and QuantizeLinear becomes QLinearConv,
// where oneDNN has int8 convolutions (DnnlConv::int8_supported; fuse_qdq_conv.cc); before
// fold_dequantize.
Status fuse_qdq_conv(Graph& g);

// A chain of element-wise float ops from DequantizeLinear(x) to QuantizeLinear (a static QDQ
// model's SiLU, HardSwish, ...) with 8-bit x becomes com.mserve Lookup8(x, table), the table
// computed by constant folding (fuse_lookup8.cc). After fuse_qdq_conv and fold_dequantize (a
// chain's constants are then floats), before fold_qdq_pairs.
Status fuse_lookup8(Graph& g);
// A Lookup8 reading an NhwcQLinearConv's output alone becomes the conv's 10th input, applied as
// the conv writes Y (fuse_lookup8.cc). After nhwc_convs.
Status fold_lookup8_into_convs(Graph& g);
// QuantizeLinear([Relu](DequantizeLinear(a) op DequantizeLinear(b))) per tensor, op Add or Mul,
// becomes com.mserve QuantizedAdd / QuantizedMul (fuse_qdq_binary.cc). After nhwc_convs.
Status fuse_qdq_binary(Graph& g);

// A static QDQ model's MatMul of dequantized 8-bit data by a dequantized constant matrix
// becomes com.microsoft MatMulIntegerToFloat, where the CPU has VNNI (fuse_matmul_integer.cc).
Status fuse_qdq_matmul(Graph& g);

// DequantizeLinear of constant inputs becomes a float constant (fold_dequantize.cc): a static
// QDQ model's weights are float constants for the passes after it.
Status fold_dequantize(Graph& g);

// Folds an inference BatchNormalization into the Conv or Gemm (constant float32 weights) whose
// only consumer it is: scaled weights and a new bias, as new initializers; a Conv's Mul / Add by
// per-channel constants (tf2onnx's BatchNorm) too.
Status fold_batchnorm(Graph& g);

// A zero constant Pad of the spatial axes before a Conv becomes the Conv's own padding
// (fold_pad.cc).
Status fold_pad(Graph& g);

// x * (1 + erf(x / sqrt 2)) * 0.5, as exporters write GELU, becomes one Gelu node.
Status fuse_gelu(Graph& g);

// onnxruntime's dynamic quantization, Cast(MatMulInteger) * (a_scale * b_scale) [+ bias] with
// constant int8 weights, becomes com.microsoft MatMulIntegerToFloat (fuse_matmul_integer.cc).
Status fuse_matmul_integer(Graph& g);

// MatMul with a constant float32 matrix followed by Add of a constant bias vector becomes
// com.mserve.FusedMatMul (fuse_matmul_bias.cc).
Status fuse_matmul_bias(Graph& g);

// The decomposed LayerNorm of older exports becomes LayerNormalization; a residual Add feeding
// a LayerNormalization becomes com.mserve.SkipLayerNormalization (fuse_layer_norm.cc).
Status fuse_layer_norm(Graph& g);

// softmax(scale * Q K^T + mask) V as exporters write it becomes com.mserve.MultiHeadAttention,
// the head-split Transposes around it folded away where they are (fuse_attention.cc).
Status fuse_attention(Graph& g);

// A Transpose of a MatMul operand's last two dims becomes transA / transB of a
// com.mserve.FusedMatMul, a constant scalar Mul / Div of the product its alpha
// (fuse_matmul_transpose.cc).
Status fuse_matmul_transpose(Graph& g);

// Moves a Relu, LeakyRelu, Clip (constant bounds), HardSwish, Gelu, Tanh or Sigmoid whose input
// is a float Conv, Gemm or MatMul output used by nothing else into that node
// (kernels/fused_activation.h). Runs after fuse_gelu and fuse_matmul_bias.
Status fuse_activation(Graph& g);

// An Add of an NhwcConv output (read by nothing else) and another tensor, and the activation
// after it when it is the sum's only reader, move into the NhwcConv (input 3, mserve_residual;
// mserve_after_activation): ResNet's residual join runs as a oneDNN sum post-op.
Status fuse_conv_residual(Graph& g);

// A per-tensor QuantizeLinear -> DequantizeLinear pair with one scale and zero point becomes
// com.mserve QuantizeDequantize (fold_qdq_pairs.cc); runs last.
Status fold_qdq_pairs(Graph& g);

}  // namespace mserve
