#include "core/onnx/normalize.h"

#include <set>
#include <string>
#include <utility>
#include <vector>

namespace mserve {
namespace {

class Normalizer {
 public:
  explicit Normalizer(Graph& g) : g_(g) {
    for (const Value& v : g_.values) names_.insert(v.name);
  }

  Status run() {
    std::vector<Node> nodes;
    nodes.reserve(g_.nodes.size());
    for (Node& n : g_.nodes) {
      std::vector<Node> before, after;
      if ((n.domain.empty() || n.domain == "com.microsoft") && n.unsupported.empty()) {
        Status st = n.domain.empty() ? rewrite(n, before, after) : rewrite_contrib(n, before);
        if (!st.ok()) return st.with_context(n.where());
      }
      for (Node& b : before) nodes.push_back(std::move(b));
      nodes.push_back(std::move(n));
      for (Node& a : after) nodes.push_back(std::move(a));
    }
    g_.nodes = std::move(nodes);
    return Status::OK();
  }

 private:
  Status rewrite(Node& n, std::vector<Node>& before, std::vector<Node>& after) {
    const std::string& op = n.op_type;
    if (op == "Clip" && n.opset < 11) return clip(n);
    if (op == "Split") return split(n);
    if (op == "Slice" && n.opset < 10) return slice(n);
    if (op == "Pad") return pad(n);
    if ((op == "Squeeze" || op == "Unsqueeze" || op == "ReduceSum") && n.opset < 13)
      return axes_to_input(n, op == "Unsqueeze", 13);
    if (op.compare(0, 6, "Reduce") == 0 && op != "ReduceSum" && n.opset < 18) return axes_to_input(n, false, 18);
    if (op == "TopK" && n.opset < 10) return topk(n);
    if (op == "Upsample" && n.opset < 10) return upsample(n);
    if ((op == "Softmax" || op == "LogSoftmax" || op == "Hardmax") && n.opset < 13) return softmax(n, before, after);
    if (op == "BatchNormalization") return batchnorm(n);
    return Status::OK();
  }

  Status rewrite_contrib(Node& n, std::vector<Node>& before) {
    if (n.op_type == "QAttention") return qattention(n, before);
    if (n.op_type == "QEmbedLayerNormalization") return qembed_layer_norm(n, before);
    return Status::OK();
  }

  static int input_at(const Node& n, size_t i) { return i < n.inputs.size() ? n.inputs[i] : kNoValue; }

  // DequantizeLinear(q, scale, zero_point) of `n`'s inputs qi, si, zi (zi may be absent) placed
  // before `n`; its float output.
  int dequantized(const Node& n, const std::string& what, size_t qi, size_t si, size_t zi, std::vector<Node>& before) {
    Node dq;
    dq.name = n.name + "/mserve_dequantize_" + what;
    dq.op_type = "DequantizeLinear";
    dq.opset = 13;
    dq.inputs = {input_at(n, qi), input_at(n, si)};
    if (input_at(n, zi) != kNoValue) dq.inputs.push_back(input_at(n, zi));
    const int out = new_value(n, what);
    dq.outputs = {out};
    before.push_back(std::move(dq));
    return out;
  }

  Status qattention(Node& n, std::vector<Node>& before) {
    for (size_t i : {0, 1, 3, 4})
      if (input_at(n, i) == kNoValue)
        return InvalidArgument("QAttention needs input, weight, input_scale and weight_scale (inputs 0, 1, 3, 4)");
    const int x = dequantized(n, "input", 0, 3, 6, before);
    const int w = dequantized(n, "weight", 1, 4, 7, before);  // per column: DequantizeLinear's axis 1
    n.inputs = {x, w, input_at(n, 2), input_at(n, 5), input_at(n, 8)};
    while (n.inputs.size() > 2 && n.inputs.back() == kNoValue) n.inputs.pop_back();
    n.op_type = "Attention";
    return Status::OK();
  }

