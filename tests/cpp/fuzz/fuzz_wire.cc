// libFuzzer target: the binary request encodings: KServe's length-prefixed BYTES (binary tensor
// extension and raw gRPC contents) and base64 ({"b64": ...} strings), with their round trips.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "server/codec/json.h"
#include "server/codec/protocol.h"

using namespace mserve;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const char* p = reinterpret_cast<const char*>(data + 1);
  const size_t n = size - 1;
  Shape shape;
  shape.push_back(data[0] % 8);
  auto t = server::decode_length_prefixed(p, n, shape, "input");
  if (t.ok()) {
    std::string again;
    server::encode_length_prefixed(t.value(), &again);
    if (again != std::string(p, n)) std::abort();
  }
  std::string decoded;
  if (server::base64_decode(std::string_view(p, n), &decoded)) {
    std::string enc, back;
    server::base64_encode(decoded, &enc);
    if (!server::base64_decode(enc, &back) || back != decoded) std::abort();
  }
  return 0;
}
