// Where the zoo's models would run with the CUDA backend, decided on this machine: the CUDA
// backend's own kernels and plan-time checks, with host memory standing in for the GPU's (the
// kernels are never run here). The transformers and CNNs must run entirely on the GPU, except
// what needs a GPU to plan (cuDNN's algorithm choice), which says so.
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "core/exec/session.h"
#include "gpu/context.h"

namespace mserve::gpu {
namespace {

// CudaBackend's kernel table with host memory: enough to plan, nothing to run.
class PlanOnlyCuda : public CudaBackend {
 public:
  explicit PlanOnlyCuda(GpuOptions opts = {}) : CudaBackend(opts) {}
  std::shared_ptr<Buffer> allocate(size_t bytes) const override { return Buffer::allocate(bytes); }
  Status upload(const void* host, void* device, size_t bytes) const override {
    std::memcpy(device, host, bytes);
    return Status::OK();
  }
  Status download(const void* device, void* host, size_t bytes) const override {
    std::memcpy(host, device, bytes);
    return Status::OK();
  }
};

struct Placed {
  int gpu = 0, cpu = 0;
  std::map<std::string, std::string> fallbacks;  // op -> reason
};

Placed place(const std::string& model, Precision precision = Precision::kFp32) {
  SessionOptions o;
  o.threads = 1;
  GpuOptions g;
  g.precision = precision;
  o.backend = std::make_shared<PlanOnlyCuda>(g);
  auto s = Session::load_file(std::string(MSERVE_SOURCE_DIR) + "/tests/models/" + model + ".onnx", o);
  EXPECT_TRUE(s.ok()) << s.status().message();
  Placed p;
  if (!s.ok()) return p;
  auto placement = s.value()->placement();
  EXPECT_TRUE(placement) << model << ": no plan at load";
  if (!placement) return p;
  p.gpu = placement->device_nodes;
  p.cpu = placement->cpu_nodes;
  for (const auto& f : placement->fallbacks) p.fallbacks[f.op] = f.reason;
  return p;
}

std::string describe(const Placed& p) {
  std::string s;
  for (const auto& [op, why] : p.fallbacks) s += "\n  " + op + ": " + why;
  return s;
}

TEST(ZooPlacement, TransformersRunEntirelyOnTheGpu) {
  for (Precision precision : {Precision::kFp32, Precision::kFp16, Precision::kBf16})
    for (const char* model : {"bert_encoder", "gpt_decoder"}) {
      const Placed p = place(model, precision);
      EXPECT_GT(p.gpu, 10) << model << " " << precision_name(precision);
      EXPECT_EQ(p.cpu, 0) << model << " " << precision_name(precision) << " leaves nodes on the CPU:" << describe(p);
    }
}

TEST(ZooPlacement, CnnsRunOnTheGpuButForCudnnPlanning) {
  for (const char* model : {"resnet18", "mobilenet_v2", "mobilenet_v3_small", "cnn_nhwc", "mlp"}) {
    const Placed p = place(model);
    EXPECT_GT(p.gpu, 0) << model;
    for (const auto& [op, why] : p.fallbacks) {
      // Without a GPU, cuDNN cannot choose an algorithm at plan time; on a GPU it does.
      const bool needs_gpu = why.find("cuDNN is not usable here") != std::string::npos;
      EXPECT_TRUE(needs_gpu) << model << ": " << op << " stays on the CPU: " << why;
    }
  }
}

}  // namespace
}  // namespace mserve::gpu