  Status qembed_layer_norm(Node& n, std::vector<Node>& before) {
    static const char* const kTables[] = {"word_embedding", "position_embedding", "segment_embedding", "gamma", "beta"};
    std::vector<int> inputs = {input_at(n, 0), input_at(n, 1)};
    for (size_t t = 0; t < 5; ++t) {
      const size_t qi = 2 + t;
      if (input_at(n, qi) == kNoValue) {
        if (t == 2) {  // no segments
          inputs.push_back(kNoValue);
          continue;
        }
        return InvalidArgument(std::string("QEmbedLayerNormalization needs ") + kTables[t] + " (input " +
                               std::to_string(qi) + ")");
      }
      if (input_at(n, 8 + t) == kNoValue)
        return InvalidArgument(std::string("QEmbedLayerNormalization needs ") + kTables[t] + "_scale (input " +
                               std::to_string(8 + t) + ")");
      inputs.push_back(dequantized(n, kTables[t], qi, 8 + t, 13 + t, before));
    }
    inputs.push_back(input_at(n, 7));  // mask
    while (inputs.size() > 7 && inputs.back() == kNoValue) inputs.pop_back();
    n.inputs = std::move(inputs);
    n.op_type = "EmbedLayerNormalization";
    return Status::OK();
  }

  // A fresh value named after `n`'s first output.
  int new_value(const Node& n, const std::string& what) {
    std::string base =
        (n.outputs.empty() || n.outputs[0] == kNoValue ? n.name : g_.values[n.outputs[0]].name) + "/mserve_" + what;
    std::string name = base;
    for (int k = 1; names_.count(name); ++k) name = base + "_" + std::to_string(k);
    names_.insert(name);
    Value v;
    v.name = name;
    return g_.add_value(std::move(v));
  }

  int add_constant(const Node& n, const std::string& what, Tensor t) {
    const int id = new_value(n, what);
    Value& v = g_.values[id];
    v.dtype = t.dtype();
    v.has_shape = true;
    for (int64_t d : t.shape()) v.dims.push_back(Dim{d, ""});
    g_.initializers[id] = std::move(t);
    return id;
  }

  StatusOr<int> add_ints(const Node& n, const std::string& what, const std::vector<int64_t>& ints) {
    MS_ASSIGN_OR_RETURN(Tensor t, Tensor::empty(DType::kInt64, Shape{static_cast<int64_t>(ints.size())}));
    std::copy(ints.begin(), ints.end(), t.data<int64_t>());
    return add_constant(n, what, std::move(t));
  }

  // A scalar of `v` in the dtype the graph declares for `like` when that is a float type, else
  // float32.
  StatusOr<int> add_float(const Node& n, const std::string& what, float v, int like) {
    DType dt = DType::kUndefined;
    if (like != kNoValue) {
      auto it = g_.initializers.find(like);
      dt = it != g_.initializers.end() ? it->second.dtype() : g_.values[like].dtype;
    }
    if (!dtype_is_float(dt)) dt = DType::kFloat32;
    MS_ASSIGN_OR_RETURN(Tensor t, Tensor::empty(dt, Shape{}));
    MS_SWITCH_FLOAT(dt, T, return Internal("float dtype"), t.data<T>()[0] = static_cast<T>(v));
    return add_constant(n, what, std::move(t));
  }

  // The rank of `v` where the graph declares it, else -1.
  int known_rank(int v) const {
    auto it = g_.initializers.find(v);
    if (it != g_.initializers.end()) return it->second.rank();
    return g_.values[v].has_shape ? static_cast<int>(g_.values[v].dims.size()) : -1;
  }

  // Places `id` at input `i`, padding with omitted inputs.
  static void set_input(Node& n, size_t i, int id) {
    if (n.inputs.size() <= i) n.inputs.resize(i + 1, kNoValue);
    n.inputs[i] = id;
  }

  static StatusOr<const Attribute*> ints_attr(const Node& n, const std::string& key, bool required) {
    const Attribute* a = n.attr(key);
    if (!a) {
      if (required) return InvalidArgument("attribute '" + key + "' is required");
      return nullptr;
    }
    if (a->kind != Attribute::Kind::kInts) return InvalidArgument("attribute '" + key + "' must be a list of ints");
    return a;
  }

  static StatusOr<const Attribute*> float_attr(const Node& n, const std::string& key) {
    const Attribute* a = n.attr(key);
    if (a && a->kind != Attribute::Kind::kFloat) return InvalidArgument("attribute '" + key + "' must be a float");
    return a;
  }

