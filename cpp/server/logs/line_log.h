// LineLog: text lines appended to a file by a thread of its own behind a bounded queue, with
// size-based rotation. A slow, full or failing disk never blocks or fails the writer's callers:
// a line that finds the queue full is dropped, one the disk refuses is counted, and a burst of
// failures is reported once on stderr. The audit log and the payload log write through it.
//
// Rotation: when the file would pass max_bytes it is renamed to <path>.1 (older ones shift to
// .2 ... .<keep>, the oldest is removed) and a new file is started. Only regular files rotate.
// Thread-safety: write() may be called from any thread.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "core/status.h"

namespace mserve::server {

struct LineLogOptions {
  std::string path;
  int64_t max_bytes = 100LL << 20;  // rotate past this size (at least 1024)
  int keep = 5;                     // rotated files kept
  size_t max_queued = 100000;       // lines waiting to be written; more are dropped and counted
  std::string what = "log";         // how errors name it ("the audit log")
};

class LineLog {
 public:
  // Opens (appends to) the file; InvalidArgument when it cannot be opened or the options are bad.
  static StatusOr<std::unique_ptr<LineLog>> open(const LineLogOptions& opts);
  ~LineLog();  // writes what is queued, then closes
  // Queues one line (with its newline); false when the queue was full and it was dropped.
  bool write(std::string line);
  int64_t dropped() const;       // lines lost to a full queue
  int64_t write_errors() const;  // lines the disk refused
  int64_t written() const;       // lines written

  struct Impl;

 private:
  explicit LineLog(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The time now in UTC, ISO 8601 with milliseconds ("2026-12-07T06:32:13.123Z").
std::string utc_timestamp();

}  // namespace mserve::server
