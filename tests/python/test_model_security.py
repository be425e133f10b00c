"""Model integrity (SHA-256 manifests signed with Ed25519: `mserve keygen`, `mserve sign`) and
encryption at rest (AES-256-GCM: `mserve encrypt`): a version that is unsigned when signatures
are required, altered, signed with another key, or encrypted under another key is refused with a
clear error in its status, and the serving version stays."""
import base64
import os
import shutil
import subprocess
import sys
import time

import pytest
import requests

import mserve
from mserve import _server
from serve_util import scale_model, write_version

X = [[1.0, 1.0, 1.0, 1.0]]


def cli(*args, env=None):
    r = subprocess.run([sys.executable, "-m", "mserve", *args], capture_output=True, text=True,
                       env=dict(os.environ, **(env or {})))
    return r


def keypair(d, name="k"):
    r = cli("keygen", str(d / name))
    assert r.returncode == 0, r.stderr
    assert oct(os.stat(d / f"{name}.key").st_mode & 0o777) == "0o600"
    return str(d / f"{name}.key"), str(d / f"{name}.pub")


def sign(folder, key):
    r = cli("sign", f"--key={key}", str(folder))
    assert r.returncode == 0, r.stderr


def status(s, model="m"):
    return {int(v["version"]): v for v in requests.get(f"{s.url}/v1/models/{model}").json()["model_version_status"]}


def predict(s, model="m"):
    r = requests.post(f"{s.url}/v1/models/{model}:predict", json={"instances": X})
    assert r.status_code == 200, r.text
    return r.json()["predictions"][0][0]


def wait_state(s, version, state, timeout=15):
    deadline = time.monotonic() + timeout
    while True:
        st = status(s).get(version)
        if st and st["state"] == state:
            return st
        assert time.monotonic() < deadline, f"version {version} never reached {state}: {st}"
        s.poll()
        time.sleep(0.05)


def test_signed_versions_serve_and_bad_ones_are_refused(tmp_path):
    key, pub = keypair(tmp_path)
    other_key, _ = keypair(tmp_path, "other")
    base = tmp_path / "m"
    write_version(base, 1, scale_model(1.0))
    sign(base / "1", key)
    assert sorted(os.listdir(base / "1")) == ["model.onnx", "mserve.manifest", "mserve.manifest.sig"]
    with mserve.start({"m": str(base)}, port=0, quiet=True, trusted_keys=[pub],
                      require_signatures=True, file_system_poll_wait_seconds=0) as s:
        s.wait_ready()
        assert predict(s) == 1.0

        # Unsigned.
        write_version(base, 2, scale_model(2.0))
        st = wait_state(s, 2, "END")
        assert "no mserve.manifest" in st["status"]["error_message"]
        assert predict(s) == 1.0

        # Signed, then altered.
        write_version(base, 3, scale_model(3.0))
        sign(base / "3", key)
        with open(base / "3" / "model.onnx", "r+b") as f:
            f.seek(-1, os.SEEK_END)
            last = f.read(1)
            f.seek(-1, os.SEEK_END)
            f.write(bytes([last[0] ^ 1]))
        st = wait_state(s, 3, "END")
        assert "does not match its manifest digest" in st["status"]["error_message"]

        # Signed with a key the server does not trust.
        write_version(base, 4, scale_model(4.0))
        sign(base / "4", other_key)
        st = wait_state(s, 4, "END")
        assert "does not verify with any trusted key" in st["status"]["error_message"]

        # A file slipped in after signing.
        write_version(base, 5, scale_model(5.0))
        sign(base / "5", key)
        (base / "5" / "extra.bin").write_bytes(b"x")
        st = wait_state(s, 5, "END")
        assert "not in the signed manifest" in st["status"]["error_message"]
        assert predict(s) == 1.0

        # Re-signing the fixed folder makes it load (a failed version is retried when its files change).
        (base / "5" / "extra.bin").unlink()
        sign(base / "5", key)
        wait_state(s, 5, "AVAILABLE")
        assert predict(s) == 5.0


def test_a_manifest_is_checked_even_when_not_required(tmp_path):
    key, _ = keypair(tmp_path)
    base = tmp_path / "m"
    write_version(base, 1, scale_model(1.0))
    sign(base / "1", key)
    (base / "1" / "model.onnx").write_bytes((base / "1" / "model.onnx").read_bytes() + b"\0")
    with mserve.start({"m": str(base)}, port=0, quiet=True) as s:
        st = wait_state(s, 1, "END")
        assert "manifest digest" in st["status"]["error_message"]
        assert not s.ready


def test_signature_settings_are_checked_at_start(tmp_path):
    m = mserve.load(scale_model(1.0))
    with pytest.raises(mserve.InvalidArgument, match="no trusted public key"):
        mserve.start(m, port=0, quiet=True, require_signatures=True)
    bad = tmp_path / "bad.pub"
    bad.write_text("not a key")
    with pytest.raises(mserve.InvalidArgument, match="trusted key 1"):
        mserve.start(m, port=0, quiet=True, trusted_keys=[str(bad)])
    with pytest.raises(mserve.InvalidArgument, match="cannot read trusted key"):
        mserve.start(m, port=0, quiet=True, trusted_keys=[str(tmp_path / "absent.pub")])
    key, pub = keypair(tmp_path)
    single = tmp_path / "single.onnx"
    write_version(tmp_path / "x", 1, scale_model(1.0))
    shutil.copy(tmp_path / "x" / "1" / "model.onnx", single)
    with mserve.start({"m": str(single)}, port=0, quiet=True, trusted_keys=[pub],
                      require_signatures=True) as s:
        assert "signed models are version folders" in wait_state(s, 1, "END")["status"]["error_message"]


