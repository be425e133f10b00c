// Folds an inference BatchNormalization into the Conv or Gemm that feeds it: with
// a = scale / sqrt(var + eps) per output channel, W' = W * a (per output channel) and
// bias' = (bias - mean) * a + B, computed in double from the constants. The producer must have
// constant weights (and bias), its output must feed only the BN, and new initializers are made
// (the originals may be shared). A Mul or Add of a Conv's output by a per-channel constant (a
// BatchNorm as tf2onnx writes it: Mul by [C, 1, 1], Add of [C, 1, 1]) folds the same way, with
// (a, b) = (c, 0) or (1, c).
#include <cmath>
#include <string>
#include <vector>

#include "core/kernels/fused_activation.h"
#include "core/passes/graph_index.h"
#include "core/passes/passes.h"

namespace mserve {
namespace {

// A new float32 initializer value named after `base`.
int add_constant(Graph& g, const std::string& base, Tensor t) {
  return add_initializer(g, base + "/folded_batchnorm", std::move(t));
}

// Per-channel a and b of an inference BatchNormalization with constant float32 parameters
// over `channels` channels; false when it is not one.
bool bn_affine(const Graph& g, const Node& /*producer*/, const Node& bn, int64_t channels, std::vector<double>* a,
               std::vector<double>* b) {
  if (bn.inputs.size() != 5) return false;
  if (bn.attr_int("training_mode", 0) != 0 || (bn.opset < 9 && bn.attr_int("spatial", 1) != 1)) return false;
  for (size_t o = 1; o < bn.outputs.size(); ++o)
    if (bn.outputs[o] != kNoValue) return false;
  const Tensor* p[4];
  for (int k = 0; k < 4; ++k) {
    p[k] = input_constant(g, bn, 1 + k);
    if (!p[k] || p[k]->dtype() != DType::kFloat32 || p[k]->rank() != 1 || p[k]->dim(0) != channels) return false;
  }
  const double eps = bn.attr_float("epsilon", 1e-5f);
  a->resize(channels);
  b->resize(channels);
  for (int64_t c = 0; c < channels; ++c) {
    const double scale = p[0]->data<float>()[c], bias = p[1]->data<float>()[c];
    const double mean = p[2]->data<float>()[c], var = p[3]->data<float>()[c];
    (*a)[c] = scale / std::sqrt(var + eps);
    (*b)[c] = bias - mean * (*a)[c];
  }
  return true;
}

// Per-channel (a, b) over M channels, or false.
using AffineOf = bool (*)(const Graph& g, const Node& producer, const Node& op, int64_t M, std::vector<double>* a,
                          std::vector<double>* b);

// The constant operand of a Mul or Add of a Conv's output (rank `out_rank`) when it is one value
// or one per channel (dims 1 but the channel axis), not widening the output's rank.
const Tensor* per_channel_operand(const Graph& g, const Node& op, int x, int64_t out_rank, int64_t M) {
  if (op.inputs.size() != 2) return nullptr;
  const int other = op.inputs[0] == x ? op.inputs[1] : op.inputs[0];
  if (op.inputs[0] == op.inputs[1]) return nullptr;
  auto it = g.initializers.find(other);
  if (it == g.initializers.end() || it->second.dtype() != DType::kFloat32) return nullptr;
  const Tensor& c = it->second;
  if (c.rank() > out_rank) return nullptr;
  if (c.numel() == 1) return &c;
  const int64_t axis = c.rank() - (out_rank - 1);  // NCHW's channel axis, aligned right
  if (axis < 0 || c.dim(axis) != M || c.numel() != M) return nullptr;
  return &c;
}

// Rewrites producer `n` (Conv or Gemm) to compute op(n(x)) for the per-channel affine map
// `affine` reads off `op`; false when it cannot.
bool fold_into(Graph& g, Node& n, const Node& op, AffineOf affine) {
  const bool conv = n.op_type == "Conv";
  const Tensor* w = input_constant(g, n, 1);
  if (!w || w->dtype() != DType::kFloat32 || w->numel() == 0) return false;
  int64_t M;           // output channels
  int64_t per = 1;     // weights per output channel (Conv: contiguous; Gemm: see stride)
  int64_t stride = 1;  // Gemm without transB: column j of B is strided
  float alpha = 1, beta = 1;
  if (conv) {
    if (w->rank() < 3) return false;
    M = w->dim(0);
    per = w->numel() / M;
  } else {
    if (w->rank() != 2 || n.attr_int("transA", 0) != 0) return false;
    const bool tb = n.attr_int("transB", 0) != 0;
    M = tb ? w->dim(0) : w->dim(1);
    per = tb ? w->dim(1) : w->dim(0);
    stride = tb ? 1 : M;
    alpha = n.attr_float("alpha", 1.0f);
    beta = n.attr_float("beta", 1.0f);
  }
  const Tensor* bias = nullptr;
  if (!input_absent(n, 2)) {
    bias = input_constant(g, n, 2);
    if (!bias || bias->dtype() != DType::kFloat32) return false;
    const bool per_channel = bias->numel() == M && (bias->rank() == 1 || (bias->rank() == 2 && bias->dim(0) == 1));
    if (!per_channel && !(bias->numel() == 1 && !conv)) return false;
  }
  std::vector<double> a, b;
  if (!affine(g, n, op, M, &a, &b)) return false;
  auto nw = Tensor::empty(DType::kFloat32, w->shape());
  auto nb = Tensor::empty(DType::kFloat32, Shape{M});
  if (!nw.ok() || !nb.ok()) return false;
  const float* src = w->data<float>();
  float* dst = nw.value().data<float>();
  for (int64_t c = 0; c < M; ++c)
    for (int64_t i = 0; i < per; ++i) {
      const int64_t at = conv ? c * per + i : (stride == 1 ? c * per + i : i * M + c);
      dst[at] = static_cast<float>(src[at] * a[c] * (conv ? 1.0 : alpha));
    }
  float* nbp = nb.value().data<float>();
  for (int64_t c = 0; c < M; ++c) {
    const double c0 = bias ? bias->data<float>()[bias->numel() == 1 ? 0 : c] * (conv ? 1.0 : beta) : 0.0;
    nbp[c] = static_cast<float>(c0 * a[c] + b[c]);
  }
  const std::string base = g.values[n.outputs[0]].name;
  const int wid = add_constant(g, base + "/W", std::move(nw).value());
  const int bid = add_constant(g, base + "/B", std::move(nb).value());
  n.inputs.resize(3, kNoValue);
  n.inputs[1] = wid;
  n.inputs[2] = bid;
  if (!conv) {
    n.attrs.erase("alpha");
    n.attrs.erase("beta");
  }
  n.outputs[0] = op.outputs[0];
  return true;
}

// Mul / Add of a per-channel constant after a Conv (its weights give the output's rank).
bool mul_add_affine(const Graph& g, const Node& conv, const Node& op, int64_t M, std::vector<double>* a,
                    std::vector<double>* b) {
  const Tensor* w = input_constant(g, conv, 1);
  const Tensor* c = w ? per_channel_operand(g, op, conv.outputs[0], w->rank(), M) : nullptr;
  if (!c) return false;
  a->assign(M, 1.0);
  b->assign(M, 0.0);
  for (int64_t i = 0; i < M; ++i) {
    const double v = c->data<float>()[c->numel() == 1 ? 0 : i];
    (op.op_type == "Mul" ? (*a)[i] : (*b)[i]) = v;
  }
  return true;
}

}  // namespace

Status fold_batchnorm(Graph& g) {
  GraphIndex ix(g);
  std::vector<int>&uses = ix.uses, &producer = ix.producer;
  std::vector<bool> removed(g.nodes.size(), false);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node& bn = g.nodes[i];
    if (bn.op_type != "BatchNormalization" || !bn.domain.empty() || bn.inputs.empty() || bn.inputs[0] == kNoValue)
      continue;
    const int x = bn.inputs[0];
    if (uses[x] != 1 || producer[x] < 0) continue;
    Node& n = g.nodes[producer[x]];
    if ((n.op_type != "Conv" && n.op_type != "Gemm") || !n.domain.empty() || n.outputs.size() != 1 ||
        FusedActivation::fused(n))
      continue;
    if (fold_into(g, n, bn, bn_affine)) removed[i] = true;
  }
  erase_nodes(g, removed);
  // Mul / Add chains after a Conv, one link per round (each fold moves the Conv's output on).
  for (bool changed = true; changed;) {
    changed = false;
    GraphIndex jx(g);
    std::vector<bool> gone(g.nodes.size(), false);
    for (size_t i = 0; i < g.nodes.size(); ++i) {
      const Node& op = g.nodes[i];
      if ((op.op_type != "Mul" && op.op_type != "Add") || !op.domain.empty() || op.inputs.size() != 2 ||
          op.outputs.size() != 1)
        continue;
      for (int x : op.inputs) {
        if (x == kNoValue || jx.sole_reader(x) != static_cast<int>(i) || jx.producer[x] < 0) continue;
        Node& n = g.nodes[jx.producer[x]];
        if (gone[jx.producer[x]] || n.op_type != "Conv" || !n.domain.empty() || n.outputs.size() != 1 ||
            FusedActivation::fused(n))
          continue;
        if (fold_into(g, n, op, mul_add_affine)) {
          gone[i] = changed = true;
          break;
        }
      }
    }
    erase_nodes(g, gone);
  }
  return Status::OK();
}

}  // namespace mserve
