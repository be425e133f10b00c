// Runs 2-D float32 convs channels-last, where oneDNN is fastest, without a layout change around
// every conv: each Conv becomes Transpose(NCHW -> NHWC) -> com.mserve.NhwcConv -> Transpose back,
// then Transposes are pushed below layout-blind element-wise ops (op_list.inc's element-wise
// column: unary ops such as activations, per-tensor Quantize/DequantizeLinear; binary ops of two
// tensors transposed alike, or of a scalar) and inverse pairs cancel, so a chain of convs, activations and residual
// adds keeps channels-last data from its first conv to its last and changes layout only where an op needs NCHW
// (pooling, Flatten, Reshape, a graph output). Global pooling becomes a reduction over the channels-last H and W axes;
// 2-D Max/AveragePool runs channels-last (com.mserve NhwcMaxPool / NhwcAveragePool).
#include <string>
#include <vector>

#include "core/kernels/dnnl_conv.h"
#include "core/kernels/registry.h"
#include "core/passes/passes.h"

namespace mserve {
namespace {

const std::vector<int64_t> kToNhwc{0, 2, 3, 1}, kToNchw{0, 3, 1, 2};

// Element-wise ops (op_list.inc) are layout-blind: a Transpose below their input moves below
// their output.
bool is_unary_elementwise(const Node& n) {
  return !n.inputs.empty() && n.outputs.size() == 1 && elementwise(n) == OpInfo::Elementwise::kUnary;
}

bool is_binary_elementwise(const Node& n) {
  return n.inputs.size() == 2 && n.outputs.size() == 1 && elementwise(n) == OpInfo::Elementwise::kNary;
}

class Rewriter {
 public:
  explicit Rewriter(Graph& g) : g_(g) {
    auto it = g.opsets.find("");
    onnx_opset_ = it == g.opsets.end() ? 0 : it->second;
  }
  bool usable() const { return onnx_opset_ > 0; }

  int fresh_value(int like) {
    Value v;
    v.name = g_.values[like].name + "/nhwc";
    v.dtype = g_.values[like].dtype;
    return g_.add_value(std::move(v));
  }

  void add_transpose(int in, int out, const std::vector<int64_t>& perm) {
    Node t;
    t.op_type = "Transpose";
    t.opset = static_cast<int>(onnx_opset_);
    t.inputs = {in};
    t.outputs = {out};
    t.attrs["perm"] = Attribute::of_ints(perm);
    added_.push_back(std::move(t));
  }

  // GlobalAveragePool / GlobalMaxPool over channels-last `in` as ReduceMean / ReduceMax over
  // axes 1 and 2 (keepdims), writing `out` ([N, 1, 1, C]).
  void add_global_reduce(const std::string& pool, int in, int out) {
    Node r;
    r.op_type = pool == "GlobalAveragePool" ? "ReduceMean" : "ReduceMax";
    r.opset = 18;  // the axes-input form, which the importer gives every Reduce (onnx/normalize.h)
    r.inputs = {in};
    r.outputs = {out};
    r.attrs["keepdims"] = Attribute::of_int(1);
    Value axes;
    axes.name = g_.values[out].name + "/axes";
    axes.dtype = DType::kInt64;
    const int id = g_.add_value(std::move(axes));
    g_.initializers[id] = Tensor::from<int64_t>(Shape{2}, {1, 2});
    r.inputs.push_back(id);
    added_.push_back(std::move(r));
  }

  // com.mserve NhwcMaxPool / NhwcAveragePool of channels-last `in` with `pool`'s attributes.
  void add_nhwc_pool(const Node& pool, int in, int out) {
    Node p;
    p.op_type = "Nhwc" + pool.op_type;
    p.domain = "com.mserve";
    p.opset = 1;
    p.attrs = pool.attrs;
    p.attrs["mserve_source_opset"] = Attribute::of_int(pool.opset);
    p.inputs = {in};
    p.outputs = {out};
    added_.push_back(std::move(p));
  }

  void flush() {
    for (Node& n : added_) g_.nodes.push_back(std::move(n));
    added_.clear();
  }

  const Graph& graph() const { return g_; }

