from typing import Any, Callable

import numpy as np

# (name, dtype, shape, ZipMap labels: set for outputs returned as a list of {label: score} dicts;
# ints, or strs for string class labels). dtype is a numpy dtype name ("float32", "int64", ...)
# or "string" for ONNX tensor(string): such inputs take numpy arrays of dtype object (str/bytes
# elements), 'U' or 'S' (copied in), and such outputs come back as object arrays of str.
_Spec = tuple[str, str, tuple[int | str | None, ...] | None, list[int | str] | None]

# pybind11's metaclass of every bound class.
class _pybind11_type(type): ...

class Session(metaclass=_pybind11_type):
    def __init__(self, *args: Any, **kwargs: Any) -> None: ...  # no constructor: load_file() / load_bytes()
    @staticmethod
    def load_file(path: str, threads: int = 0, optimize: bool = True, device: object = None,
                  graphs: bool = True, pack_cache: str = "") -> Session: ...
    @staticmethod
    def load_bytes(data: bytes, threads: int = 0, base_dir: str = "", optimize: bool = True,
                   device: object = None, graphs: bool = True) -> Session: ...
    @property
    def inputs(self) -> list[_Spec]: ...
    @property
    def outputs(self) -> list[_Spec]: ...
    @property
    def threads(self) -> int: ...
    @property
    def pack_cache(self) -> dict[str, Any] | None: ...
    @property
    def producer(self) -> str: ...
    @property
    def ir_version(self) -> int: ...
    @property
    def opsets(self) -> dict[str, int]: ...
    @property
    def cached_plans(self) -> int: ...
    @property
    def device(self) -> str: ...
    def placement(self) -> dict[str, Any] | None: ...
    @property
    def num_nodes(self) -> int: ...
    @property
    def node_ops(self) -> list[str]: ...
    def fast_run(self) -> Callable[[object], np.ndarray[Any, Any] | None] | None: ...
    def set_profiling(self, on: bool) -> None: ...
    def profile(self) -> list[tuple[str, int, int]]: ...
    def run(self, inputs: list[Any], device_outputs: bool = False) -> list[Any]: ...

class DeviceTensor(metaclass=_pybind11_type):
    def __init__(self, *args: Any, **kwargs: Any) -> None: ...  # made by Session.run only
    @property
    def shape(self) -> tuple[int, ...]: ...
    @property
    def dtype(self) -> np.dtype[Any]: ...
    @property
    def device(self) -> str: ...
    @property
    def nbytes(self) -> int: ...
    def numpy(self) -> np.ndarray[Any, Any]: ...
    @staticmethod
    def from_cuda_array(array: object, session: Session) -> DeviceTensor: ...
    @property
    def __cuda_array_interface__(self) -> dict[str, Any]: ...

def supported_ops() -> list[tuple[str, str, int, str]]: ...
def cpu_isa() -> str: ...
def int8_vnni() -> bool: ...

max_opset: int

def zipmap(scores: np.ndarray[Any, Any], keys: list[Any]) -> list[dict[object, float]]: ...

__version__: str

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
def parse_model_config(text: str) -> list[dict[str, Any]]: ...
