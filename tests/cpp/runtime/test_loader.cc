#include <onnx/onnx_pb.h>

#include <cstdio>
#include <fstream>

#include "core/onnx/loader.h"
#include "core/onnx/skeleton.h"
#include "helpers.h"

namespace mserve::testing {

// y = x + W, W a 2x2 float initializer.
static onnx::ModelProto add_model() {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(17);
  auto* g = m.mutable_graph();
  g->set_name("g");
  auto* n = g->add_node();
  n->set_op_type("Add");
  n->set_name("add");
  n->add_input("x");
  n->add_input("W");
  n->add_output("y");
  auto* w = g->add_initializer();
  w->set_name("W");
  w->set_data_type(onnx::TensorProto::FLOAT);
  w->add_dims(2);
  w->add_dims(2);
  for (float v : {1.f, 2.f, 3.f, 4.f}) w->add_float_data(v);
  for (auto* vi : {g->add_input(), g->add_output()}) {
    auto* tt = vi->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(onnx::TensorProto::FLOAT);
    tt->mutable_shape()->add_dim()->set_dim_param("batch");
    tt->mutable_shape()->add_dim()->set_dim_value(2);
  }
  g->mutable_input(0)->set_name("x");
  g->mutable_output(0)->set_name("y");
  return m;
}

static StatusOr<Graph> load(const onnx::ModelProto& m, const std::string& dir = "") {
  std::string bytes = m.SerializeAsString();
  return load_onnx_bytes(bytes.data(), bytes.size(), dir);
}

TEST(Loader, LoadsGraphWithSymbolicDims) {
  auto g = load(add_model());
  ASSERT_TRUE(g.ok()) << g.status().message();
  const Graph& graph = g.value();
  ASSERT_EQ(graph.inputs.size(), 1u);
  const Value& x = graph.values[graph.inputs[0]];
  EXPECT_EQ(x.dtype, DType::kFloat32);
  EXPECT_EQ(x.dims[0].symbol, "batch");
  EXPECT_EQ(x.dims[1].value, 2);
  EXPECT_EQ(graph.opsets.at(""), 17);
  EXPECT_EQ(graph.initializers.size(), 1u);
}

// Writes `m` to a fresh file with the initializer's raw_data at `align` mod 64 (the model's
// doc_string pads it there); returns the path.
static std::string write_with_raw_at(onnx::ModelProto m, const std::string& raw, size_t align) {
  for (size_t pad = 0; pad < 64; ++pad) {
    m.set_doc_string(std::string(pad, 'd'));
    const std::string bytes = m.SerializeAsString();
    const size_t at = bytes.find(raw);
    if (at == std::string::npos || at % 64 != align) continue;
    static int n = 0;
    const std::string path = ::testing::TempDir() + "/raw_at_" + std::to_string(n++) + ".onnx";
    std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    return path;
  }
  return "";
}

TEST(Loader, FileWeightsViewTheFileWhereAligned) {
  auto m = add_model();
  auto* w = m.mutable_graph()->mutable_initializer(0);
  w->clear_float_data();
  const float vals[4] = {1, 2, 3, 4};
  const std::string raw(reinterpret_cast<const char*>(vals), 16);
  w->set_raw_data(raw);
  for (size_t align : {0, 4, 1, 2, 3, 5}) {
    const std::string path = write_with_raw_at(m, raw, align);
    ASSERT_FALSE(path.empty());
    auto g = load_onnx_file(path);
    ASSERT_TRUE(g.ok()) << g.status().message();
    const Tensor& t = g.value().initializers.begin()->second;
    // A float32 at a multiple of 4 views the mapping; elsewhere it is copied (64-byte aligned).
    EXPECT_EQ(t.buffer()->owned(), align % 4 != 0) << "align " << align;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.raw()) % 4, 0u);
    for (int i = 0; i < 4; ++i) EXPECT_EQ(t.data<float>()[i], vals[i]);
    std::remove(path.c_str());
  }
  // From bytes, weights are copied out (the bytes are the caller's).
  auto g = load(m);
  ASSERT_TRUE(g.ok()) << g.status().message();
  const Tensor& t = g.value().initializers.begin()->second;
  EXPECT_TRUE(t.buffer()->owned());
  EXPECT_EQ(t.data<float>()[3], 4.f);
}

