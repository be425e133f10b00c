#include <onnx/onnx_pb.h>

#include <cstdio>
#include <fstream>

#include "core/onnx/loader.h"
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

TEST(Loader, RawDataIsUsedInPlace) {
  auto m = add_model();
  auto* w = m.mutable_graph()->mutable_initializer(0);
  w->clear_float_data();
  float vals[4] = {1, 2, 3, 4};
  w->set_raw_data(std::string(reinterpret_cast<char*>(vals), 16));
  auto g = load(m).value();
  const Tensor& t = g.initializers.begin()->second;
  EXPECT_FALSE(t.buffer()->owned());  // a view of the parsed bytes
  EXPECT_EQ(t.data<float>()[3], 4.f);
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
