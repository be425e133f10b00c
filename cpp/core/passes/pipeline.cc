#include "core/passes/passes.h"

namespace mserve {

// Order matters: clean-up first (so fusions see real producers and consumers); 16-bit floats
// widened to float32 before any pass looks for float32 weights; constant weights dequantized
// before any pass looks for float weights; BatchNorm folded
// into its Conv/Gemm before any fusion reads those nodes; the bias Add joined to its MatMul before
// the LayerNorm and attention patterns look for it; Gelu recognised before fuse_activation moves
// it into its producer; the channels-last rewrite after the activation fusions and before the
// residual join, which only NhwcConv takes; the activations' Q/DQ pairs folded last, once the
// passes that read them around convs and products have. Constant folding needs kernels:
// plan/planner.cc.
Status optimize_graph(Graph& g) {
  MS_RETURN_IF_ERROR(remove_identities(g));
  MS_RETURN_IF_ERROR(remove_dead_nodes(g));
  MS_RETURN_IF_ERROR(inline_constants(g));
  MS_RETURN_IF_ERROR(widen_half_floats(g));
  MS_RETURN_IF_ERROR(fuse_qdq_conv(g));
  MS_RETURN_IF_ERROR(fuse_qdq_matmul(g));
  MS_RETURN_IF_ERROR(fold_dequantize(g));
  MS_RETURN_IF_ERROR(fuse_lookup8(g));
  MS_RETURN_IF_ERROR(fold_batchnorm(g));
  MS_RETURN_IF_ERROR(fold_pad(g));
  MS_RETURN_IF_ERROR(fuse_matmul_integer(g));
  MS_RETURN_IF_ERROR(fuse_matmul_bias(g));
  MS_RETURN_IF_ERROR(fuse_layer_norm(g));
  MS_RETURN_IF_ERROR(fuse_attention(g));
  MS_RETURN_IF_ERROR(fuse_matmul_transpose(g));
  MS_RETURN_IF_ERROR(fuse_gelu(g));
  MS_RETURN_IF_ERROR(fuse_activation(g));
  MS_RETURN_IF_ERROR(nhwc_convs(g));
  MS_RETURN_IF_ERROR(fold_lookup8_into_convs(g));
  MS_RETURN_IF_ERROR(fuse_qdq_binary(g));
  MS_RETURN_IF_ERROR(fuse_conv_residual(g));
  MS_RETURN_IF_ERROR(fold_qdq_pairs(g));
  return Status::OK();
}

}  // namespace mserve
