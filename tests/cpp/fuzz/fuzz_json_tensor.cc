// libFuzzer target: JSON request bodies -> tensors (TensorFlow Serving's predict body against a
// two-input model, KServe v2 "data" arrays of every dtype), and the answers written back.
#include <cstddef>
#include <cstdint>
#include <string>

#include "server/codec/json.h"
#include "server/codec/tfs_rest.h"

using namespace mserve;

namespace {

// x: float32 [batch, 3]; s: string [batch]; outputs the same.
const Signature& model() {
  static const Signature sig = [] {
    Signature sig;
    Value vx, vs;
    vx.name = "x";
    vx.dtype = DType::kFloat32;
    vs.name = "s";
    vs.dtype = DType::kString;
    sig.inputs = {vx, vs};
    sig.outputs = sig.inputs;
    return sig;
  }();
  return sig;
}

const DType kTypes[] = {DType::kFloat32, DType::kFloat64, DType::kFloat16, DType::kInt8,   DType::kInt16,
                        DType::kInt32,   DType::kInt64,   DType::kUInt8,   DType::kUInt16, DType::kUInt32,
                        DType::kUInt64,  DType::kBool,    DType::kString};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const uint8_t mode = data[0];
  const std::string body(reinterpret_cast<const char*>(data + 1), size - 1);
  thread_local simdjson::dom::parser parser;
  auto doc = server::parse_json(parser, body);
  if (!doc.ok()) return 0;
  if (mode & 1) {
    bool rows = false;
    auto in = server::decode_predict(doc.value(), model(), &rows);
    if (in.ok()) {
      std::string out;
      (void)server::encode_predict(model(), in.value(), rows, &out);
    }
  } else {
    const DType t = kTypes[(mode >> 1) % (sizeof kTypes / sizeof kTypes[0])];
    Shape shape;
    for (int d = 0; d < (mode >> 5) % 4; ++d) shape.push_back(1 + ((mode >> d) & 3));
    auto flat = server::tensor_from_json_flat(doc.value(), shape, t, "input");
    auto nested = server::tensor_from_json({doc.value()}, false, t, "input");
    std::string out;
    if (flat.ok()) server::json_tensor_flat(&out, flat.value());
    if (nested.ok()) server::json_tensor(&out, nested.value());
  }
  return 0;
}
