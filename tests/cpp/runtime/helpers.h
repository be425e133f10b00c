// Test helpers: build Graph IR directly, run it, and compare against references.
#pragma once
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "core/exec/session.h"
#include "core/graph/graph.h"

namespace mserve::testing {

class GraphBuilder {
 public:
  GraphBuilder() {
    g_.opsets[""] = 17;
    g_.ir_version = 8;
  }
  GraphBuilder& opset(int v) {
    g_.opsets[""] = v;
    return *this;
  }
  int value(const std::string& name) {
    int id = g_.find_value(name);
    if (id >= 0) return id;
    g_.values.push_back(Value{name, DType::kUndefined, false, {}});
    return static_cast<int>(g_.values.size()) - 1;
  }
  GraphBuilder& input(const std::string& name, DType t, std::vector<int64_t> dims) {
    int id = value(name);
    g_.values[id].dtype = t;
    g_.values[id].has_shape = true;
    for (int64_t d : dims) g_.values[id].dims.push_back(d >= 0 ? Dim{d, ""} : Dim{-1, "s" + std::to_string(-d)});
    g_.inputs.push_back(id);
    return *this;
  }
  GraphBuilder& constant(const std::string& name, Tensor t) {
    g_.initializers[value(name)] = std::move(t);
    return *this;
  }
  Node& node(const std::string& op, std::vector<std::string> ins, std::vector<std::string> outs) {
    Node n;
    n.name = op + std::to_string(g_.nodes.size());
    n.op_type = op;
    n.opset = static_cast<int>(g_.opsets[""]);
    for (auto& i : ins) n.inputs.push_back(i.empty() ? kNoValue : value(i));
    for (auto& o : outs) n.outputs.push_back(value(o));
    g_.nodes.push_back(std::move(n));
    return g_.nodes.back();
  }
  GraphBuilder& output(const std::string& name) {
    g_.outputs.push_back(value(name));
    return *this;
  }
  Graph build() const { return g_; }

 private:
  Graph g_;
};

inline Attribute ints_attr(std::vector<int64_t> v) {
  Attribute a;
  a.kind = Attribute::Kind::kInts;
  a.ints = std::move(v);
  return a;
}
inline Attribute int_attr(int64_t v) {
  Attribute a;
  a.kind = Attribute::Kind::kInt;
  a.i = v;
  return a;
}
inline Attribute float_attr(float v) {
  Attribute a;
  a.kind = Attribute::Kind::kFloat;
  a.f = v;
  return a;
}
inline Attribute string_attr(std::string s) {
  Attribute a;
  a.kind = Attribute::Kind::kString;
  a.s = std::move(s);
  return a;
}

inline Tensor random_tensor(const Shape& s, uint32_t seed, float lo = -1.f, float hi = 1.f) {
  auto t = Tensor::empty(DType::kFloat32, s).value();
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = dist(rng);
  return t;
}

inline std::vector<Tensor> run_graph(const Graph& g, const std::vector<Tensor>& inputs, int threads = 2,
                                     bool optimize = true) {
  SessionOptions o;
  o.threads = threads;
  o.optimize = optimize;
  auto s = Session::create(g, o);
  EXPECT_TRUE(s.ok()) << s.status().message();
  if (!s.ok()) return {};
  std::vector<Tensor> outs;
  Status st = s.value()->run(inputs, &outs);
  EXPECT_TRUE(st.ok()) << st.message();
  return outs;
}

inline void expect_close(const Tensor& got, const std::vector<double>& want, const Shape& want_shape,
                         double rtol = 1e-4, double atol = 1e-5) {
  ASSERT_EQ(got.shape(), want_shape) << "got " << got.shape().str() << " want " << want_shape.str();
  ASSERT_EQ(static_cast<size_t>(got.numel()), want.size());
  for (int64_t i = 0; i < got.numel(); ++i) {
    double g = got.float_at(i);
    ASSERT_LE(std::abs(g - want[i]), atol + rtol * std::abs(want[i])) << "at flat index " << i;
  }
}

}  // namespace mserve::testing
