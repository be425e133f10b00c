// String tensors: lifetime of owned string buffers, the planner's owned storage for string
// intermediates, and the safety net that refuses string tensors in byte-copying kernels.
#include <gtest/gtest.h>

#include "core/plan/plan.h"
#include "helpers.h"

namespace mserve::testing {

// Longer than any small-string buffer, so each element owns heap memory.
static std::string long_string(int i) { return "a string that does not fit in place #" + std::to_string(i); }

static Tensor strings(const Shape& s, int base = 0) {
  auto t = Tensor::empty(DType::kString, s).value();
  for (int64_t i = 0; i < t.numel(); ++i) t.str(i) = long_string(base + static_cast<int>(i));
  return t;
}

TEST(StringTensor, ConstructedEmptyAndNamed) {
  auto t = Tensor::empty(DType::kString, Shape{2, 3}).value();
  EXPECT_EQ(t.numel(), 6);
  for (int64_t i = 0; i < t.numel(); ++i) EXPECT_TRUE(t.str(i).empty());
  EXPECT_EQ(dtype_size(DType::kString), sizeof(std::string));
  EXPECT_STREQ(dtype_name(DType::kString), "string");
  EXPECT_EQ(t.desc(), "string[2, 3]");
  auto z = Tensor::empty(DType::kString, Shape{0, 4}).value();
  EXPECT_EQ(z.numel(), 0);
}

TEST(StringTensor, CloneIsDeepAndOutlivesTheSource) {
  Tensor copy;
  {
    Tensor t = strings(Shape{3});
    copy = t.clone().value();
    EXPECT_NE(copy.raw(), t.raw());
    t.str(0) = "changed";
    EXPECT_EQ(copy.str(0), long_string(0));
  }  // the source's buffer (and its strings) are destroyed here
  for (int64_t i = 0; i < 3; ++i) EXPECT_EQ(copy.str(i), long_string(static_cast<int>(i)));
}

TEST(StringTensor, ViewsShareTheBufferUntilTheLastGoes) {
  std::weak_ptr<Buffer> weak;
  Tensor view;
  {
    Tensor t = strings(Shape{2, 2});
    weak = t.buffer();
    view = t.reshaped(Shape{4});
  }
  EXPECT_FALSE(weak.expired());
  EXPECT_EQ(view.str(3), long_string(3));
  view = Tensor();
  EXPECT_TRUE(weak.expired());
}

TEST(StringTensor, CopyDataAssignsElements) {
  Tensor a = strings(Shape{4}), b = strings(Shape{4}, 10);
  copy_data(a, b);
  for (int64_t i = 0; i < 4; ++i) EXPECT_EQ(b.str(i), a.str(i));
  EXPECT_NE(&b.str(0), &a.str(0));
}

TEST(StringTensor, IntermediatesGetOwnedStorageNotTheArena) {
  // x -> Transpose -> t -> Reshape -> y: t is a string intermediate.
  GraphBuilder b;
  b.input("x", DType::kString, {2, 3});
  b.constant("shape", Tensor::from<int64_t>(Shape{1}, {6}));
  b.node("Transpose", {"x"}, {"t"});
  b.node("Reshape", {"t", "shape"}, {"y"});
  b.output("y");
  Program p;
  p.graph = b.build();
  p.order = topological_order(p.graph).value();
  ASSERT_TRUE(create_kernels(p).ok());
  ThreadPool pool(1);
  auto plan = make_plan(p, {ValueInfo{DType::kString, Shape{2, 3}, nullptr}}, pool).value();
  EXPECT_EQ(plan->values[p.graph.find_value("t")].storage, Storage::kOwned);
  EXPECT_EQ(plan->arena_bytes, 0u);

  Tensor x = strings(Shape{2, 3});
  for (int run = 0; run < 3; ++run) {  // the run context is reused: owned values are released
    auto outs = run_graph(p.graph, {x});
    ASSERT_EQ(outs.size(), 1u);
    const int order[6] = {0, 3, 1, 4, 2, 5};
    for (int i = 0; i < 6; ++i) EXPECT_EQ(outs[0].str(i), long_string(order[i]));
  }
}

TEST(StringTensor, ByteCopyingKernelsRefuseStrings) {
  for (const char* op : {"Relu", "Neg", "Tile", "Pad"}) {
    GraphBuilder b;
    b.input("x", DType::kString, {2});
    if (std::string(op) == "Tile") b.constant("r", Tensor::from<int64_t>(Shape{1}, {2}));
    if (std::string(op) == "Pad") b.constant("r", Tensor::from<int64_t>(Shape{2}, {1, 1}));
    const bool two = std::string(op) == "Tile" || std::string(op) == "Pad";
    b.node(op, two ? std::vector<std::string>{"x", "r"} : std::vector<std::string>{"x"}, {"y"});
    b.output("y");
    auto s = Session::create(b.build(), SessionOptions{});
    if (std::string(op) == "Tile") {  // Tile assigns strings element-wise
      EXPECT_TRUE(s.ok()) << s.status().message();
      continue;
    }
    ASSERT_FALSE(s.ok()) << op;
    EXPECT_EQ(s.status().code(), Code::kUnsupported) << op;
    EXPECT_NE(s.status().message().find("string tensors are not supported"), std::string::npos) << s.status().message();
  }
}

TEST(StringTensor, SafetyNetAlsoHoldsForUnshapedInputs) {
  // No declared shape: no trial plan at load, but the declared dtype is checked.
  GraphBuilder b;
  b.input("x", DType::kString, {2});
  Graph g = b.build();
  g.values[g.inputs[0]].has_shape = false;
  g.values[g.inputs[0]].dims.clear();
  Node n;
  n.name = "add";
  n.op_type = "Add";
  n.opset = 17;
  n.inputs = {g.inputs[0], g.inputs[0]};
  g.values.push_back(Value{"y", DType::kUndefined, false, {}});
  n.outputs = {static_cast<int>(g.values.size()) - 1};
  g.nodes.push_back(n);
  g.outputs.push_back(n.outputs[0]);
  auto s = Session::create(g, SessionOptions{});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), Code::kUnsupported);
}

}  // namespace mserve::testing
