// AuditLog: one JSON line per request to a file, with size-based rotation. Lines carry time,
// protocol, client address, authenticated identity, model, version, endpoint, status, latency and
// request id; never the payload. The server's own events (a rollout's rollback) add event and
// detail. Writing happens on a thread of its own behind a bounded queue: a slow, full or failing
// disk never fails or delays a request (lines that cannot be written are counted, and reported
// once per burst on stderr).
//
// Rotation: when the file would pass max_bytes it is renamed to <path>.1 (older ones shift to
// .2 ... .<keep>, the oldest is removed) and a new file is started. Only regular files rotate.
// Thread-safety: record() may be called from any thread.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "core/status.h"

namespace mserve::server {

struct AuditOptions {
  std::string path;                 // "" : no audit log
  int64_t max_bytes = 100LL << 20;  // rotate past this size
  int keep = 5;                     // rotated files kept
  size_t max_queued = 100000;       // lines waiting to be written; more are dropped and counted
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
  int64_t dropped() const;       // lines lost to a full queue
  int64_t write_errors() const;  // lines the disk refused
  // A request id for requests that bring none: unique within the process and across restarts.
  static std::string new_request_id();

  struct Impl;

 private:
  explicit AuditLog(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace mserve::server