 private:
  Graph& g_;
  int64_t onnx_opset_ = 0;
  std::vector<Node> added_;
};

// A Conv nhwc_convs turns into NhwcConv: 2-D, float32 constant weights (and bias).
bool convertible(const Graph& g, const Node& n) {
  if (n.op_type != "Conv" || !n.domain.empty() || n.inputs.size() < 2 || n.outputs.size() != 1) return false;
  if (n.inputs[0] == kNoValue || n.outputs[0] == kNoValue) return false;
  auto w = g.initializers.find(n.inputs[1]);
  if (w == g.initializers.end() || w->second.dtype() != DType::kFloat32 || w->second.rank() != 4) return false;
  if (n.inputs.size() > 2 && n.inputs[2] != kNoValue) {
    auto b = g.initializers.find(n.inputs[2]);
    if (b == g.initializers.end() || b->second.dtype() != DType::kFloat32) return false;
  }
  const Value& x = g.values[n.inputs[0]];
  return x.dtype == DType::kFloat32 || x.dtype == DType::kUndefined;
}

// A QLinearConv it turns into NhwcQLinearConv (oneDNN's int8 convolution, where
// DnnlConv::int8_supported()): 2-D, int8 weights with zero zero points, every quantization parameter constant,
// scales float32, one for X and Y, B int32 [M] or absent.
bool qlinear_convertible(const Graph& g, const Node& n) {
  if (n.op_type != "QLinearConv" || !n.domain.empty() || n.inputs[0] == kNoValue) return false;
  if (!DnnlConv::int8_supported() || n.inputs.size() < 8 || n.outputs.size() != 1) return false;
  const Attribute* ap = n.attr("auto_pad");
  if (ap && ap->s != "NOTSET") return false;
  auto at = [&](size_t i) -> const Tensor* {
    if (i >= n.inputs.size() || n.inputs[i] == kNoValue) return nullptr;
    auto it = g.initializers.find(n.inputs[i]);
    return it == g.initializers.end() ? nullptr : &it->second;
  };
  const Tensor *xs = at(1), *xz = at(2), *w = at(3), *ws = at(4), *wz = at(5), *ys = at(6), *yz = at(7), *b = at(8);
  if (!xs || !xz || !w || !ws || !ys || !yz || (n.inputs.size() > 8 && n.inputs[8] != kNoValue && !b)) return false;
  if (w->dtype() != DType::kInt8 || w->rank() != 4) return false;
  const int64_t M = w->dim(0);
  for (const Tensor* t : {xs, ys, ws})
    if (t->dtype() != DType::kFloat32) return false;
  if (xs->numel() != 1 || ys->numel() != 1 || (ws->numel() != 1 && ws->numel() != M)) return false;
  for (const Tensor* t : {xz, yz})
    if (t->numel() != 1 || (t->dtype() != DType::kUInt8 && t->dtype() != DType::kInt8)) return false;
  if (wz) {
    if (wz->dtype() != DType::kInt8) return false;
    for (int64_t i = 0; i < wz->numel(); ++i)
      if (wz->data<int8_t>()[i] != 0) return false;
  }
  return !b || (b->dtype() == DType::kInt32 && b->numel() == M);
}

bool perm_is(const Node& n, const std::vector<int64_t>& perm) {
  const Attribute* a = n.attr("perm");
  return a && a->ints == perm;
}

}  // namespace

Status nhwc_convs(Graph& g) {
  Rewriter rw(g);
  if (!rw.usable()) return Status::OK();
  bool any = false;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const bool quantized = qlinear_convertible(g, g.nodes[i]);
    if (!quantized && !convertible(g, g.nodes[i])) continue;
    Node& n = g.nodes[i];
    const int x = n.inputs[0], y = n.outputs[0];
    const int xt = rw.fresh_value(x), yt = rw.fresh_value(y);
    n.op_type = quantized ? "NhwcQLinearConv" : "NhwcConv";
    if (quantized) {  // the 8-bit types, for the passes below that must tell them apart
      g.values[xt].dtype = g.initializers.at(n.inputs[2]).dtype();
      g.values[yt].dtype = g.initializers.at(n.inputs[7]).dtype();
    }
    n.domain = "com.mserve";
    n.opset = 1;
    n.inputs[0] = xt;
    n.outputs[0] = yt;
    rw.add_transpose(x, xt, kToNhwc);
    rw.add_transpose(yt, y, kToNchw);
    any = true;
  }
  rw.flush();
  if (!any) return Status::OK();

