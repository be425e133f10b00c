// Status / StatusOr: the error channel of load, plan and run paths.
// Every fallible call in the core returns one of these; exceptions never cross the core's API.
#pragma once
#include <optional>
#include <string>
#include <utility>

namespace mserve {

enum class Code {
  kOk,
  kInvalidArgument,  // caller supplied bad inputs (dtype, shape, names)
  kLoadError,        // model bytes/file are malformed or inconsistent
  kUnsupported,      // the model needs something the runtime cannot run
  kInternal,         // a broken invariant; a bug in mserve
  // Serving paths (mapped to HTTP codes by http_status in server/model_server.h, to gRPC codes by
  // to_grpc in server/grpc/grpc_common.h):
  kNotFound,           // no such model, version or label
  kUnavailable,        // the model or server cannot take the request now (loading, draining, queue full)
  kResourceExhausted,  // a limit was hit (request size, batch size)
  kDeadlineExceeded,   // the request's time ran out
  kUnimplemented,      // the endpoint or method exists in the protocol but not here
  kUnauthenticated,    // no valid credentials (HTTP 401, gRPC UNAUTHENTICATED)
  kPermissionDenied,   // valid credentials, but not for this (HTTP 403, gRPC PERMISSION_DENIED)
};

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Code code, std::string msg) : code_(code), msg_(std::move(msg)) {}
  static Status OK() { return {}; }
  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return msg_; }
  // Prefixes context ("node 'conv1' (Conv): ") to the message, keeping the code.
  Status with_context(const std::string& prefix) const { return ok() ? *this : Status(code_, prefix + msg_); }

 private:
  Code code_ = Code::kOk;
  std::string msg_;
};

inline Status InvalidArgument(std::string m) { return {Code::kInvalidArgument, std::move(m)}; }
inline Status LoadError(std::string m) { return {Code::kLoadError, std::move(m)}; }
inline Status Unsupported(std::string m) { return {Code::kUnsupported, std::move(m)}; }
inline Status Internal(std::string m) { return {Code::kInternal, std::move(m)}; }
inline Status NotFound(std::string m) { return {Code::kNotFound, std::move(m)}; }
inline Status Unavailable(std::string m) { return {Code::kUnavailable, std::move(m)}; }
inline Status ResourceExhausted(std::string m) { return {Code::kResourceExhausted, std::move(m)}; }
inline Status DeadlineExceeded(std::string m) { return {Code::kDeadlineExceeded, std::move(m)}; }
inline Status Unimplemented(std::string m) { return {Code::kUnimplemented, std::move(m)}; }
inline Status Unauthenticated(std::string m) { return {Code::kUnauthenticated, std::move(m)}; }
inline Status PermissionDenied(std::string m) { return {Code::kPermissionDenied, std::move(m)}; }

template <class T>
class [[nodiscard]] StatusOr {
 public:
  StatusOr(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  StatusOr(Status st) : status_(std::move(st)) {}  // NOLINT
  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }
  T& value() & { return *value_; }
  T&& value() && { return std::move(*value_); }
  const T& value() const& { return *value_; }

 private:
  Status status_;
  std::optional<T> value_;
};

#define MS_CONCAT_INNER(a, b) a##b
#define MS_CONCAT(a, b) MS_CONCAT_INNER(a, b)

#define MS_RETURN_IF_ERROR(expr)   \
  do {                             \
    ::mserve::Status _st = (expr); \
    if (!_st.ok()) return _st;     \
  } while (0)

#define MS_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                             \
  if (!tmp.ok()) return tmp.status();            \
  lhs = std::move(tmp).value()

#define MS_ASSIGN_OR_RETURN(lhs, expr) MS_ASSIGN_OR_RETURN_IMPL(MS_CONCAT(_so_, __LINE__), lhs, expr)

}  // namespace mserve
