#include "server/security/audit.h"

#include <atomic>
#include <cstdio>
#include <random>

#include "server/codec/json.h"

namespace mserve::server {

AuditLog::AuditLog(std::unique_ptr<LineLog> log) : log_(std::move(log)) {}

AuditLog::~AuditLog() = default;

StatusOr<std::unique_ptr<AuditLog>> AuditLog::open(const AuditOptions& opts) {
  MS_ASSIGN_OR_RETURN(std::unique_ptr<LineLog> log, LineLog::open(opts));
  return std::unique_ptr<AuditLog>(new AuditLog(std::move(log)));
}

void AuditLog::event(const std::string& model, int64_t version, const std::string& endpoint, const std::string& event,
                     const std::string& detail) {
  AuditRecord a;
  a.protocol = "server";
  a.model = model;
  a.version = version;
  a.endpoint = endpoint;
  a.event = event;
  a.detail = detail;
  record(a);
}

int64_t AuditLog::dropped() const { return log_->dropped(); }
int64_t AuditLog::write_errors() const { return log_->write_errors(); }

std::string AuditLog::new_request_id() {
  static const uint64_t prefix = std::random_device{}() ^ (static_cast<uint64_t>(std::random_device{}()) << 32);
  static std::atomic<uint64_t> counter{0};
  char buf[40];
  std::snprintf(buf, sizeof buf, "%016llx-%08llx", static_cast<unsigned long long>(prefix),
                static_cast<unsigned long long>(counter.fetch_add(1) & 0xffffffffull));
  return buf;
}

void AuditLog::record(const AuditRecord& r) {
  std::string o = "{\"time\":\"";
  o += utc_timestamp();
  o += "\",\"protocol\":\"";
  o += r.protocol;
  o += "\",\"client\":";
  json_string(&o, r.client);
  o += ",\"identity\":";
  json_string(&o, r.identity);
  o += ",\"model\":";
  json_string(&o, r.model);
  o += ",\"version\":" + std::to_string(r.version) + ",\"endpoint\":";
  json_string(&o, r.endpoint);
  if (!r.method.empty()) {
    o += ",\"method\":";
    json_string(&o, r.method);
  }
  o += ",\"status\":" + std::to_string(r.status);
  if (!r.status_name.empty()) o += ",\"status_name\":\"" + r.status_name + "\"";
  char lat[32];
  std::snprintf(lat, sizeof lat, "%.3f", r.latency_ms);
  o += ",\"latency_ms\":";
  o += lat;
  o += ",\"request_id\":";
  json_string(&o, r.request_id);
  if (!r.event.empty()) {
    o += ",\"event\":";
    json_string(&o, r.event);
    o += ",\"detail\":";
    json_string(&o, r.detail);
  }
  o += "}\n";
  log_->write(std::move(o));
}

}  // namespace mserve::server
