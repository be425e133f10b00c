// AccessControl: who may call the server. Both front ends (HTTP and gRPC) ask it before they
// look a model up, so an unauthenticated client learns nothing about what is served.
//
// - Bearer tokens, from a file and/or an environment variable, one per line:
//       <token> [identity] [models=name1,name2]
//   ('#' starts a comment; without an identity the token is "token-<line>"; without models= it
//   may call every model). The environment variable's value takes the same lines, separated by
//   newlines or ';'. The file is re-read when it changes (checked at most once a second); a file
//   that cannot be read or parsed keeps the previous tokens and is reported once.
//   Tokens are compared as SHA-256 digests with a constant-time compare, every entry every time.
// - A client address allow-list of CIDR blocks (IPv4 and IPv6; an IPv4-mapped IPv6 address is
//   matched as IPv4).
// - Health checks (KServe v2 live/ready, gRPC health) may stay open for Kubernetes probes.
//
// Errors: Unauthenticated (no or unknown token: HTTP 401, gRPC UNAUTHENTICATED), PermissionDenied
// (address not allowed, or the token may not call this model: HTTP 403, PERMISSION_DENIED).
// Thread-safety: check() may be called from any thread.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace mserve::server {

struct AccessOptions {
  std::string tokens_file;               // "" : none
  std::string tokens_env;                // the name of an environment variable holding tokens; "" : none
  std::vector<std::string> allow_cidrs;  // empty: every address
  bool open_health = true;               // health checks need no token (still the allow-list)
  std::function<void(const std::string&)> log;
};

class AccessControl {
 public:
  // Reads the tokens and parses the allow-list; InvalidArgument naming what is wrong.
  static StatusOr<std::unique_ptr<AccessControl>> create(const AccessOptions& opts);
  ~AccessControl();

  bool tokens_required() const;
  bool open_health() const { return opts_.open_health; }
  // `remote`: the client address ("10.1.2.3", "::1", or gRPC's "ipv4:10.1.2.3:5000" /
  // "ipv6:[::1]:5000"); `authorization`: the Authorization header or metadata value ("" when
  // absent); `model`: the model asked for ("" for server-wide calls, which a token limited to some
  // models may not make); `health`: a health check.
  // On success `identity` (when given) is the token's identity ("" without tokens).
  Status check(std::string_view remote, std::string_view authorization, const std::string& model, bool health,
               std::string* identity = nullptr) const;

  struct Tokens;
  struct Network;

 private:
  explicit AccessControl(AccessOptions opts);
  void maybe_reload() const;

  AccessOptions opts_;
  struct State;
  std::unique_ptr<State> st_;
};

}  // namespace mserve::server
