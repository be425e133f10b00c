// libFuzzer target: ONNX model bytes -> Graph (the loader every model file goes through).
#include <cstddef>
#include <cstdint>

#include "core/onnx/loader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto g = mserve::load_onnx_bytes(data, size, "");
  if (g.ok()) (void)g.value().values.size();
  return 0;
}
