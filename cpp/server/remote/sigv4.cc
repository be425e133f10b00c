#include "server/remote/sigv4.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <ctime>
#include <fstream>

#include "server/security/digest.h"

namespace mserve::server {
namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

std::string trim(std::string s) {
  const auto first = s.find_first_not_of(" \t\r");
  if (first == std::string::npos) return "";
  return s.substr(first, s.find_last_not_of(" \t\r") - first + 1);
}

}  // namespace

std::string aws_uri_encode(std::string_view s, bool keep_slash) {
  static const char* digits = "0123456789ABCDEF";
  std::string o;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || (keep_slash && c == '/')) {
      o += static_cast<char>(c);
    } else {
      o += '%';
      o += digits[c >> 4];
      o += digits[c & 15];
    }
  }
  return o;
}

AwsCredentials aws_credentials() {
  AwsCredentials c{env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY"), env("AWS_SESSION_TOKEN")};
  if (!c.access_key.empty() && !c.secret_key.empty()) return c;
  std::string file = env("AWS_SHARED_CREDENTIALS_FILE");
  if (file.empty() && !env("HOME").empty()) file = env("HOME") + "/.aws/credentials";
  std::string profile = env("AWS_PROFILE");
  if (profile.empty()) profile = "default";
  std::ifstream in(file);
  std::string line, section;
  AwsCredentials found;
  while (std::getline(in, line)) {
    line = trim(line);
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    if (line.front() == '[' && line.back() == ']') {
      section = trim(line.substr(1, line.size() - 2));
      continue;
    }
    if (section != profile) continue;
    const size_t eq = line.find('=');
    if (eq == std::string::npos) continue;
    const std::string key = trim(line.substr(0, eq)), value = trim(line.substr(eq + 1));
    if (key == "aws_access_key_id") found.access_key = value;
    if (key == "aws_secret_access_key") found.secret_key = value;
    if (key == "aws_session_token") found.session_token = value;
  }
  return found;
}

std::string amz_date_now() {
  std::time_t t = std::time(nullptr);
  std::tm tm;
  gmtime_r(&t, &tm);
  char b[32];
  std::strftime(b, sizeof b, "%Y%m%dT%H%M%SZ", &tm);
  return b;
}

Headers sign_v4(const SigV4Request& r, const AwsCredentials& creds, const std::string& region,
                const std::string& service, const std::string& amz_date) {
  Headers out = {{"x-amz-date", amz_date}, {"x-amz-content-sha256", r.payload_sha256}};
  if (!creds.session_token.empty()) out.emplace_back("x-amz-security-token", creds.session_token);
  if (creds.access_key.empty()) return out;
  // Canonical headers: lower-case names, trimmed values, sorted by name.
  std::vector<std::pair<std::string, std::string>> signed_headers = {{"host", r.host}};
  for (const auto& [k, v] : r.headers) signed_headers.emplace_back(k, v);
  for (const auto& [k, v] : out) signed_headers.emplace_back(k, v);
  for (auto& [k, v] : signed_headers) {
    for (char& ch : k) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    v = trim(v);
  }
  std::sort(signed_headers.begin(), signed_headers.end());
  std::string canonical_headers, names;
  for (const auto& [k, v] : signed_headers) {
    canonical_headers += k + ":" + v + "\n";
    names += (names.empty() ? "" : ";") + k;
  }
  std::vector<std::pair<std::string, std::string>> query;
  for (const auto& [k, v] : r.query) query.emplace_back(aws_uri_encode(k, false), aws_uri_encode(v, false));
  std::sort(query.begin(), query.end());
  std::string canonical_query;
  for (const auto& [k, v] : query) canonical_query += (canonical_query.empty() ? "" : "&") + k + "=" + v;
  const std::string canonical_request = r.method + "\n" + r.path + "\n" + canonical_query + "\n" + canonical_headers +
                                        "\n" + names + "\n" + r.payload_sha256;
  const std::string day = amz_date.substr(0, 8);
  const std::string scope = day + "/" + region + "/" + service + "/aws4_request";
  const std::string to_sign = "AWS4-HMAC-SHA256\n" + amz_date + "\n" + scope + "\n" + sha256_hex(canonical_request);
  const std::string key = hmac_sha256(
      hmac_sha256(hmac_sha256(hmac_sha256("AWS4" + creds.secret_key, day), region), service), "aws4_request");
  const std::string mac = hmac_sha256(key, to_sign);
  out.emplace_back("Authorization", "AWS4-HMAC-SHA256 Credential=" + creds.access_key + "/" + scope +
                                        ", SignedHeaders=" + names + ", Signature=" + to_hex(mac));
  return out;
}

}  // namespace mserve::server
