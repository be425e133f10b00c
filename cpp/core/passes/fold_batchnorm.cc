// Folds an inference BatchNormalization into the Conv or Gemm that feeds it: with
// a = scale / sqrt(var + eps) per output channel, W' = W * a (per output channel) and
// bias' = (bias - mean) * a + B, computed in double from the constants. The producer must have
// constant weights (and bias), its output must feed only the BN, and new initializers are made
// (the originals may be shared).
#include <cmath>
#include <string>
#include <vector>

#include "core/kernels/fused_activation.h"
#include "core/passes/graph_index.h"
#include "core/passes/passes.h"

namespace mserve {
namespace {

const Tensor* constant(const Graph& g, const Node& n, size_t i) {
  if (i >= n.inputs.size() || n.inputs[i] == kNoValue) return nullptr;
  auto it = g.initializers.find(n.inputs[i]);
  return it == g.initializers.end() ? nullptr : &it->second;
}

bool absent(const Node& n, size_t i) { return i >= n.inputs.size() || n.inputs[i] == kNoValue; }

// A new float32 initializer value named after `base`.
int add_constant(Graph& g, const std::string& base, Tensor t) {
  return add_initializer(g, base + "/folded_batchnorm", std::move(t));
}

// Per-channel a and b of an inference BatchNormalization with constant float32 parameters
// over `channels` channels; false when it is not one.
bool bn_affine(const Graph& g, const Node& bn, int64_t channels, std::vector<double>* a, std::vector<double>* b) {
  if (bn.inputs.size() != 5) return false;
  if (bn.attr_int("training_mode", 0) != 0 || (bn.opset < 9 && bn.attr_int("spatial", 1) != 1)) return false;
  for (size_t o = 1; o < bn.outputs.size(); ++o)
    if (bn.outputs[o] != kNoValue) return false;
  const Tensor* p[4];
  for (int k = 0; k < 4; ++k) {
    p[k] = constant(g, bn, 1 + k);
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

// Rewrites producer `n` (Conv or Gemm) to compute BN(n(x)); false when it cannot.
bool fold_into(Graph& g, Node& n, const Node& bn) {
  const bool conv = n.op_type == "Conv";
  const Tensor* w = constant(g, n, 1);
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
  if (!absent(n, 2)) {
    bias = constant(g, n, 2);
    if (!bias || bias->dtype() != DType::kFloat32) return false;
    const bool per_channel = bias->numel() == M && (bias->rank() == 1 || (bias->rank() == 2 && bias->dim(0) == 1));
    if (!per_channel && !(bias->numel() == 1 && !conv)) return false;
  }
  std::vector<double> a, b;
  if (!bn_affine(g, bn, M, &a, &b)) return false;
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
  n.outputs[0] = bn.outputs[0];
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
    if (fold_into(g, n, bn)) removed[i] = true;
  }
  erase_nodes(g, removed);
  return Status::OK();
}

}  // namespace mserve
