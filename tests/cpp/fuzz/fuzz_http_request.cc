// libFuzzer target: raw bytes -> one HTTP request, parsed as the server parses a connection
// (Beast's parser with the server's limits, percent-decoded paths, lower-cased header names).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "server/http/http.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto r = mserve::server::parse_http_request(std::string_view(reinterpret_cast<const char*>(data), size), 1 << 20);
  if (r.ok()) (void)r.value().header("content-type");
  return 0;
}
