// mserve._server: the C++ model server (HTTP, repository, batching, metrics), an extension module
// of its own beside the runtime's _core, so `import mserve` never loads gRPC, OpenSSL or the wire
// schemas (mserve/serving.py imports it on first use). Python only starts and stops the server;
// requests never touch the interpreter. The option structs are bound field by
// field (mserve/options.py maps serve()'s keywords and the CLI's flags onto them), so a
// misspelt field is an AttributeError, never ignored.
#include <memory>

#include <pybind11/stl.h>

#include "bindings/common.h"
#include "server/model_server.h"
#include "server/remote/source.h"

namespace mserve::py_bind {
namespace {

using server::ModelServer;
using server::ServerOptions;

template <class T>
T get(const py::dict& d, const char* key, T fallback) {
  return d.contains(key) && !d[key].is_none() ? d[key].cast<T>() : fallback;
}

// The log of a quiet server: lifecycle lines are dropped.
void silent(const std::string&) {}

// models: list of dicts {name, base_path, policy: "latest"|"all"|"specific", num_versions, versions, labels,
// batching: BatchingOptions or None, device, rollout: the rollout block's text or None}
std::vector<server::ModelConfig> models_from(const py::list& models) {
  std::vector<server::ModelConfig> out;
  for (const auto& item : models) {
    py::dict d = item.cast<py::dict>();
    server::ModelConfig m;
    m.name = d["name"].cast<std::string>();
    m.base_path = d["base_path"].cast<std::string>();
    std::string policy = get<std::string>(d, "policy", "latest");
    if (policy == "all")
      m.policy.kind = server::VersionPolicy::Kind::kAll;
    else if (policy == "specific")
      m.policy.kind = server::VersionPolicy::Kind::kSpecific;
    m.policy.num_versions = get<int>(d, "num_versions", 1);
    m.policy.versions = get<std::vector<int64_t>>(d, "versions", {});
    m.labels = get<std::map<std::string, int64_t>>(d, "labels", {});
    if (d.contains("batching") && !d["batching"].is_none()) m.batching = d["batching"].cast<server::BatchingOptions>();
    if (d.contains("device")) m.backend = backend_of(d["device"]);
    if (d.contains("rollout") && !d["rollout"].is_none()) {
      auto r = server::parse_rollout(d["rollout"].cast<std::string>(), m.name, m.labels);
      raise_if_error(r.status());
      m.rollout = std::move(r).value();
    }
    out.push_back(std::move(m));
  }
  return out;
}

void bind_options(py::module_& m) {
  using server::AccessOptions;
  using server::AuditOptions;
  using server::BatchingOptions;
  using server::GrpcOptions;
  using server::HttpOptions;
  using server::IntegrityOptions;
  using server::ManagerOptions;
  py::class_<BatchingOptions>(m, "BatchingOptions")
      .def(py::init<>())
      .def_readwrite("max_batch_size", &BatchingOptions::max_batch_size)
      .def_readwrite("batch_timeout_micros", &BatchingOptions::batch_timeout_micros)
      .def_readwrite("max_enqueued_batches", &BatchingOptions::max_enqueued_batches)
      .def_readwrite("num_batch_threads", &BatchingOptions::num_batch_threads)
      .def_readwrite("allowed_batch_sizes", &BatchingOptions::allowed_batch_sizes)
      .def_readwrite("pad_variable_length_inputs", &BatchingOptions::pad_variable_length_inputs);
  py::class_<HttpOptions>(m, "HttpOptions")
      .def(py::init<>())
      .def_readwrite("host", &HttpOptions::host)
      .def_readwrite("port", &HttpOptions::port)
      .def_readwrite("threads", &HttpOptions::threads)
      .def_readwrite("body_limit", &HttpOptions::body_limit)
      .def_readwrite("idle_timeout_ms", &HttpOptions::idle_timeout_ms)
      .def_readwrite("read_timeout_ms", &HttpOptions::read_timeout_ms)
      .def_readwrite("max_connections", &HttpOptions::max_connections)
      .def_readwrite("tls_cert_file", &HttpOptions::tls_cert_file)
      .def_readwrite("tls_key_file", &HttpOptions::tls_key_file);
  py::class_<GrpcOptions>(m, "GrpcOptions")
      .def(py::init<>())
      .def_readwrite("host", &GrpcOptions::host)
      .def_readwrite("port", &GrpcOptions::port)
      .def_readwrite("max_threads", &GrpcOptions::max_threads)
      .def_readwrite("max_message_bytes", &GrpcOptions::max_message_bytes)
      .def_readwrite("tls_cert_file", &GrpcOptions::tls_cert_file)
      .def_readwrite("tls_key_file", &GrpcOptions::tls_key_file);
  py::class_<AccessOptions>(m, "AccessOptions")
      .def(py::init<>())
      .def_readwrite("tokens_file", &AccessOptions::tokens_file)
      .def_readwrite("tokens_env", &AccessOptions::tokens_env)
      .def_readwrite("allow_cidrs", &AccessOptions::allow_cidrs)
      .def_readwrite("open_health", &AccessOptions::open_health);
  py::class_<server::LineLogOptions>(m, "LineLogOptions")
      .def(py::init<>())
      .def_readwrite("path", &server::LineLogOptions::path)
      .def_readwrite("max_bytes", &server::LineLogOptions::max_bytes)
      .def_readwrite("keep", &server::LineLogOptions::keep)
      .def_readwrite("max_queued", &server::LineLogOptions::max_queued);
  py::class_<AuditOptions, server::LineLogOptions>(m, "AuditOptions").def(py::init<>());
  py::class_<server::PayloadLogOptions>(m, "PayloadLogOptions")
      .def(py::init<>())
      .def_readwrite("file", &server::PayloadLogOptions::file)
      .def_readwrite("url", &server::PayloadLogOptions::url)
      .def_readwrite("post_timeout_ms", &server::PayloadLogOptions::post_timeout_ms)
      .def_readwrite("max_posts", &server::PayloadLogOptions::max_posts)
      .def_readwrite("sample_percent", &server::PayloadLogOptions::sample_percent);
  py::class_<SessionOptions>(m, "SessionOptions")
      .def(py::init<>())
      .def_readwrite("threads", &SessionOptions::threads)
      .def_readwrite("optimize", &SessionOptions::optimize)
      .def_property(
          "device", [](const SessionOptions& o) { return o.backend ? o.backend->name() : std::string("cpu"); },
          [](SessionOptions& o, const py::object& device) { o.backend = backend_of(device); },
          "The device models run on besides the CPU: set 'cpu', 'mock' or a backend capsule; reads its name.");
  py::class_<IntegrityOptions>(m, "IntegrityOptions")
      .def(py::init<>())
      .def_readwrite("trusted_keys", &IntegrityOptions::trusted_keys)
      .def_readwrite("require_signatures", &IntegrityOptions::require_signatures);
  py::class_<server::RemoteOptions>(m, "RemoteOptions")
      .def(py::init<>())
      .def_readwrite("cache_dir", &server::RemoteOptions::cache_dir)
      .def_readwrite("timeout_ms", &server::RemoteOptions::timeout_ms);
  py::class_<ManagerOptions>(m, "ManagerOptions")
      .def(py::init<>())
      .def_readwrite("remote", &ManagerOptions::remote)
      .def_readwrite("session", &ManagerOptions::session)
      .def_readwrite("pack_cache_dir", &ManagerOptions::pack_cache_dir)
      .def_readwrite("batching", &ManagerOptions::batching)
      .def_readwrite("warmup", &ManagerOptions::warmup)
      .def_readwrite("integrity", &ManagerOptions::integrity)
      .def_property(
          "model_key", [](const ManagerOptions& o) { return py::bytes(o.model_key); },
          [](ManagerOptions& o, const py::bytes& key) { o.model_key = key; })
      .def_property(
          "quiet",
          [](const ManagerOptions& o) {
            auto* f = o.log.target<void (*)(const std::string&)>();
            return f != nullptr && *f == &silent;
          },
          [](ManagerOptions& o, bool quiet) { o.log = quiet ? &silent : nullptr; });
  py::class_<ServerOptions>(m, "ServerOptions")
      .def(py::init<>())
      .def_readwrite("http", &ServerOptions::http)
      .def_readwrite("grpc", &ServerOptions::grpc)
      .def_readwrite("access", &ServerOptions::access)
      .def_readwrite("audit", &ServerOptions::audit)
      .def_readwrite("payload", &ServerOptions::payload)
      .def_readwrite("manager", &ServerOptions::manager)
      .def_readwrite("request_timeout_ms", &ServerOptions::request_timeout_ms)
      .def_readwrite("file_system_poll_wait_seconds", &ServerOptions::file_system_poll_wait_seconds)
      .def_readwrite("model_config_file", &ServerOptions::model_config_file)
      .def_readwrite("model_config_file_poll_wait_seconds", &ServerOptions::model_config_file_poll_wait_seconds);
}

}  // namespace

void bind_server(py::module_& m) {
  bind_options(m);
  py::class_<ModelServer>(m, "Server")
      .def_static(
          "start",
          [](const ServerOptions& opts, const py::list& models, const py::list& sessions) {
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
          },
          py::arg("options"), py::arg("models"), py::arg("sessions"))
      .def_property_readonly("port", &ModelServer::port)
      .def_property_readonly("grpc_port", &ModelServer::grpc_port)
      .def_property_readonly("ready", &ModelServer::ready)
      .def(
          "poll",
          [](ModelServer& s) {
            py::gil_scoped_release nogil;
            s.manager().poll();
          },
          "Scans the model folders now (load new versions, unload removed ones).")
      .def(
          "stop",
          [](ModelServer& s, int drain_ms) {
            py::gil_scoped_release nogil;
            s.stop(drain_ms);
          },
          py::arg("drain_ms") = 30000, "Stops accepting, drains in-flight requests, then stops.")
      .def(
          "reload_config",
          [](ModelServer& s, const py::list& models) {
            std::vector<server::ModelConfig> cfg = models_from(models);
            Status st;
            {
              py::gil_scoped_release nogil;
              st = s.reload_config(cfg);
            }
            raise_if_error(st);
          },
          py::arg("models"), "Replaces the models served from disk (as start()'s list), rollouts included.")
      .def(
          "report_source",
          [](ModelServer& s, const std::string& model, const std::string& uri, const std::string& error) {
            raise_if_error(s.manager().report_source(model, uri, error.empty() ? Status::OK() : Unavailable(error)));
          },
          py::arg("model"), py::arg("uri"), py::arg("error"),
          "Shows the outcome of a look at a model's outside source (\"\": fine) in its status and metrics.");

  m.def(
      "generate_signing_key",
      [] {
        auto k = server::generate_signing_key();
        raise_if_error(k.status());
        return py::make_tuple(k.value().first, k.value().second);
      },
      "A new Ed25519 key pair as PEM text: (private, public).");
  m.def(
      "sign_folder",
      [](const std::string& dir, const std::string& private_pem) {
        raise_if_error(server::sign_folder(dir, private_pem));
      },
      py::arg("dir"), py::arg("private_key_pem"),
      "Writes mserve.manifest and mserve.manifest.sig into a version folder.");
  m.def(
      "verify_folder",
      [](const std::string& dir, const std::vector<std::string>& keys, bool require) {
        server::IntegrityOptions o;
        o.trusted_keys = keys;
        o.require_signatures = require;
        raise_if_error(server::validate(o));
        raise_if_error(server::verify_folder(dir, o));
      },
      py::arg("dir"), py::arg("trusted_keys"), py::arg("require") = true, "Checks a signed version folder.");
  m.def(
      "read_model_key",
      [](const std::string& file, const std::string& env) {
        auto k = server::read_key(file, env);
        raise_if_error(k.status());
        return py::bytes(k.value());
      },
      py::arg("file") = "", py::arg("env") = "");
  m.def(
      "encrypt_model",
      [](const std::string& plain, const std::string& key) {
        auto e = server::encrypt_model(plain, key);
        raise_if_error(e.status());
        return py::bytes(e.value());
      },
      py::arg("data"), py::arg("key"), "AES-256-GCM: the bytes of an encrypted model file.");
  m.def(
      "decrypt_model",
      [](const std::string& data, const std::string& key) {
        auto d = server::decrypt_model(data, key);
        raise_if_error(d.status());
        return py::bytes(d.value());
      },
      py::arg("data"), py::arg("key"));
  m.def(
      "parse_batching_parameters",
      [](const std::string& text) {
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
      },
      "Parses a TensorFlow Serving batching parameters text file's contents into a dict.");
  m.def(
      "mirror_dir",
      [](const std::string& cache_dir, const std::string& model, const std::string& uri) {
        server::RemoteOptions o;
        o.cache_dir = cache_dir;
        return server::mirror_dir(o, model, uri);
      },
      py::arg("cache_dir"), py::arg("model"), py::arg("uri"),
      "The folder a remote base path of a model is mirrored into (cache_dir \"\": the default cache).");
  m.def(
      "parse_model_config",
      [](const std::string& text) {
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
      },
      "Parses a TensorFlow Serving model_config_list text file's contents into a list of dicts.");
}

}  // namespace mserve::py_bind

PYBIND11_MODULE(_server, m) {
  m.doc() = "mserve's model server (private: use mserve.serve / mserve.start)";
  // Server.start takes the runtime's Session objects, bound by _core.
  pybind11::module_::import("mserve._core");
  mserve::py_bind::bind_server(m);
}