  Status clip(Node& n) {
    n.inputs.resize(1);
    const char* keys[2] = {"min", "max"};
    for (int i = 0; i < 2; ++i) {
      MS_ASSIGN_OR_RETURN(const Attribute* a, float_attr(n, keys[i]));
      if (!a) continue;
      MS_ASSIGN_OR_RETURN(int id, add_float(n, keys[i], a->f, n.inputs[0]));
      set_input(n, i + 1, id);
      n.attrs.erase(keys[i]);
    }
    n.opset = 11;
    return Status::OK();
  }

  Status split(Node& n) {
    // num_outputs is only defined from opset 18; older models that carry it never meant it.
    if (n.opset < 18) n.attrs.erase("num_outputs");
    if (n.opset >= 13) return Status::OK();
    MS_ASSIGN_OR_RETURN(const Attribute* a, ints_attr(n, "split", false));
    // Opset 1 takes the split from the attribute or, without one, an optional second input;
    // opsets 2..12 only from the attribute.
    if (n.opset >= 2 || (a && !a->ints.empty())) n.inputs.resize(1);
    if (a && !a->ints.empty()) {
      MS_ASSIGN_OR_RETURN(int id, add_ints(n, "split", a->ints));
      set_input(n, 1, id);
    }
    n.attrs.erase("split");
    n.opset = 13;
    return Status::OK();
  }

  Status slice(Node& n) {
    MS_ASSIGN_OR_RETURN(const Attribute* s, ints_attr(n, "starts", true));
    MS_ASSIGN_OR_RETURN(const Attribute* e, ints_attr(n, "ends", true));
    MS_ASSIGN_OR_RETURN(const Attribute* a, ints_attr(n, "axes", false));
    n.inputs.resize(1);
    MS_ASSIGN_OR_RETURN(int starts, add_ints(n, "starts", s->ints));
    MS_ASSIGN_OR_RETURN(int ends, add_ints(n, "ends", e->ints));
    set_input(n, 1, starts);
    set_input(n, 2, ends);
    if (a && !a->ints.empty()) {
      MS_ASSIGN_OR_RETURN(int axes, add_ints(n, "axes", a->ints));
      set_input(n, 3, axes);
    }
    for (const char* k : {"starts", "ends", "axes"}) n.attrs.erase(k);
    n.opset = 10;
    return Status::OK();
  }

  Status pad(Node& n) {
    if (n.opset >= 18) return Status::OK();
    // The axes input is only defined from opset 18.
    if (n.opset >= 11) {
      if (n.inputs.size() > 3) n.inputs.resize(3);
      return Status::OK();
    }
    const std::string key = n.opset < 2 ? "paddings" : "pads";
    MS_ASSIGN_OR_RETURN(const Attribute* p, ints_attr(n, key, true));
    MS_ASSIGN_OR_RETURN(const Attribute* v, float_attr(n, "value"));
    n.inputs.resize(1);
    MS_ASSIGN_OR_RETURN(int pads, add_ints(n, "pads", p->ints));
    set_input(n, 1, pads);
    if (v && v->f != 0.0f) {  // an omitted constant_value pads with zeros
      MS_ASSIGN_OR_RETURN(int value, add_float(n, "value", v->f, n.inputs[0]));
      set_input(n, 2, value);
    }
    for (const char* k : {"paddings", "pads", "value"}) n.attrs.erase(k);
    n.opset = 11;
    return Status::OK();
  }

  Status axes_to_input(Node& n, bool required, int to) {
    MS_ASSIGN_OR_RETURN(const Attribute* a, ints_attr(n, "axes", required));
    n.inputs.resize(1);
    // An empty list means the same as none: all axes (Squeeze: every axis of size 1).
    if (a && (!a->ints.empty() || required)) {
      MS_ASSIGN_OR_RETURN(int id, add_ints(n, "axes", a->ints));
      set_input(n, 1, id);
    }
    n.attrs.erase("axes");
    n.opset = to;
    return Status::OK();
  }

