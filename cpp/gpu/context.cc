#include "gpu/context.h"

#include <cublasLt.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <cstdlib>
#include <string>

#include "gpu/cuda_status.h"
#include "gpu/kernel_table.h"

namespace mserve::gpu {

namespace {

// MSERVE_CUDA_POISON=1 fills every new arena with NaN bytes, so a kernel that leaves part of its
// output unwritten shows up in the device checks instead of passing on stale zeros.
bool poison_arenas() {
  const char* v = std::getenv("MSERVE_CUDA_POISON");
  return v && *v && std::string(v) != "0";
}

}  // namespace

CudaContext::~CudaContext() {
  auto stream = static_cast<cudaStream_t>(stream_);
  if (stream) cudaStreamSynchronize(stream);
  if (cudnn_) cudnnDestroy(static_cast<cudnnHandle_t>(cudnn_));
  if (cublaslt_) cublasLtDestroy(static_cast<cublasLtHandle_t>(cublaslt_));
  if (graph_) cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(graph_));
  if (staging_) cudaFreeHost(staging_);
  cudaFree(blas_workspace_);
  cudaFree(arena_);
  if (flag_host_) cudaFreeHost(flag_host_);
  if (stream) cudaStreamDestroy(stream);
}

StatusOr<std::unique_ptr<DeviceContext>> CudaContext::create() {
  std::unique_ptr<CudaContext> c(new CudaContext());
  cudaStream_t stream = nullptr;
  MS_CUDA_RETURN_IF_ERROR(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "creating a CUDA stream");
  c->stream_ = stream;
  cublasLtHandle_t lt = nullptr;
  if (cublasLtCreate(&lt) != CUBLAS_STATUS_SUCCESS) return Internal("cublasLtCreate failed");
  c->cublaslt_ = lt;
  cudnnHandle_t dnn = nullptr;
  const cudnnStatus_t ds = cudnnCreate(&dnn);
  if (ds != CUDNN_STATUS_SUCCESS) return Internal(std::string("cudnnCreate: ") + cudnnGetErrorString(ds));
  c->cudnn_ = dnn;
  if (cudnnSetStream(dnn, stream) != CUDNN_STATUS_SUCCESS) return Internal("cudnnSetStream failed");
  MS_CUDA_RETURN_IF_ERROR(cudaMalloc(&c->blas_workspace_, kBlasWorkspace), "allocating the cuBLASLt workspace");
  void* flag = nullptr;
  MS_CUDA_RETURN_IF_ERROR(cudaHostAlloc(&flag, sizeof(int), cudaHostAllocMapped), "allocating the error flag");
  c->flag_host_ = static_cast<int*>(flag);
  *c->flag_host_ = kNoDeviceError;
  void* dflag = nullptr;
  MS_CUDA_RETURN_IF_ERROR(cudaHostGetDevicePointer(&dflag, flag, 0), "mapping the error flag");
  c->flag_device_ = static_cast<int*>(dflag);
  return std::unique_ptr<DeviceContext>(std::move(c));
}

Status CudaContext::copy_to_device(const void* host, void* device, size_t bytes) {
  // From pageable host memory the copy is staged before this returns, so the host buffer may be
  // reused right after (the planner relies on it: host arena blocks are reused by later steps).
  MS_CUDA_RETURN_IF_ERROR(
      cudaMemcpyAsync(device, host, bytes, cudaMemcpyHostToDevice, static_cast<cudaStream_t>(stream_)),
      "copying to the GPU");
  return Status::OK();
}

Status CudaContext::copy_to_host(const void* device, void* host, size_t bytes) {
  MS_CUDA_RETURN_IF_ERROR(
      cudaMemcpyAsync(host, device, bytes, cudaMemcpyDeviceToHost, static_cast<cudaStream_t>(stream_)),
      "copying from the GPU");
  return Status::OK();
}

Status CudaContext::synchronize() {
  MS_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(static_cast<cudaStream_t>(stream_)), "running on the GPU");
  const int flag = *flag_host_;
  if (flag == kNoDeviceError) return Status::OK();
  *flag_host_ = kNoDeviceError;
  if (flag == kIndexOutOfRange) return InvalidArgument("an index is out of range (found on the GPU)");
  return Internal("a GPU kernel reported error " + std::to_string(flag));
}

