// Digests the server computes (OpenSSL): SHA-256 and HMAC-SHA256 for manifests, content digests
// and request signatures, MD5 for object-store ETags, and their lower-case hex.
#pragma once
#include <string>
#include <string_view>

namespace mserve::server {

std::string to_hex(std::string_view bytes);
std::string sha256_hex(std::string_view data);
std::string hmac_sha256(std::string_view key, std::string_view data);  // raw 32 bytes
// The digest of a whole file, hex ("" when it cannot be read), read in 64 KB pieces.
std::string file_sha256_hex(const std::string& path);
std::string file_md5_hex(const std::string& path);

}  // namespace mserve::server
