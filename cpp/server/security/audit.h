// AuditLog: one JSON line per request, with time, protocol, client address, authenticated
// identity, model, version, endpoint, status, latency and request id; never the payload. The
// server's own events (a rollout's rollback, a drift flag) add event and detail. Lines go through
// a LineLog (logs/line_log.h): a thread of its own, a bounded queue, size-based rotation; a slow,
// full or failing disk never fails or delays a request.
// Thread-safety: record() may be called from any thread.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "core/status.h"
#include "server/logs/line_log.h"

namespace mserve::server {

// path "" : no audit log; rotation and queue as LineLog's.
struct AuditOptions : LineLogOptions {
  AuditOptions() { what = "the audit log"; }
};

struct AuditRecord {
  const char* protocol = "http";  // "http" or "grpc"; "server" for the server's own events
  std::string client, identity, model, endpoint, method, request_id;
  int64_t version = 0;      // 0: none
  int status = 0;           // HTTP status, or the gRPC code number
  std::string status_name;  // gRPC: "OK", "NOT_FOUND", ...
  double latency_ms = 0;
  std::string event, detail;  // the server's own events (e.g. "rollout_rollback" and why); "" for requests
};

class AuditLog {
 public:
  // Opens (appends to) the file; InvalidArgument when it cannot be opened.
  static StatusOr<std::unique_ptr<AuditLog>> open(const AuditOptions& opts);
  ~AuditLog();  // writes what is queued, then closes
  void record(const AuditRecord& r);
  // One of the server's own events (a rollout's rollback, a drift flag): protocol "server".
  void event(const std::string& model, int64_t version, const std::string& endpoint, const std::string& event,
             const std::string& detail);
  int64_t dropped() const;       // lines lost to a full queue
  int64_t write_errors() const;  // lines the disk refused
  // A request id for requests that bring none: unique within the process and across restarts.
  static std::string new_request_id();

 private:
  explicit AuditLog(std::unique_ptr<LineLog> log);
  std::unique_ptr<LineLog> log_;
};

}  // namespace mserve::server
