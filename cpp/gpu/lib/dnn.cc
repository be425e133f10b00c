#include "gpu/lib/dnn.h"

#include <cuda_runtime.h>
#include <cudnn.h>

#include "gpu/context.h"

// cuDNN 9 marks the legacy convolution API deprecated; it is complete for these convolutions and
// compiles in a fraction of the graph API's time (see cpp/gpu/README.md).
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

namespace mserve::gpu {

namespace {

Status dnn_status(cudnnStatus_t s, const std::string& what) {
  if (s == CUDNN_STATUS_SUCCESS) return Status::OK();
  return Internal("cuDNN " + what + ": " + cudnnGetErrorString(s));
}

#define MS_DNN(expr, what) MS_RETURN_IF_ERROR(dnn_status((expr), (what)))

bool fits_int(int64_t v) { return v >= 0 && v <= (int64_t{1} << 31) - 1; }

cudnnDataType_t data_type(Operand t) {
  switch (t) {
    case Operand::kF32: return CUDNN_DATA_FLOAT;
    case Operand::kF16: return CUDNN_DATA_HALF;
    case Operand::kBf16: return CUDNN_DATA_BFLOAT16;
  }
  return CUDNN_DATA_FLOAT;
}

}  // namespace

std::string ConvSpec::str() const {
  return std::string(nhwc ? "NHWC" : "NCHW") + " conv x=[" + std::to_string(n) + "," + std::to_string(c) + "," +
         std::to_string(h) + "," + std::to_string(w) + "] w=[" + std::to_string(m) + "," +
         std::to_string(groups ? c / groups : 0) + "," + std::to_string(kh) + "," + std::to_string(kw) +
         "] pad=" + std::to_string(pad_h) + "," + std::to_string(pad_w) + " stride=" + std::to_string(stride_h) + "," +
         std::to_string(stride_w) + " dilation=" + std::to_string(dil_h) + "," + std::to_string(dil_w) +
         " groups=" + std::to_string(groups) +
         (data == Operand::kF16    ? " fp16"
          : data == Operand::kBf16 ? " bf16"
                                   : "");
}

bool ConvSpec::operator==(const ConvSpec& o) const {
  return nhwc == o.nhwc && n == o.n && c == o.c && h == o.h && w == o.w && m == o.m && kh == o.kh && kw == o.kw &&
         pad_h == o.pad_h && pad_w == o.pad_w && stride_h == o.stride_h && stride_w == o.stride_w && dil_h == o.dil_h &&
         dil_w == o.dil_w && groups == o.groups && tf32 == o.tf32 && data == o.data;
}

StatusOr<std::shared_ptr<ConvPlan>> ConvPlan::create(const ConvSpec& s) {
  for (int64_t v : {s.n, s.c, s.h, s.w, s.m, s.kh, s.kw, s.stride_h, s.stride_w, s.dil_h, s.dil_w, s.groups})
    if (v < 1 || !fits_int(v)) return InvalidArgument("a GPU convolution needs positive sizes: " + s.str());
  if (!fits_int(s.pad_h) || !fits_int(s.pad_w)) return InvalidArgument("bad padding: " + s.str());
  if (s.c % s.groups || s.m % s.groups) return InvalidArgument("channels do not divide into groups: " + s.str());
  if (s.tf32 && s.data != Operand::kF32) return InvalidArgument("TF32 is for float32 data: " + s.str());
  std::shared_ptr<ConvPlan> p(new ConvPlan(s));
  const cudnnDataType_t type = data_type(s.data);
  const cudnnTensorFormat_t layout = s.nhwc ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW;
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  MS_DNN(cudnnCreateTensorDescriptor(&x), "tensor descriptor");
  p->x_desc_ = x;
  MS_DNN(cudnnCreateTensorDescriptor(&y), "tensor descriptor");
  p->y_desc_ = y;
  MS_DNN(cudnnCreateFilterDescriptor(&w), "filter descriptor");
  p->w_desc_ = w;
  MS_DNN(cudnnCreateConvolutionDescriptor(&conv), "convolution descriptor");
  p->conv_desc_ = conv;
  MS_DNN(cudnnSetTensor4dDescriptor(x, layout, type, int(s.n), int(s.c), int(s.h), int(s.w)), "input " + s.str());
  // The filter's memory order matches the data's: NHWC data takes [M, kh, kw, C/g] filters (the
  // kernel repacks ONNX's [M, C/g, kh, kw] once).
  MS_DNN(cudnnSetFilter4dDescriptor(w, type, layout, int(s.m), int(s.c / s.groups), int(s.kh), int(s.kw)),
         "filter " + s.str());
  MS_DNN(cudnnSetConvolution2dDescriptor(conv, int(s.pad_h), int(s.pad_w), int(s.stride_h), int(s.stride_w),
                                         int(s.dil_h), int(s.dil_w), CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT),
         "convolution " + s.str());
  MS_DNN(cudnnSetConvolutionGroupCount(conv, int(s.groups)), "group count");
  // Accumulation in float32 always ("pseudo half" for 16-bit data). FMA math keeps float32 exact;
  // TF32 converts float32 data for the tensor cores; 16-bit data is the tensor cores' own.
  const cudnnMathType_t math = s.data != Operand::kF32 ? CUDNN_TENSOR_OP_MATH
                               : s.tf32                ? CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION
                                                       : CUDNN_FMA_MATH;
  MS_DNN(cudnnSetConvolutionMathType(conv, math), "math type");
  int64_t out[4];
  MS_RETURN_IF_ERROR(p->output_dims(out));
  MS_DNN(cudnnSetTensor4dDescriptor(y, layout, type, int(out[0]), int(out[1]), int(out[2]), int(out[3])),
         "output " + s.str());
  return p;
}

ConvPlan::~ConvPlan() {
  if (x_desc_) cudnnDestroyTensorDescriptor(static_cast<cudnnTensorDescriptor_t>(x_desc_));
  if (y_desc_) cudnnDestroyTensorDescriptor(static_cast<cudnnTensorDescriptor_t>(y_desc_));
  if (w_desc_) cudnnDestroyFilterDescriptor(static_cast<cudnnFilterDescriptor_t>(w_desc_));
  if (conv_desc_) cudnnDestroyConvolutionDescriptor(static_cast<cudnnConvolutionDescriptor_t>(conv_desc_));
}

Status ConvPlan::output_dims(int64_t dims[4]) const {
  int d[4] = {0, 0, 0, 0};
  MS_DNN(cudnnGetConvolution2dForwardOutputDim(
             static_cast<cudnnConvolutionDescriptor_t>(conv_desc_), static_cast<cudnnTensorDescriptor_t>(x_desc_),
             static_cast<cudnnFilterDescriptor_t>(w_desc_), &d[0], &d[1], &d[2], &d[3]),
         "output size of " + spec_.str());
  for (int i = 0; i < 4; ++i) dims[i] = d[i];
  if (d[2] < 1 || d[3] < 1) return InvalidArgument("empty output for " + spec_.str());
  return Status::OK();
}

StatusOr<size_t> ConvPlan::prepare(void* cudnn) {
  std::lock_guard<std::mutex> lk(mu_);
  if (prepared_) return workspace_;
  auto handle = static_cast<cudnnHandle_t>(cudnn);
  cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
  int found = 0;
  MS_DNN(cudnnGetConvolutionForwardAlgorithm_v7(
             handle, static_cast<cudnnTensorDescriptor_t>(x_desc_), static_cast<cudnnFilterDescriptor_t>(w_desc_),
             static_cast<cudnnConvolutionDescriptor_t>(conv_desc_), static_cast<cudnnTensorDescriptor_t>(y_desc_),
             CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &found, perf),
         "algorithm heuristic for " + spec_.str());
  // The heuristic ranks its candidates; take the first that is supported here and keeps the
  // requested math (no TF32 unless asked for).
  for (int i = 0; i < found; ++i) {
    if (perf[i].status != CUDNN_STATUS_SUCCESS) continue;
    if (!spec_.tf32 && spec_.data == Operand::kF32 && perf[i].mathType != CUDNN_FMA_MATH &&
        perf[i].mathType != CUDNN_DEFAULT_MATH)
      continue;
    size_t bytes = 0;
    if (cudnnGetConvolutionForwardWorkspaceSize(
            handle, static_cast<cudnnTensorDescriptor_t>(x_desc_), static_cast<cudnnFilterDescriptor_t>(w_desc_),
            static_cast<cudnnConvolutionDescriptor_t>(conv_desc_), static_cast<cudnnTensorDescriptor_t>(y_desc_),
            perf[i].algo, &bytes) != CUDNN_STATUS_SUCCESS)
      continue;
    algo_ = perf[i].algo;
    workspace_ = bytes;
    prepared_ = true;
    return workspace_;
  }
  return Unsupported("cuDNN has no algorithm for " + spec_.str());
}

size_t ConvPlan::workspace_bytes() const {
  std::lock_guard<std::mutex> lk(mu_);
  return workspace_;
}

Status ConvPlan::run(CudaContext& ctx, const void* x, const void* w, void* y, void* workspace) const {
  const float one = 1.0f, zero = 0.0f;
  MS_DNN(cudnnConvolutionForward(
             static_cast<cudnnHandle_t>(ctx.cudnn()), &one, static_cast<cudnnTensorDescriptor_t>(x_desc_), x,
             static_cast<cudnnFilterDescriptor_t>(w_desc_), w, static_cast<cudnnConvolutionDescriptor_t>(conv_desc_),
             static_cast<cudnnConvolutionFwdAlgo_t>(algo_), workspace, workspace_, &zero,
             static_cast<cudnnTensorDescriptor_t>(y_desc_), y),
         "convolution " + spec_.str());
  return Status::OK();
}

ConvPlan::Types ConvPlan::types() const {
  Types t;
  cudnnDataType_t d;
  cudnnTensorFormat_t f;
  int n, c, h, w, ns, cs, hs, ws;
  if (cudnnGetTensor4dDescriptor(static_cast<cudnnTensorDescriptor_t>(x_desc_), &d, &n, &c, &h, &w, &ns, &cs, &hs,
                                 &ws) == CUDNN_STATUS_SUCCESS)
    t.x = d;
  if (cudnnGetTensor4dDescriptor(static_cast<cudnnTensorDescriptor_t>(y_desc_), &d, &n, &c, &h, &w, &ns, &cs, &hs,
                                 &ws) == CUDNN_STATUS_SUCCESS)
    t.y = d;
  if (cudnnGetFilter4dDescriptor(static_cast<cudnnFilterDescriptor_t>(w_desc_), &d, &f, &n, &c, &h, &w) ==
      CUDNN_STATUS_SUCCESS)
    t.w = d;
  int ph, pw, sh, sw, dh, dw;
  cudnnConvolutionMode_t mode;
  if (cudnnGetConvolution2dDescriptor(static_cast<cudnnConvolutionDescriptor_t>(conv_desc_), &ph, &pw, &sh, &sw, &dh,
                                      &dw, &mode, &d) == CUDNN_STATUS_SUCCESS)
    t.compute = d;
  cudnnMathType_t m;
  if (cudnnGetConvolutionMathType(static_cast<cudnnConvolutionDescriptor_t>(conv_desc_), &m) == CUDNN_STATUS_SUCCESS)
    t.math = m;
  return t;
}

StatusOr<void*> planning_cudnn() {
  static std::mutex mu;
  static cudnnHandle_t handle = nullptr;
  static std::string failure;
  std::lock_guard<std::mutex> lk(mu);
  if (handle) return static_cast<void*>(handle);
  if (!failure.empty()) return InvalidArgument(failure);
  const cudnnStatus_t s = cudnnCreate(&handle);
  if (s != CUDNN_STATUS_SUCCESS) {
    handle = nullptr;
    failure = std::string("cuDNN is not usable here: ") + cudnnGetErrorString(s);
    return InvalidArgument(failure);
  }
  return static_cast<void*>(handle);
}

}  // namespace mserve::gpu