def test_verify_folder_binding(tmp_path):
    private, public = _server.generate_signing_key()
    write_version(tmp_path / "m", 1, scale_model(1.0))
    _server.sign_folder(str(tmp_path / "m" / "1"), private)
    _server.verify_folder(str(tmp_path / "m" / "1"), [public])
    _, stranger = _server.generate_signing_key()
    with pytest.raises(mserve.ModelLoadError, match="does not verify"):
        _server.verify_folder(str(tmp_path / "m" / "1"), [stranger])
    (tmp_path / "m" / "1" / "mserve.manifest").write_text("sha256 zz  model.onnx\n")
    with pytest.raises(mserve.ModelLoadError):
        _server.verify_folder(str(tmp_path / "m" / "1"), [public])


@pytest.fixture
def encrypted(tmp_path):
    plain = tmp_path / "plain.onnx"
    write_version(tmp_path / "p", 1, scale_model(7.0))
    shutil.copy(tmp_path / "p" / "1" / "model.onnx", plain)
    base = tmp_path / "enc"
    (base / "1").mkdir(parents=True)
    r = cli("encrypt", f"--new_key={tmp_path / 'model.key'}", str(plain), str(base / "1" / "model.onnx"))
    assert r.returncode == 0, r.stderr
    data = (base / "1" / "model.onnx").read_bytes()
    assert data.startswith(b"MSERVE-ENC1\n") and plain.read_bytes() not in data
    return base, tmp_path / "model.key", plain


def test_encrypted_model_serves_with_its_key(encrypted, tmp_path):
    base, key, plain = encrypted
    with mserve.start({"m": str(base)}, port=0, quiet=True, model_key_file=str(key)) as s:
        s.wait_ready()
        assert predict(s) == 7.0
    # The same key as base64 in an environment variable; and as 32 raw bytes in a file.
    raw = bytes.fromhex(key.read_text().strip())
    b64 = base64.b64encode(raw).decode()
    os.environ["MSERVE_TEST_MODEL_KEY"] = b64
    try:
        with mserve.start({"m": str(base)}, port=0, quiet=True,
                          model_key_env="MSERVE_TEST_MODEL_KEY") as s:
            s.wait_ready()
            assert predict(s) == 7.0
    finally:
        del os.environ["MSERVE_TEST_MODEL_KEY"]
    (tmp_path / "raw.key").write_bytes(raw)
    assert _server.decrypt_model((base / "1" / "model.onnx").read_bytes(),
                               _server.read_model_key(str(tmp_path / "raw.key"))) == plain.read_bytes()


@pytest.mark.parametrize("case,needle", [("no_key", "encrypted; give the server its model key"),
                                         ("wrong_key", "wrong key, or the file was altered"),
                                         ("altered", "wrong key, or the file was altered"),
                                         ("truncated", "truncated")])
def test_encrypted_model_errors(encrypted, tmp_path, case, needle):
    base, key, _ = encrypted
    kw = {"model_key_file": str(key)}
    f = base / "1" / "model.onnx"
    data = bytearray(f.read_bytes())
    if case == "no_key":
        kw = {}
    elif case == "wrong_key":
        other = tmp_path / "other.key"
        other.write_text(os.urandom(32).hex())
        kw = {"model_key_file": str(other)}
    elif case == "altered":
        data[40] ^= 0x10
        f.write_bytes(bytes(data))
    else:
        f.write_bytes(bytes(data[:20]))
    with mserve.start({"m": str(base)}, port=0, quiet=True, **kw) as s:
        assert needle in wait_state(s, 1, "END")["status"]["error_message"]


def test_bad_model_keys_are_refused(tmp_path):
    m = mserve.load(scale_model(1.0))
    short = tmp_path / "short.key"
    short.write_text("abcd")
    with pytest.raises(mserve.InvalidArgument, match="not 32 bytes"):
        mserve.start(m, port=0, quiet=True, model_key_file=str(short))
    with pytest.raises(mserve.InvalidArgument, match="MSERVE_NO_SUCH_KEY"):
        mserve.start(m, port=0, quiet=True, model_key_env="MSERVE_NO_SUCH_KEY")
    r = cli("encrypt", f"--key_file={short}", str(short), str(tmp_path / "out"))
    assert r.returncode == 1 and "not 32 bytes" in r.stderr


def test_encrypted_and_signed(encrypted, tmp_path):
    base, key, _ = encrypted
    private, public = keypair(tmp_path, "signer")
    sign(base / "1", private)
    with mserve.start({"m": str(base)}, port=0, quiet=True, model_key_file=str(key),
                      trusted_keys=[public], require_signatures=True) as s:
        s.wait_ready()
        assert predict(s) == 7.0


def test_cli_errors_are_clear(tmp_path):
    r = cli("sign", f"--key={tmp_path / 'absent.key'}", str(tmp_path))
    assert r.returncode == 1 and "mserve sign" in r.stderr
    bad = tmp_path / "bad.key"
    bad.write_text("junk")
    r = cli("sign", f"--key={bad}", str(tmp_path))
    assert r.returncode == 1 and "PEM private key" in r.stderr