// A model whose tensors sit on every path the loader reads: an initializer, a Constant node's
// value, and an initializer and a Constant inside an If branch.
static onnx::ModelProto nested_model() {
  auto m = add_model();
  auto* w = m.mutable_graph()->mutable_initializer(0);
  w->clear_float_data();
  const float vals[4] = {1, 2, 3, 4};
  w->set_raw_data(std::string(reinterpret_cast<const char*>(vals), 16));
  auto* g = m.mutable_graph();
  auto raw_tensor = [](onnx::TensorProto* t, const std::string& name, float v) {
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::FLOAT);
    t->add_dims(2);
    const float two[2] = {v, v + 1};
    t->set_raw_data(std::string(reinterpret_cast<const char*>(two), 8));
  };
  auto* c = g->add_node();
  c->set_op_type("Constant");
  c->add_output("c");
  auto* ca = c->add_attribute();
  ca->set_name("value");
  ca->set_type(onnx::AttributeProto::TENSOR);
  raw_tensor(ca->mutable_t(), "c", 10);
  auto* cond = g->add_initializer();
  cond->set_name("cond");
  cond->set_data_type(onnx::TensorProto::BOOL);
  cond->set_raw_data(std::string(1, '\1'));
  auto* n = g->add_node();
  n->set_op_type("If");
  n->add_input("cond");
  n->add_output("z");
  for (const char* branch : {"then_branch", "else_branch"}) {
    auto* a = n->add_attribute();
    a->set_name(branch);
    a->set_type(onnx::AttributeProto::GRAPH);
    auto* sg = a->mutable_g();
    sg->set_name(branch);
    raw_tensor(sg->add_initializer(), std::string(branch) + "_w", 20);
    auto* add = sg->add_node();
    add->set_op_type("Add");
    add->add_input(std::string(branch) + "_w");
    add->add_input("c");
    add->add_output(std::string(branch) + "_out");
    auto* o = sg->add_output();
    o->set_name(std::string(branch) + "_out");
    o->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
  }
  auto* z = g->add_output();
  z->set_name("z");
  auto* tt = z->mutable_type()->mutable_tensor_type();
  tt->set_elem_type(onnx::TensorProto::FLOAT);
  tt->mutable_shape()->add_dim()->set_dim_value(2);
  return m;
}

TEST(Skeleton, StripsRawDataOnEveryPathAndParses) {
  const std::string bytes = nested_model().SerializeAsString();
  auto sk = strip_weights(bytes.data(), bytes.size());
  ASSERT_TRUE(sk.ok()) << sk.status().message();
  ASSERT_EQ(sk.value().weights.size(), 5u);  // W, c, cond, two branch initializers
  size_t stripped = 0;
  for (const WeightSpan& w : sk.value().weights) {
    ASSERT_LE(w.offset + w.size, bytes.size());
    stripped += w.size;
  }
  EXPECT_EQ(stripped, 16u + 8u + 1u + 8u + 8u);
  onnx::ModelProto parsed;
  ASSERT_TRUE(parsed.ParseFromString(sk.value().bytes));  // padded lengths parse
  EXPECT_FALSE(parsed.graph().initializer(0).has_raw_data());
  EXPECT_FALSE(parsed.graph().node(2).attribute(0).g().initializer(0).has_raw_data());
  EXPECT_EQ(parsed.graph().node(2).attribute(1).g().node(0).output(0), "else_branch_out");

  // The whole model loads, from a file and from bytes, with every weight in place.
  auto g = load(nested_model());
  ASSERT_TRUE(g.ok()) << g.status().message();
  const Graph& graph = g.value();
  const Tensor* c = nullptr;
  const Graph* then_g = nullptr;
  for (const Node& n : graph.nodes) {
    if (const Attribute* a = n.attr("value")) c = &a->t;
    if (const Attribute* a = n.attr("then_branch")) then_g = a->g.get();
  }
  ASSERT_TRUE(c && then_g);
  EXPECT_EQ(c->data<float>()[1], 11.f);
  ASSERT_EQ(then_g->initializers.size(), 1u);
  EXPECT_EQ(then_g->initializers.begin()->second.data<float>()[1], 21.f);
}

TEST(Skeleton, AModelCannotNameWeightBytes) {
  // A tensor that carries the skeleton's reference field itself (pointing at the other
  // tensor's bytes): the field is dropped, the tensor's own values are used.
  auto m = nested_model();
  auto* w = m.mutable_graph()->mutable_initializer(0);
  w->clear_raw_data();
  for (float v : {7.f, 8.f, 9.f, 10.f}) w->add_float_data(v);
  w->mutable_unknown_fields()->AddVarint(static_cast<int>(kWeightRefField), 0);
  auto g = load(m);
  ASSERT_TRUE(g.ok()) << g.status().message();
  EXPECT_EQ(g.value().initializers.at(g.value().find_value("W")).data<float>()[0], 7.f);
}

