// libFuzzer target: TensorFlow Serving's model config and batching parameters (text formats, and
// the serialized ModelServerConfig of a gRPC reload), and their text round trip.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "server/repository/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto models = mserve::server::parse_model_config(text);
  if (models.ok()) {
    // What the config service writes back must read back to the same list.
    auto again = mserve::server::parse_model_config(mserve::server::model_config_text(models.value()));
    if (!again.ok() || again.value().size() != models.value().size()) std::abort();
  }
  (void)mserve::server::parse_model_config_binary(text);
  (void)mserve::server::parse_batching_parameters(text);
  return 0;
}
