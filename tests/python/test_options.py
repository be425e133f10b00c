"""The server's options table (mserve.options.OPTIONS): every row is a keyword of start() / serve() and
a flag of `python -m mserve serve` that reach the C++ server's options; a misspelt one is an error."""
import argparse
import json
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings

import pytest
import requests

import mserve
from mserve import _core, _server, options
from serve_util import scale_model, write_version

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture
def model_dir(tmp_path):
    write_version(tmp_path / "m", 1, scale_model(2.0))
    return tmp_path / "m"


@pytest.fixture
def files(tmp_path, monkeypatch):
    monkeypatch.setenv("MSERVE_TEST_MODEL_KEY", "ab" * 32)
    key = tmp_path / "model.key"
    key.write_text("ab" * 32 + "\n")
    pub = tmp_path / "trusted.pub"
    pub.write_text("-----BEGIN PUBLIC KEY-----\nnot checked before start\n-----END PUBLIC KEY-----\n")
    batching = tmp_path / "batching.txt"
    batching.write_text("max_batch_size { value: 7 }\n")
    return {"key": str(key), "pub": str(pub), "batching": str(batching), "dir": tmp_path}


# A value other than the default for every row: (keyword value, flag text).
def samples(files):
    d = files["dir"]
    return {
        "host": ("127.0.0.2", "127.0.0.2"),
        "port": (8601, "8601"),
        "grpc_port": (8602, "8602"),
        "grpc_max_threads": (3, "3"),
        "http_threads": (2, "2"),
        "request_timeout_ms": (1234, "1234"),
        "max_body_bytes": (4096, "4096"),
        "max_connections": (17, "17"),
        "idle_timeout_ms": (1500, "1500"),
        "read_timeout_ms": (2500, "2500"),
        "model_name": ("named", "named"),
        "threads": (3, "3"),
        "optimize": (False, "false"),
        "device": ("mock", "mock"),
        # made into the device's backend; other precisions need device "cuda": test_cuda_loader
        "precision": ("fp32", "fp32"),
        "warmup": (False, "false"),
        "pack_cache_dir": (str(d), str(d)),
        "batching": ({"max_batch_size": 7}, None),  # the flag takes --batching_parameters_file too
        "file_system_poll_wait_seconds": (5, "5"),
        "model_config_file_poll_wait_seconds": (6, "6"),
        "quiet": (True, "true"),
        "auth_tokens_file": (str(d / "tokens"), str(d / "tokens")),
        "auth_tokens_env": ("MSERVE_TEST_TOKENS", "MSERVE_TEST_TOKENS"),
        "allow_cidrs": (["10.0.0.0/8", "127.0.0.1/32"], "10.0.0.0/8,127.0.0.1/32"),
        "open_health_checks": (False, "false"),
        "tls_cert_file": (str(d / "cert.pem"), str(d / "cert.pem")),
        "tls_key_file": (str(d / "key.pem"), str(d / "key.pem")),
        "trusted_keys": ([files["pub"]], files["pub"]),
        "require_signatures": (True, "true"),
        "model_key_file": (files["key"], files["key"]),
        "model_key_env": ("MSERVE_TEST_MODEL_KEY", "MSERVE_TEST_MODEL_KEY"),
        "audit_log": (str(d / "audit.log"), str(d / "audit.log")),
        "audit_log_max_bytes": (1 << 20, str(1 << 20)),
        "audit_log_keep": (2, "2"),
        "remote_cache_dir": (str(d / "remote"), str(d / "remote")),
        "payload_log": (str(d / "payload.jsonl"), str(d / "payload.jsonl")),
        "payload_log_url": ("http://127.0.0.1:9/events", "http://127.0.0.1:9/events"),
        "payload_sample_percent": (12.5, "12.5"),
        "payload_log_max_bytes": (1 << 21, str(1 << 21)),
        "payload_log_keep": (3, "3"),
    }


def field(core, path):
    for part in path.split("."):
        core = getattr(core, part)
    return core


def comparable(v):
    if isinstance(v, _server.BatchingOptions):
        return {k: getattr(v, k) for k in ("max_batch_size", "batch_timeout_micros", "max_enqueued_batches",
                                           "num_batch_threads", "allowed_batch_sizes", "pad_variable_length_inputs")}
    return v