  Status topk(Node& n) {
    const Attribute* a = n.attr("k");
    if (!a || a->kind != Attribute::Kind::kInt) return InvalidArgument("attribute 'k' is required before opset 10");
    if (a->i < 0) return InvalidArgument("k must be >= 0, got " + std::to_string(a->i));
    n.inputs.resize(1);
    MS_ASSIGN_OR_RETURN(int id, add_ints(n, "k", {a->i}));
    set_input(n, 1, id);
    n.attrs.erase("k");
    n.opset = 10;
    return Status::OK();
  }

  Status upsample(Node& n) {
    if (n.opset < 9) {
      const Attribute* s = n.attr("scales");
      if (!s || s->kind != Attribute::Kind::kFloats || s->floats.empty())
        return InvalidArgument("Upsample-7 needs the scales attribute");
      MS_ASSIGN_OR_RETURN(Tensor t, Tensor::empty(DType::kFloat32, Shape{static_cast<int64_t>(s->floats.size())}));
      std::copy(s->floats.begin(), s->floats.end(), t.data<float>());
      n.inputs.resize(1);
      set_input(n, 1, add_constant(n, "scales", std::move(t)));
      n.attrs.erase("scales");
    }
    // Upsample only enlarges; Resize would also shrink.
    if (n.inputs.size() > 1 && n.inputs[1] != kNoValue) {
      auto it = g_.initializers.find(n.inputs[1]);
      if (it != g_.initializers.end() && dtype_is_float(it->second.dtype()))
        for (int64_t i = 0; i < it->second.numel(); ++i)
          if (!(it->second.float_at(i) >= 1)) return InvalidArgument("Upsample scales must be >= 1");
    }
    if (n.attr_string("mode", "nearest") == "bilinear") n.attrs["mode"] = Attribute::of_string("linear");
    n.op_type = "Resize";
    n.opset = 10;
    return Status::OK();
  }

  Status softmax(Node& n, std::vector<Node>& before, std::vector<Node>& after) {
    if (n.inputs.size() != 1 || n.outputs.size() != 1 || n.inputs[0] == kNoValue || n.outputs[0] == kNoValue)
      return Status::OK();  // malformed: left for the kernel to report
    const int64_t axis = n.attr_int("axis", 1);
    const int rank = known_rank(n.inputs[0]);
    if (axis == -1 || (rank > 0 && axis == rank - 1)) {
      n.attrs["axis"] = Attribute::of_int(-1);
      n.opset = 13;
      return Status::OK();
    }
    // Rows of the flattened 2-D view: X [d0..dn] -> [prod(d0..axis-1), prod(axis..dn)], the op along
    // the last axis, and back to X's shape.
    const int x = n.inputs[0], y = n.outputs[0];
    const int shape = new_value(n, "shape"), flat = new_value(n, "flat"), flat_y = new_value(n, "flat_out");
    Node s;
    s.name = n.name + "/mserve_shape";
    s.op_type = "Shape";
    s.opset = 13;
    s.inputs = {x};
    s.outputs = {shape};
    Node f;
    f.name = n.name + "/mserve_flatten";
    f.op_type = "Flatten";
    f.opset = 13;
    f.inputs = {x};
    f.outputs = {flat};
    f.attrs["axis"] = Attribute::of_int(axis);
    Node r;
    r.name = n.name + "/mserve_reshape";
    r.op_type = "Reshape";
    r.opset = 13;
    r.inputs = {flat_y, shape};
    r.outputs = {y};
    n.inputs = {flat};
    n.outputs = {flat_y};
    n.attrs["axis"] = Attribute::of_int(-1);
    n.opset = 13;
    before.push_back(std::move(s));
    before.push_back(std::move(f));
    after.push_back(std::move(r));
    return Status::OK();
  }

  Status batchnorm(Node& n) {
    n.attrs.erase("is_test");
    n.attrs.erase("consumed_inputs");
    if (n.opset >= 9) {
      n.attrs.erase("spatial");  // not defined from opset 9 on: always spatial
      return Status::OK();
    }
    if (n.attr_int("spatial", 1) == 0) return Status::OK();  // per-sample parameters: no newer form
    n.attrs.erase("spatial");
    n.opset = 9;
    return Status::OK();
  }

  Graph& g_;
  std::set<std::string> names_;
};

}  // namespace

Status normalize_opsets(Graph& g) { return Normalizer(g).run(); }

}  // namespace mserve