TEST(Skeleton, UnknownGroupsAndEveryTruncationAreHandled) {
  std::string bytes = nested_model().SerializeAsString();
  // An unknown field 50 as a group (start, a varint field inside, end): skipped as protobuf does.
  std::string with_group = bytes + std::string("\x93\x03\x08\x01\x94\x03", 6);
  auto g = load_onnx_bytes(with_group.data(), with_group.size());
  EXPECT_TRUE(g.ok()) << g.status().message();
  // An end group without a start is malformed.
  std::string stray = bytes + std::string("\x94\x03", 2);
  EXPECT_FALSE(load_onnx_bytes(stray.data(), stray.size()).ok());
  // Every prefix either loads (a cut between top-level fields) or is a clear error; none crash.
  for (size_t cut = 0; cut < bytes.size(); ++cut) {
    auto r = load_onnx_bytes(bytes.data(), cut);
    if (!r.ok()) {
      const Code code = r.status().code();
      EXPECT_TRUE(code == Code::kLoadError || code == Code::kUnsupported) << r.status().message();
    }
  }
}

TEST(Loader, RejectsGarbage) {
  const char junk[] = "this is certainly not a protobuf \xff\xff\xff";
  auto g = load_onnx_bytes(junk, sizeof(junk));
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.status().code(), Code::kLoadError);
  EXPECT_NE(g.status().message().find("not an ONNX model"), std::string::npos);
}

TEST(Loader, RejectsTruncated) {
  std::string bytes = add_model().SerializeAsString();
  for (size_t cut : {bytes.size() / 3, bytes.size() / 2, bytes.size() - 3}) {
    auto g = load_onnx_bytes(bytes.data(), cut);
    EXPECT_FALSE(g.ok()) << "cut at " << cut;
  }
}

TEST(Loader, RejectsNewerIr) {
  auto m = add_model();
  m.set_ir_version(kMaxIrVersion + 1);
  auto g = load(m);
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.status().message().find("IR version"), std::string::npos);
}

TEST(Loader, RejectsMissingInitializerData) {
  auto m = add_model();
  m.mutable_graph()->mutable_initializer(0)->clear_float_data();
  auto g = load(m);
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.status().message().find("missing initializer data"), std::string::npos) << g.status().message();
}

TEST(Loader, ExternalDataMustStayInModelDir) {
  auto m = add_model();
  auto* w = m.mutable_graph()->mutable_initializer(0);
  w->clear_float_data();
  w->set_data_location(onnx::TensorProto::EXTERNAL);
  auto* kv = w->add_external_data();
  kv->set_key("location");
  kv->set_value("../../etc/passwd");
  auto g = load(m, "/tmp");
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.status().message().find("leaves the model's directory"), std::string::npos) << g.status().message();
}

TEST(Loader, ExternalDataIsMapped) {
  char tmpl[] = "/tmp/mserve_ext_XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  std::string dir = tmpl;
  {
    std::ofstream f(dir + "/w.bin", std::ios::binary);
    float vals[4] = {5, 6, 7, 8};
    f.write("pad!", 4);
    f.write(reinterpret_cast<char*>(vals), 16);
  }
  auto m = add_model();
  auto* w = m.mutable_graph()->mutable_initializer(0);
  w->clear_float_data();
  w->set_data_location(onnx::TensorProto::EXTERNAL);
  for (auto [k, v] : {std::pair{"location", "w.bin"}, {"offset", "4"}, {"length", "16"}}) {
    auto* kv = w->add_external_data();
    kv->set_key(k);
    kv->set_value(v);
  }
  auto g = load(m, dir);
  ASSERT_TRUE(g.ok()) << g.status().message();
  const Tensor& t = g.value().initializers.begin()->second;
  EXPECT_EQ(t.data<float>()[0], 5.f);
  EXPECT_EQ(t.data<float>()[3], 8.f);
  // Without a directory the data cannot be found: a clear error.
  EXPECT_FALSE(load(m).ok());
  std::remove((dir + "/w.bin").c_str());
  std::remove(dir.c_str());
}

TEST(Loader, UnknownInputIsAnError) {
  auto m = add_model();
  m.mutable_graph()->clear_initializer();
  auto g = load(m);
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.status().message().find("'W' is not produced"), std::string::npos) << g.status().message();
}

}  // namespace mserve::testing