  auto graph_output = [&](int v) {
    for (int o : g.outputs)
      if (o == v) return true;
    return false;
  };
  for (bool changed = true; changed;) {
    changed = false;
    // The Transpose producing each value (node index), if any.
    std::vector<int> producer(g.values.size(), -1);
    for (size_t i = 0; i < g.nodes.size(); ++i)
      for (int v : g.nodes[i].outputs)
        if (v != kNoValue && v < static_cast<int>(producer.size())) producer[v] = static_cast<int>(i);
    auto transposed_from = [&](int v, const std::vector<int64_t>& perm) -> int {
      if (v == kNoValue || producer[v] < 0) return kNoValue;
      const Node& t = g.nodes[producer[v]];
      return t.op_type == "Transpose" && t.domain.empty() && perm_is(t, perm) ? t.inputs[0] : kNoValue;
    };
    auto is_scalar_constant = [&](int v) {
      auto it = g.initializers.find(v);
      return it != g.initializers.end() && it->second.numel() == 1;
    };
    // Quantize/DequantizeLinear with one scale and zero point are element-wise too (a static
    // QDQ model has them between every two convs).
    auto is_per_tensor_qdq = [&](const Node& n) {
      if ((n.op_type != "QuantizeLinear" && n.op_type != "DequantizeLinear") || !n.domain.empty() ||
          n.inputs.size() < 2 || n.outputs.size() != 1 || n.attr_int("block_size", 0) != 0)
        return false;
      for (size_t k = 1; k < n.inputs.size(); ++k)
        if (n.inputs[k] != kNoValue && !is_scalar_constant(n.inputs[k])) return false;
      return true;
    };
    // 8-bit data (NhwcMaxPool / NhwcAveragePool take floats): by its dtype where known, else
    // by what writes it.
    auto eight_bit = [&](int v) {
      const DType t = g.values[v].dtype;
      if (t == DType::kUInt8 || t == DType::kInt8) return true;
      if (t != DType::kUndefined) return false;
      for (const Node& p : g.nodes)
        for (int o : p.outputs)
          if (o == v)
            return p.op_type == "NhwcQLinearConv" || p.op_type == "QuantizeLinear" || p.op_type == "Lookup8" ||
                   p.op_type.rfind("QLinear", 0) == 0 || p.op_type == "DynamicQuantizeLinear";
      return false;
    };
    std::vector<int> replace(g.values.size());
    for (size_t v = 0; v < replace.size(); ++v) replace[v] = static_cast<int>(v);
    const size_t count = g.nodes.size();
    for (size_t i = 0; i < count; ++i) {
      Node& n = g.nodes[i];
      // NHWC -> NCHW -> NHWC (or the reverse): readers of the outer result read the inner input.
      if (n.op_type == "Transpose" && n.domain.empty() && !graph_output(n.outputs[0])) {
        for (const auto& [outer, inner] : {std::pair{kToNhwc, kToNchw}, std::pair{kToNchw, kToNhwc}}) {
          if (!perm_is(n, outer)) continue;
          const int src = transposed_from(n.inputs[0], inner);
          if (src != kNoValue) {
            replace[n.outputs[0]] = src;
            changed = true;
          }
        }
        continue;
      }
      // Global pooling of channels-last data reduces over H and W in place: the Transpose
      // moves to the pooled [N, 1, 1, C] result.
      if ((n.op_type == "GlobalAveragePool" || n.op_type == "GlobalMaxPool") && n.domain.empty() &&
          n.inputs.size() == 1 && n.outputs.size() == 1) {
        const int a = transposed_from(n.inputs[0], kToNchw);
        if (a != kNoValue) {
          const int w = n.outputs[0], fresh = rw.fresh_value(w);
          rw.add_global_reduce(n.op_type, a, fresh);
          rw.add_transpose(fresh, w, kToNchw);
          n.outputs[0] = rw.fresh_value(w);  // the old node is now dead
          changed = true;
        }
        continue;
      }
      // 2-D Max/AveragePool of channels-last data runs channels-last (no Indices output).
      if ((n.op_type == "MaxPool" || n.op_type == "AveragePool") && n.domain.empty() && n.inputs.size() == 1 &&
          n.outputs.size() == 1) {
        const Attribute* ks = n.attr("kernel_shape");
        const int a = transposed_from(n.inputs[0], kToNchw);
        if (a != kNoValue && ks && ks->ints.size() == 2 && !eight_bit(a)) {
          const int w = n.outputs[0], fresh = rw.fresh_value(w);
          rw.add_nhwc_pool(n, a, fresh);
          rw.add_transpose(fresh, w, kToNchw);
          n.outputs[0] = rw.fresh_value(w);  // the old node is now dead
          changed = true;
        }
        continue;
      }
      // op(Transpose(a)) -> Transpose(op(a)) for layout-blind element-wise ops.
      for (const auto& perm : {kToNchw, kToNhwc}) {
        if (is_unary_elementwise(n) || is_per_tensor_qdq(n)) {
          const int a = transposed_from(n.inputs[0], perm);
          if (a == kNoValue) continue;
          const int w = n.outputs[0], fresh = rw.fresh_value(w);
          n.inputs[0] = a;
          n.outputs[0] = fresh;
          rw.add_transpose(fresh, w, perm);
          changed = true;
          break;
        }
        if (is_binary_elementwise(n)) {
          int in[2];
          bool ok = true;
          for (int k = 0; k < 2 && ok; ++k) {
            in[k] = transposed_from(n.inputs[k], perm);
            if (in[k] == kNoValue) {
              if (is_scalar_constant(n.inputs[k]))
                in[k] = n.inputs[k];
              else
                ok = false;
            }
          }
          if (!ok || (in[0] == n.inputs[0] && in[1] == n.inputs[1])) continue;  // needs one transposed side
          const int w = n.outputs[0], fresh = rw.fresh_value(w);
          n.inputs = {in[0], in[1]};
          n.outputs[0] = fresh;
          rw.add_transpose(fresh, w, perm);
          changed = true;
          break;
        }
      }
    }
    rw.flush();
    for (Node& n : g.nodes)
      for (int& v : n.inputs)
        if (v != kNoValue && v < static_cast<int>(replace.size())) v = replace[v];
    if (changed) MS_RETURN_IF_ERROR(remove_dead_nodes(g));
  }
  return Status::OK();
}

}  // namespace mserve
