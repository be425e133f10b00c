// libFuzzer target: KServe v2 REST infer bodies (JSON header, "data" tensors, the binary tensor
// extension with Inference-Header-Content-Length) against a model with float, int64 and string
// inputs. First byte: bit 0 set = the next two bytes (little-endian) are the header length.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "server/codec/v2_rest.h"

using namespace mserve;

namespace {

const Signature& model() {
  static const Signature sig = [] {
    Signature sig;
    const std::pair<const char*, DType> ins[] = {{"x", DType::kFloat32}, {"n", DType::kInt64}, {"s", DType::kString}};
    for (const auto& [name, dt] : ins) {
      Value v;
      v.name = name;
      v.dtype = dt;
      sig.inputs.push_back(v);
    }
    sig.outputs = sig.inputs;
    return sig;
  }();
  return sig;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 3) return 0;
  std::string header_length;
  size_t skip = 1;
  if (data[0] & 1) {
    header_length = std::to_string(data[1] | data[2] << 8);
    skip = 3;
  }
  auto body = std::make_shared<std::string>(reinterpret_cast<const char*>(data + skip), size - skip);
  auto r = server::decode_v2_infer(body, 0, header_length, model());
  if (r.ok() && r.value().inputs.size() != model().inputs.size()) __builtin_trap();
  return 0;
}
