// AWS Signature Version 4 for the S3 source: credentials from the usual places and the
// Authorization header of a request (docs.aws.amazon.com, "Signature Version 4 signing process").
#pragma once
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"
#include "server/remote/http_client.h"
#include "server/security/digest.h"

namespace mserve::server {

struct AwsCredentials {
  std::string access_key, secret_key, session_token;  // session_token "" when none
};
// AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (/ AWS_SESSION_TOKEN), else the profile AWS_PROFILE
// ("default") of the shared credentials file (AWS_SHARED_CREDENTIALS_FILE, else
// ~/.aws/credentials). Unauthenticated (empty keys: requests go unsigned) when there are none.
AwsCredentials aws_credentials();

// "%XX"-encodes all but A-Z a-z 0-9 - . _ ~ (and '/' when keep_slash), as SigV4 wants.
std::string aws_uri_encode(std::string_view s, bool keep_slash);

struct SigV4Request {
  std::string method;                                      // "GET"
  std::string host;                                        // the Host header's value
  std::string path;                                        // encoded, as sent ("/bucket/key")
  std::vector<std::pair<std::string, std::string>> query;  // decoded names and values
  Headers headers;                                         // any more headers to sign (name, value)
  std::string payload_sha256;                              // hex; sha256_hex("") for an empty body
};
// The headers to send with the request: x-amz-date, x-amz-content-sha256, x-amz-security-token
// (with a session token), and Authorization. `amz_date`: "YYYYMMDDTHHMMSSZ" (UTC).
Headers sign_v4(const SigV4Request& r, const AwsCredentials& creds, const std::string& region,
                const std::string& service, const std::string& amz_date);
// The time now as amz_date wants it.
std::string amz_date_now();

}  // namespace mserve::server
