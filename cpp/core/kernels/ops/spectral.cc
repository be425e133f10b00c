// Placeholder factories (not implemented yet).
#include "core/kernels/registry.h"

namespace mserve {

StatusOr<KernelPtr> create_onnx_HannWindow(const Node&, const KernelInit&) { return Unsupported("HannWindow is not implemented yet"); }
StatusOr<KernelPtr> create_onnx_HammingWindow(const Node&, const KernelInit&) { return Unsupported("HammingWindow is not implemented yet"); }
StatusOr<KernelPtr> create_onnx_BlackmanWindow(const Node&, const KernelInit&) { return Unsupported("BlackmanWindow is not implemented yet"); }
StatusOr<KernelPtr> create_onnx_DFT(const Node&, const KernelInit&) { return Unsupported("DFT is not implemented yet"); }
StatusOr<KernelPtr> create_onnx_STFT(const Node&, const KernelInit&) { return Unsupported("STFT is not implemented yet"); }

}  // namespace mserve
