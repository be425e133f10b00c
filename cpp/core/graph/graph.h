// Graph IR: what the loader produces and the planner consumes. No protobuf types here.
//
// Values are numbered; nodes refer to them by index. A Graph is immutable once loaded and may be
// shared by many sessions/threads.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/tensor/tensor.h"

namespace mserve {

struct Graph;

struct Attribute {
  enum class Kind { kFloat, kInt, kString, kTensor, kGraph, kFloats, kInts, kStrings };
  Kind kind = Kind::kInt;
  float f = 0;
  int64_t i = 0;
  std::string s;
  Tensor t;
  std::shared_ptr<const Graph> g;
  std::vector<float> floats;
  std::vector<int64_t> ints;
  std::vector<std::string> strings;

  // For passes that write attributes.
  static Attribute of_int(int64_t v) {
    Attribute a;
    a.kind = Kind::kInt;
    a.i = v;
    return a;
  }
  static Attribute of_float(float v) {
    Attribute a;
    a.kind = Kind::kFloat;
    a.f = v;
    return a;
  }
  static Attribute of_string(std::string v) {
    Attribute a;
    a.kind = Kind::kString;
    a.s = std::move(v);
    return a;
  }
  static Attribute of_ints(std::vector<int64_t> v) {
    Attribute a;
    a.kind = Kind::kInts;
    a.ints = std::move(v);
    return a;
  }
};

// A dimension of a declared input/output shape: a number, or a symbol (name may be empty
// for an anonymous unknown dimension).
struct Dim {
  int64_t value = -1;  // >= 0 when known
  std::string symbol;
  bool known() const { return value >= 0; }
};

struct Value {
  std::string name;
  DType dtype = DType::kUndefined;  // declared type; kUndefined when the model doesn't say
  bool has_shape = false;           // whether `dims` is meaningful
  std::vector<Dim> dims;
  // A ZipMap output (ONNX type: a sequence of maps): held as a float [N, C] tensor; callers get
  // one {label: score} map per row.
  bool zipmap = false;
  std::vector<int64_t> zipmap_labels;
  std::vector<std::string> zipmap_string_labels;  // classlabels_strings, when the map has string keys
};

constexpr int kNoValue = -1;  // an omitted optional input/output

struct Node {
  std::string name;
  std::string op_type;
  std::string domain;        // "" for the default ONNX domain
  int opset = 0;             // opset version of `domain` imported by the model
  std::vector<int> inputs;   // value ids, kNoValue for omitted optionals
  std::vector<int> outputs;  // value ids, kNoValue for omitted optionals
  std::map<std::string, Attribute> attrs;
  std::string unsupported;  // why the loader could not represent this node; empty when fine
  // Control flow: outer values that the node's subgraphs capture are appended to `inputs`
  // after the explicit ones; this many of them.
  int num_implicit_inputs = 0;

  const Attribute* attr(const std::string& key) const {
    auto it = attrs.find(key);
    return it == attrs.end() ? nullptr : &it->second;
  }
  int64_t attr_int(const std::string& key, int64_t def) const {
    auto* a = attr(key);
    return a ? a->i : def;
  }
  float attr_float(const std::string& key, float def) const {
    auto* a = attr(key);
    return a ? a->f : def;
  }
  std::string attr_string(const std::string& key, const std::string& def) const {
    auto* a = attr(key);
    return a ? a->s : def;
  }
  std::vector<int64_t> attr_ints(const std::string& key) const {
    auto* a = attr(key);
    return a ? a->ints : std::vector<int64_t>{};
  }
  // "node 'name' (OpType): " — the prefix every node-level error message carries.
  std::string where() const;
  // "op Conv, domain 'ai.onnx', opset 11, node 'conv1'" — for unsupported-operator reports.
  std::string describe() const;
};

struct Graph {
  std::vector<Value> values;
  std::vector<Node> nodes;
  std::vector<int> inputs;  // runtime inputs (initializer-backed inputs are excluded)
  std::vector<int> outputs;
  std::unordered_map<int, Tensor> initializers;  // value id -> constant
  std::map<std::string, int64_t> opsets;         // domain -> version
  int64_t ir_version = 0;
  std::string producer;
  // Subgraphs only: `inputs` holds the formal inputs first, then one input per captured outer
  // value; capture_positions[k] is the owning node's input index that feeds capture k.
  size_t num_formal_inputs = 0;
  std::vector<int> capture_positions;

  int find_value(const std::string& name) const;  // -1 if absent
  // Appends a value (for passes); returns its id.
  int add_value(Value v) {
    values.push_back(std::move(v));
    return static_cast<int>(values.size()) - 1;
  }
};

// Whether the graph holds float16 or bfloat16 anywhere: a declared value, a constant, a type
// attribute ('to', 'dtype', 'output_dtype'), a tensor attribute, a subgraph.
bool holds_16bit_floats(const Graph& g);
// The same for one node's attributes (type attributes, tensors, subgraphs).
bool attrs_hold_16bit_floats(const Node& n);

}  // namespace mserve