StatusOr<void*> CudaContext::arena(size_t bytes) {
  if (arena_ && arena_bytes_ >= bytes) return arena_;
  cudaStreamSynchronize(static_cast<cudaStream_t>(stream_));
  cudaFree(arena_);
  arena_ = nullptr;
  arena_bytes_ = 0;
  MS_CUDA_RETURN_IF_ERROR(cudaMalloc(&arena_, bytes ? bytes : 256), "allocating the GPU arena");
  arena_bytes_ = bytes;
  if (poison_arenas()) MS_CUDA_RETURN_IF_ERROR(cudaMemset(arena_, 0xFF, bytes), "poisoning the GPU arena");
  return arena_;
}

Status CudaContext::capture(std::function<Status()> enqueue, bool* ran) {
  auto stream = static_cast<cudaStream_t>(stream_);
  MS_CUDA_RETURN_IF_ERROR(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), "recording a CUDA graph");
  Status queued = enqueue();
  cudaGraph_t graph = nullptr;
  const cudaError_t ended = cudaStreamEndCapture(stream, &graph);
  if (!queued.ok() || ended != cudaSuccess) {
    if (graph) cudaGraphDestroy(graph);
    cudaGetLastError();  // a failed capture leaves its error; this context goes on without a graph
    return queued.ok() ? cuda_status(ended, "recording a CUDA graph") : queued;
  }
  cudaGraphExec_t exec = nullptr;
  const cudaError_t made = cudaGraphInstantiate(&exec, graph, 0);
  cudaGraphDestroy(graph);
  MS_CUDA_RETURN_IF_ERROR(made, "instantiating a CUDA graph");
  if (graph_) cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(graph_));
  graph_ = exec;
  *ran = false;  // recording queues nothing: replay() runs it
  return Status::OK();
}

Status CudaContext::replay() {
  if (!graph_) return Internal("replay without a recorded CUDA graph");
  MS_CUDA_RETURN_IF_ERROR(cudaGraphLaunch(static_cast<cudaGraphExec_t>(graph_), static_cast<cudaStream_t>(stream_)),
                          "replaying a CUDA graph");
  return Status::OK();
}

StatusOr<void*> CudaContext::staging(size_t bytes) {
  if (staging_ && staging_bytes_ >= bytes) return staging_;
  cudaStreamSynchronize(static_cast<cudaStream_t>(stream_));
  if (staging_) cudaFreeHost(staging_);
  staging_ = nullptr;
  staging_bytes_ = 0;
  MS_CUDA_RETURN_IF_ERROR(cudaHostAlloc(&staging_, bytes ? bytes : 256, cudaHostAllocDefault),
                          "allocating page-locked staging memory");
  staging_bytes_ = bytes;
  return staging_;
}

StatusOr<KernelPtr> CudaBackend::create_kernel(const Node& node, const KernelInit& init) const {
  return create_gpu_kernel(node, init, opts_);
}

std::shared_ptr<Buffer> CudaBackend::allocate(size_t bytes) const {
  void* p = nullptr;
  if (cudaMalloc(&p, bytes ? bytes : 256) != cudaSuccess) return nullptr;
  return Buffer::borrow(p, bytes, std::shared_ptr<void>(p, [](void* q) { cudaFree(q); }));
}

Status CudaBackend::download(const void* device, void* host, size_t bytes) const {
  MS_CUDA_RETURN_IF_ERROR(cudaMemcpy(host, device, bytes, cudaMemcpyDeviceToHost), "copying from the GPU");
  return Status::OK();
}

Status CudaBackend::wait_for(uintptr_t stream) const {
  cudaStream_t s = stream == 1   ? cudaStreamLegacy
                   : stream == 2 ? cudaStreamPerThread
                                 : reinterpret_cast<cudaStream_t>(stream);
  MS_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(s), "waiting for the producer's CUDA stream");
  return Status::OK();
}

std::optional<Backend::Memory> CudaBackend::memory() const {
  size_t free_bytes = 0, total = 0;
  if (cudaMemGetInfo(&free_bytes, &total) != cudaSuccess) {
    cudaGetLastError();
    return std::nullopt;
  }
  return Memory{total - free_bytes, total};
}

Status CudaBackend::upload(const void* host, void* device, size_t bytes) const {
  MS_CUDA_RETURN_IF_ERROR(cudaMemcpy(device, host, bytes, cudaMemcpyHostToDevice), "uploading a constant");
  return Status::OK();
}

}  // namespace mserve::gpu
