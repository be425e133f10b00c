# mserve._server: the model server's extension module (cpp/bindings/bind_server.cc), imported
# by mserve.serving on first use.
from typing import Any

from ._core import Session, _pybind11_type

# The server's option structs (cpp/server), field by field; mserve.options maps start()'s keywords
# and the CLI's flags onto them.
class BatchingOptions(metaclass=_pybind11_type):
    max_batch_size: int
    batch_timeout_micros: int
    max_enqueued_batches: int
    num_batch_threads: int
    allowed_batch_sizes: list[int]
    pad_variable_length_inputs: bool
    def __init__(self) -> None: ...

class HttpOptions(metaclass=_pybind11_type):
    host: str
    port: int
    threads: int
    body_limit: int
    idle_timeout_ms: int
    read_timeout_ms: int
    max_connections: int
    tls_cert_file: str
    tls_key_file: str
    def __init__(self) -> None: ...

class GrpcOptions(metaclass=_pybind11_type):
    host: str
    port: int
    max_threads: int
    max_message_bytes: int
    tls_cert_file: str
    tls_key_file: str
    def __init__(self) -> None: ...

class AccessOptions(metaclass=_pybind11_type):
    tokens_file: str
    tokens_env: str
    allow_cidrs: list[str]
    open_health: bool
    def __init__(self) -> None: ...

class LineLogOptions(metaclass=_pybind11_type):
    path: str
    max_bytes: int
    keep: int
    max_queued: int
    def __init__(self) -> None: ...

class AuditOptions(LineLogOptions):
    def __init__(self) -> None: ...

class PayloadLogOptions(metaclass=_pybind11_type):
    file: LineLogOptions
    url: str
    post_timeout_ms: int
    max_posts: int
    sample_percent: float
    def __init__(self) -> None: ...

class SessionOptions(metaclass=_pybind11_type):
    threads: int
    optimize: bool
    @property
    def device(self) -> str: ...
    @device.setter
    def device(self, value: object) -> None: ...
    def __init__(self) -> None: ...

class IntegrityOptions(metaclass=_pybind11_type):
    trusted_keys: list[str]
    require_signatures: bool
    def __init__(self) -> None: ...

class RemoteOptions(metaclass=_pybind11_type):
    cache_dir: str
    timeout_ms: int
    def __init__(self) -> None: ...

class ManagerOptions(metaclass=_pybind11_type):
    remote: RemoteOptions
    session: SessionOptions
    pack_cache_dir: str
    batching: BatchingOptions | None
    warmup: bool
    integrity: IntegrityOptions
    model_key: bytes
    quiet: bool
    def __init__(self) -> None: ...

class ServerOptions(metaclass=_pybind11_type):
    http: HttpOptions
    grpc: GrpcOptions
    access: AccessOptions
    audit: AuditOptions
    payload: PayloadLogOptions
    manager: ManagerOptions
    request_timeout_ms: int
    file_system_poll_wait_seconds: int
    model_config_file: str
    model_config_file_poll_wait_seconds: int
    def __init__(self) -> None: ...

class Server(metaclass=_pybind11_type):
    def __init__(self, *args: Any, **kwargs: Any) -> None: ...  # no constructor: start()
    # models: {name, base_path, policy, num_versions, versions, labels, batching}; sessions: (name, Session)
    @staticmethod
    def start(
        options: ServerOptions, models: list[dict[str, Any]], sessions: list[tuple[str, Session]]
    ) -> Server: ...
    @property
    def port(self) -> int: ...
    @property
    def grpc_port(self) -> int: ...
    @property
    def ready(self) -> bool: ...
    def poll(self) -> None: ...
    def stop(self, drain_ms: int = 30000) -> None: ...
    def reload_config(self, models: list[dict[str, Any]]) -> None: ...
    def report_source(self, model: str, uri: str, error: str) -> None: ...

def generate_signing_key() -> tuple[str, str]: ...
def sign_folder(dir: str, private_key_pem: str) -> None: ...
def verify_folder(dir: str, trusted_keys: list[str], require: bool = True) -> None: ...
def read_model_key(file: str = "", env: str = "") -> bytes: ...
def encrypt_model(data: bytes, key: bytes) -> bytes: ...
def decrypt_model(data: bytes, key: bytes) -> bytes: ...
def parse_batching_parameters(text: str) -> dict[str, Any]: ...
def mirror_dir(cache_dir: str, model: str, uri: str) -> str: ...
def parse_model_config(text: str) -> list[dict[str, Any]]: ...
