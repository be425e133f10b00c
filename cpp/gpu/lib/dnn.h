// cuDNN convolutions for the CUDA kernels (legacy API: one file, quick to compile): float32 data,
// or float16 / bfloat16 data and filters with float32 accumulation (cuDNN's "pseudo half"
// configurations, on the tensor cores); NCHW or NHWC data, filters as ONNX stores them
// [M, C / group, kh, kw]. No CUDA headers here.
//
// A ConvPlan holds the tensor, filter and convolution descriptors of one shape (they need no
// GPU, so they are built and checked at plan time everywhere); the algorithm comes from cuDNN's
// heuristic (never an exhaustive search) and, with its workspace size, is chosen at plan time
// where a GPU is present (prepare), cached with the plan.
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "core/status.h"
#include "gpu/options.h"

namespace mserve::gpu {

class CudaContext;

struct ConvSpec {
  bool nhwc = false;                   // data layout of x and y (the filter is always [M, C/g, kh, kw])
  int64_t n = 0, c = 0, h = 0, w = 0;  // x
  int64_t m = 0, kh = 0, kw = 0;       // filter
  int64_t pad_h = 0, pad_w = 0, stride_h = 1, stride_w = 1, dil_h = 1, dil_w = 1;
  int64_t groups = 1;
  bool tf32 = false;             // allow TF32 tensor cores (off: exact fp32 FMA math); float32 data only
  Operand data = Operand::kF32;  // x's, the filter's and y's element type
  std::string str() const;
  bool operator==(const ConvSpec& o) const;
};

class ConvPlan {
 public:
  // Validates the spec and builds the descriptors (no device needed).
  static StatusOr<std::shared_ptr<ConvPlan>> create(const ConvSpec& spec);
  ~ConvPlan();
  ConvPlan(const ConvPlan&) = delete;
  ConvPlan& operator=(const ConvPlan&) = delete;

  const ConvSpec& spec() const { return spec_; }
  // The output [n, m, oh, ow] as cuDNN computes it from the descriptors.
  Status output_dims(int64_t dims[4]) const;
  // Picks the algorithm with cuDNN's heuristic on `cudnn` (a cudnnHandle_t) and returns the
  // workspace bytes it needs; idempotent.
  StatusOr<size_t> prepare(void* cudnn);
  // prepare()'s bytes (0 before it ran).
  size_t workspace_bytes() const;
  // y = conv(x, w) on ctx's stream, with `workspace` of at least prepare()'s bytes; x, w and y of
  // the spec's data type.
  Status run(CudaContext& ctx, const void* x, const void* w, void* y, void* workspace) const;

  // For tests: the descriptors' element and compute types and math type, read back from cuDNN
  // (cudnnDataType_t / cudnnMathType_t values).
  struct Types {
    int x = -1, w = -1, y = -1, compute = -1, math = -1;
  };
  Types types() const;

 private:
  explicit ConvPlan(const ConvSpec& s) : spec_(s) {}
  ConvSpec spec_;
  void* x_desc_ = nullptr;
  void* y_desc_ = nullptr;
  void* w_desc_ = nullptr;
  void* conv_desc_ = nullptr;
  mutable std::mutex mu_;
  bool prepared_ = false;
  int algo_ = 0;  // cudnnConvolutionFwdAlgo_t
  size_t workspace_ = 0;
};

// A cuDNN handle for plan-time queries (algorithms, workspace sizes): one per process, created
// on first use; an error where no GPU is present.
StatusOr<void*> planning_cudnn();

}  // namespace mserve::gpu