def test_every_row_has_a_keyword_a_flag_a_type_a_default_and_help():
    names = [o.name for o in options.OPTIONS]
    assert len(names) == len(set(names))
    flags = [f for o in options.OPTIONS for f in o.flags]
    assert len(flags) == len(set(flags))
    for o in options.OPTIONS:
        assert o.name.isidentifier() and o.flags and all(f.startswith("--") for f in o.flags), o
        assert isinstance(o.type, options.Kind) and o.help, o
    # tensorflow_model_server's flag names, as the README lists them
    tf_flags = {"--model_name", "--model_config_file_poll_wait_seconds", "--file_system_poll_wait_seconds",
                "--enable_batching", "--port", "--grpc_max_threads", "--rest_api_port", "--rest_api_num_threads",
                "--rest_api_timeout_in_ms", "--tensorflow_intra_op_parallelism"}
    assert tf_flags <= set(flags)


def test_every_row_names_fields_of_the_cpp_options_and_matches_their_defaults():
    core = _server.ServerOptions()
    for o in options.OPTIONS:
        if o.name in ("model_name", "precision"):  # names the model; made into the device's backend
            assert o.fields == ()
            continue
        assert o.fields, o.name
        for path in o.fields:
            value = field(core, path)  # AttributeError for a field the C++ struct lacks
            if path == "manager.model_key":
                assert value == b""
            else:
                assert comparable(value) == comparable(o.type.to_core(o.name, o.default)), (o.name, path)


def test_the_cpp_options_refuse_unknown_fields():
    core = _server.ServerOptions()
    with pytest.raises(AttributeError):
        core.http.prot = 1
    with pytest.raises(AttributeError):
        core.reqest_timeout_ms = 1


def test_every_keyword_reaches_its_cpp_fields(files):
    values = samples(files)
    assert set(values) == {o.name for o in options.OPTIONS}, "every row needs a sample"
    checked = options.check("start", {k: v for k, (v, _) in values.items()})
    core = options.core_options(checked)
    for o in options.OPTIONS:
        for path in o.fields:
            got = field(core, path)
            if path == "manager.model_key":
                assert got == bytes.fromhex("ab" * 32)
            else:
                want = o.type.to_core(o.name, values[o.name][0])
                assert comparable(got) == comparable(want), (o.name, path)
                default = o.type.to_core(o.name, o.default)
                assert comparable(got) != comparable(default), f"{o.name}'s sample is its default"


def parse_serve(argv):
    p = argparse.ArgumentParser(allow_abbrev=False)
    options.add_arguments(p)
    return p.parse_args(argv)


def test_every_flag_reaches_the_same_cpp_fields_as_its_keyword(files, model_dir):
    values = samples(files)
    by_keyword = options.core_options(options.check("start", {k: v for k, (v, _) in values.items()}))
    for o in options.OPTIONS:
        for flag in o.flags:
            argv = [f"--model_base_path={model_dir}"]
            if o.name == "batching":
                argv += [flag, f"--batching_parameters_file={files['batching']}"]
            else:
                argv.append(f"{flag}={values[o.name][1]}")
            models, kw = options.from_arguments(parse_serve(argv))
            assert models == str(model_dir)
            assert kw[o.name] is not None, (flag, kw)
            by_flag = options.core_options(options.check("start", kw))
            for path in o.fields:
                assert comparable(field(by_flag, path)) == comparable(field(by_keyword, path)), (flag, path)
            if o.name == "model_name":
                assert kw["model_name"] == "named"


def test_flag_defaults_are_tensorflow_model_servers():
    _, kw = options.from_arguments(parse_serve(["--model_base_path=x"]))
    assert kw["host"] == "0.0.0.0" and kw["port"] == 8501 and kw["grpc_port"] == 8500
    assert kw["request_timeout_ms"] == 30000 and kw["model_name"] == "default" and kw["batching"] is None
    _, kw = options.from_arguments(parse_serve(["--model_base_path=x", "--port=-1", "--enable_batching"]))
    assert kw["grpc_port"] is None and kw["batching"] is True


@pytest.mark.parametrize("func", ["start", "serve"])
def test_a_misspelt_keyword_is_an_error_naming_it_and_the_closest(func, model_dir):
    with pytest.raises(TypeError, match=r"'grpc_prot'.*did you mean 'grpc_port'"):
        getattr(mserve, func)(str(model_dir), grpc_prot=0)
    with pytest.raises(TypeError, match=r"'zzz'"):
        getattr(mserve, func)(str(model_dir), zzz=1)


