// _core.Server: the C++ model server (HTTP, repository, batching, metrics). Python only starts
// and stops it; requests never touch the interpreter.
#include <memory>

#include <pybind11/stl.h>

#include "bindings/common.h"
#include "server/model_server.h"

namespace mserve::py_bind {
namespace {

using server::ModelServer;
using server::ServerOptions;

template <class T>
T get(const py::dict& d, const char* key, T fallback) {
  return d.contains(key) && !d[key].is_none() ? d[key].cast<T>() : fallback;
}

server::BatchingOptions batching_from(const py::dict& d) {
  server::BatchingOptions b;
  b.max_batch_size = get<int64_t>(d, "max_batch_size", b.max_batch_size);
  b.batch_timeout_micros = get<int64_t>(d, "batch_timeout_micros", b.batch_timeout_micros);
  b.max_enqueued_batches = get<int64_t>(d, "max_enqueued_batches", b.max_enqueued_batches);
  b.num_batch_threads = get<int64_t>(d, "num_batch_threads", b.num_batch_threads);
  b.allowed_batch_sizes = get<std::vector<int64_t>>(d, "allowed_batch_sizes", {});
  b.pad_variable_length_inputs = get<bool>(d, "pad_variable_length_inputs", false);
  return b;
}

// models: list of dicts {name, base_path, policy: "latest"|"all"|"specific", num_versions, versions, labels}
std::vector<server::ModelConfig> models_from(const py::list& models) {
  std::vector<server::ModelConfig> out;
  for (const auto& item : models) {
    py::dict d = item.cast<py::dict>();
    server::ModelConfig m;
    m.name = d["name"].cast<std::string>();
    m.base_path = d["base_path"].cast<std::string>();
    std::string policy = get<std::string>(d, "policy", "latest");
    if (policy == "all") m.policy.kind = server::VersionPolicy::Kind::kAll;
    else if (policy == "specific") m.policy.kind = server::VersionPolicy::Kind::kSpecific;
    m.policy.num_versions = get<int>(d, "num_versions", 1);
    m.policy.versions = get<std::vector<int64_t>>(d, "versions", {});
    m.labels = get<std::map<std::string, int64_t>>(d, "labels", {});
    if (d.contains("batching") && !d["batching"].is_none()) m.batching = batching_from(d["batching"].cast<py::dict>());
    out.push_back(std::move(m));
  }
  return out;
}

}  // namespace

void bind_server(py::module_& m) {
  py::class_<ModelServer>(m, "Server")
      .def_static("start", [](const py::dict& o, const py::list& models, const py::list& sessions) {
        ServerOptions opts;
        opts.http.host = get<std::string>(o, "host", "127.0.0.1");
        opts.http.port = get<int>(o, "port", 8501);
        opts.http.threads = get<int>(o, "http_threads", 0);
        opts.http.body_limit = get<size_t>(o, "max_body_bytes", opts.http.body_limit);
        opts.http.idle_timeout_ms = get<int>(o, "idle_timeout_ms", opts.http.idle_timeout_ms);
        opts.http.read_timeout_ms = get<int>(o, "read_timeout_ms", opts.http.read_timeout_ms);
        opts.http.max_connections = get<int>(o, "max_connections", opts.http.max_connections);
        opts.http.tls_cert_file = opts.grpc.tls_cert_file = get<std::string>(o, "tls_cert_file", "");
        opts.http.tls_key_file = opts.grpc.tls_key_file = get<std::string>(o, "tls_key_file", "");
        opts.grpc.host = opts.http.host;
        opts.grpc.port = get<int>(o, "grpc_port", -1);
        opts.grpc.max_threads = get<int>(o, "grpc_max_threads", 0);
        opts.grpc.max_message_bytes = opts.http.body_limit;
        opts.access.tokens_file = get<std::string>(o, "auth_tokens_file", "");
        opts.access.tokens_env = get<std::string>(o, "auth_tokens_env", "");
        opts.access.allow_cidrs = get<std::vector<std::string>>(o, "allow_cidrs", {});
        opts.access.open_health = get<bool>(o, "open_health_checks", true);
        opts.audit.path = get<std::string>(o, "audit_log", "");
        opts.audit.max_bytes = get<int64_t>(o, "audit_log_max_bytes", opts.audit.max_bytes);
        opts.audit.keep = get<int>(o, "audit_log_keep", opts.audit.keep);
        opts.request_timeout_ms = get<int>(o, "request_timeout_ms", 0);
        opts.file_system_poll_wait_seconds = get<int>(o, "file_system_poll_wait_seconds", 1);
        opts.model_config_file = get<std::string>(o, "model_config_file", "");
        opts.model_config_file_poll_wait_seconds = get<int>(o, "model_config_file_poll_wait_seconds", 0);
        opts.manager.session.threads = get<int>(o, "threads", 0);
        opts.manager.session.optimize = get<bool>(o, "optimize", true);
        opts.manager.warmup = get<bool>(o, "warmup", true);
        opts.manager.integrity.trusted_keys = get<std::vector<std::string>>(o, "trusted_keys", {});
        opts.manager.integrity.require_signatures = get<bool>(o, "require_signatures", false);
        const std::string key_file = get<std::string>(o, "model_key_file", ""), key_env = get<std::string>(o, "model_key_env", "");
        if (!key_file.empty() || !key_env.empty()) {
          auto key = server::read_key(key_file, key_env);
          raise_if_error(key.status());
          opts.manager.model_key = std::move(key).value();
        }
        if (get<bool>(o, "quiet", false)) opts.manager.log = [](const std::string&) {};
        if (o.contains("batching") && !o["batching"].is_none())
          opts.manager.batching = batching_from(o["batching"].cast<py::dict>());
        std::vector<server::ModelConfig> cfg = models_from(models);
        std::vector<std::pair<std::string, std::shared_ptr<Session>>> mem;
        for (const auto& item : sessions) {
          auto t = item.cast<py::tuple>();
          mem.emplace_back(t[0].cast<std::string>(), t[1].cast<std::shared_ptr<Session>>());
        }
        StatusOr<std::unique_ptr<ModelServer>> s = Status::OK();
        {
          py::gil_scoped_release nogil;
          s = ModelServer::start(opts, cfg, mem);
        }
        raise_if_error(s.status());
        return std::move(s).value();
      }, py::arg("options"), py::arg("models"), py::arg("sessions"))
      .def_property_readonly("port", &ModelServer::port)
      .def_property_readonly("grpc_port", &ModelServer::grpc_port)
      .def_property_readonly("ready", &ModelServer::ready)
      .def("poll", [](ModelServer& s) {
        py::gil_scoped_release nogil;
        s.manager().poll();
      }, "Scans the model folders now (load new versions, unload removed ones).")
      .def("stop", [](ModelServer& s, int drain_ms) {
        py::gil_scoped_release nogil;
        s.stop(drain_ms);
      }, py::arg("drain_ms") = 30000, "Stops accepting, drains in-flight requests, then stops.");

  m.def("generate_signing_key", [] {
    auto k = server::generate_signing_key();
    raise_if_error(k.status());
    return py::make_tuple(k.value().first, k.value().second);
  }, "A new Ed25519 key pair as PEM text: (private, public).");
  m.def("sign_folder", [](const std::string& dir, const std::string& private_pem) {
    raise_if_error(server::sign_folder(dir, private_pem));
  }, py::arg("dir"), py::arg("private_key_pem"), "Writes mserve.manifest and mserve.manifest.sig into a version folder.");
  m.def("verify_folder", [](const std::string& dir, const std::vector<std::string>& keys, bool require) {
    server::IntegrityOptions o;
    o.trusted_keys = keys;
    o.require_signatures = require;
    raise_if_error(server::validate(o));
    raise_if_error(server::verify_folder(dir, o));
  }, py::arg("dir"), py::arg("trusted_keys"), py::arg("require") = true, "Checks a signed version folder.");
  m.def("read_model_key", [](const std::string& file, const std::string& env) {
    auto k = server::read_key(file, env);
    raise_if_error(k.status());
    return py::bytes(k.value());
  }, py::arg("file") = "", py::arg("env") = "");
  m.def("encrypt_model", [](const std::string& plain, const std::string& key) {
    auto e = server::encrypt_model(plain, key);
    raise_if_error(e.status());
    return py::bytes(e.value());
  }, py::arg("data"), py::arg("key"), "AES-256-GCM: the bytes of an encrypted model file.");
  m.def("decrypt_model", [](const std::string& data, const std::string& key) {
    auto d = server::decrypt_model(data, key);
    raise_if_error(d.status());
    return py::bytes(d.value());
  }, py::arg("data"), py::arg("key"));
  m.def("parse_batching_parameters", [](const std::string& text) {
    auto b = server::parse_batching_parameters(text);
    raise_if_error(b.status());
    const auto& v = b.value();
    py::dict d;
    d["max_batch_size"] = v.max_batch_size;
    d["batch_timeout_micros"] = v.batch_timeout_micros;
    d["max_enqueued_batches"] = v.max_enqueued_batches;
    d["num_batch_threads"] = v.num_batch_threads;
    d["allowed_batch_sizes"] = v.allowed_batch_sizes;
    d["pad_variable_length_inputs"] = v.pad_variable_length_inputs;
    return d;
  }, "Parses a TensorFlow Serving batching parameters text file's contents into a dict.");
  m.def("parse_model_config", [](const std::string& text) {
    auto c = server::parse_model_config(text);
    raise_if_error(c.status());
    py::list out;
    for (const auto& m : c.value()) {
      py::dict d;
      d["name"] = m.name;
      d["base_path"] = m.base_path;
      d["platform"] = m.platform;
      const char* kinds[] = {"latest", "all", "specific"};
      d["policy"] = kinds[static_cast<int>(m.policy.kind)];
      d["num_versions"] = m.policy.num_versions;
      d["versions"] = m.policy.versions;
      d["labels"] = m.labels;
      out.append(d);
    }
    return out;
  }, "Parses a TensorFlow Serving model_config_list text file's contents into a list of dicts.");
}

}  // namespace mserve::py_bind