def test_a_misspelt_batching_parameter_or_a_wrong_type_is_invalid_argument(model_dir):
    with pytest.raises(mserve.InvalidArgument, match=r"max_batch_sise.*did you mean 'max_batch_size'"):
        mserve.start(str(model_dir), port=0, batching={"max_batch_sise": 4})
    with pytest.raises(mserve.InvalidArgument, match="port must be an int"):
        mserve.start(str(model_dir), port="8501")


def test_a_misspelt_or_abbreviated_flag_is_a_usage_error(model_dir):
    for flag in ("--rest_api_prot=0", "--rest_api_po=0"):
        r = subprocess.run([sys.executable, "-m", "mserve", "serve", f"--model_base_path={model_dir}", flag],
                           capture_output=True, text=True, check=False)
        assert r.returncode == 2 and flag.split("=")[0] in r.stderr


def test_cli_help_lists_every_flag_of_the_table():
    r = subprocess.run([sys.executable, "-m", "mserve", "serve", "--help"], capture_output=True, text=True,
                       check=True)
    for o in options.OPTIONS:
        for flag in o.flags:
            assert re.search(re.escape(flag) + r"\b", r.stdout), flag
    for flag in ("--model_base_path", "--model_config_file", "--batching_parameters_file"):
        assert flag in r.stdout


def test_start_returns_a_running_server_with_its_options(model_dir, tmp_path):
    audit = tmp_path / "audit.log"
    server = mserve.start(str(model_dir), model_name="named", port=0, grpc_port=0, quiet=True, max_body_bytes=200,
                          audit_log=audit, request_timeout_ms=10000)
    try:
        assert isinstance(server, mserve.Server)
        assert server.wait_ready().ready and server.grpc_port and server.grpc_port > 0
        r = requests.post(f"{server.url}/v1/models/named:predict", json={"instances": [[1, 2, 3, 4]]})
        assert r.json() == {"predictions": [[2.0, 4.0, 6.0, 8.0]]}
        r = requests.post(f"{server.url}/v1/models/named:predict", json={"instances": [[1.0] * 4] * 40})
        assert r.status_code == 413
    finally:
        server.stop()
    lines = [json.loads(line) for line in audit.read_text().splitlines()]
    assert [(line["model"], line["status"]) for line in lines][:1] == [("named", 200)]


def test_serve_blocking_false_is_a_deprecated_alias_of_start(model_dir):
    with pytest.warns(DeprecationWarning, match="mserve.start"):
        server = mserve.serve(str(model_dir), port=0, quiet=True, blocking=False)
    with server:
        assert isinstance(server, mserve.Server) and server.wait_ready().ready


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_blocks_until_sigterm_and_returns_none(model_dir):
    port = free_port()

    def stop_when_up():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)

    before = signal.getsignal(signal.SIGTERM)
    t = threading.Thread(target=stop_when_up)
    t.start()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert mserve.serve(str(model_dir), port=port, quiet=True) is None
    t.join()
    assert signal.getsignal(signal.SIGTERM) is before


def test_cli_flags_reach_the_running_server(model_dir, tmp_path):
    audit, port = tmp_path / "audit.log", free_port()
    proc = subprocess.Popen([sys.executable, "-m", "mserve", "serve", f"--model_base_path={model_dir}",
                             "--model_name=cli", f"--rest_api_port={port}", "--port=-1", "--host=127.0.0.1",
                             "--max_body_bytes=200", f"--audit_log={audit}", "--quiet"],
                            stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}/v1/models/cli:predict"
        deadline = time.monotonic() + 60
        while True:
            try:
                r = requests.post(url, json={"instances": [[1, 2, 3, 4]]}, timeout=5)
                if r.status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)
        assert requests.post(url, json={"instances": [[1.0] * 4] * 40}).status_code == 413
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert "serving on" not in proc.stderr.read()  # --quiet
    finally:
        if proc.poll() is None:
            proc.kill()
    lines = [json.loads(line) for line in audit.read_text().splitlines()]
    assert [(line["model"], line["status"]) for line in lines][:1] == [("cli", 200)]


def test_one_version_string_from_pyproject():
    version = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M).group(1)
    assert mserve.__version__ == _core.__version__ == version


def test_options_documented_in_starts_docstring():
    for o in options.OPTIONS:
        assert o.name in mserve.start.__doc__
