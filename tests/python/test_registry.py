"""The registry view (GET /v1/registry..., gRPC mserve.ConfigService/ListModels): every model with
its source, labels and versions, each version's state, file, SHA-256 digest (checked with
hashlib), signer key id (checked against the public key's DER), encryption and load time; behind
the same access control as the rest."""
import base64
import hashlib

import pytest
import requests

import mserve
from mserve import _server
from serve_util import scale_model, write_version

grpc = pytest.importorskip("grpc")


def key_id(public_pem):
    der = base64.b64decode("".join(line for line in public_pem.splitlines() if "-----" not in line))
    return hashlib.sha256(der).hexdigest()[:16]


@pytest.fixture
def served(tmp_path):
    private, public = _server.generate_signing_key()
    (tmp_path / "key.pub").write_text(public)
    write_version(tmp_path / "signed", 1, scale_model(1.0))
    write_version(tmp_path / "signed", 2, scale_model(2.0))
    for v in (1, 2):
        _server.sign_folder(str(tmp_path / "signed" / str(v)), private)
    (tmp_path / "enc" / "1").mkdir(parents=True)
    (tmp_path / "model.key").write_text("ab" * 32 + "\n")
    plain = tmp_path / "plain.onnx"
    write_version(tmp_path / "p", 1, scale_model(7.0))
    plain.write_bytes((tmp_path / "p" / "1" / "model.onnx").read_bytes())
    encrypted = _server.encrypt_model(plain.read_bytes(), _server.read_model_key(str(tmp_path / "model.key"), ""))
    (tmp_path / "enc" / "1" / "model.onnx").write_bytes(encrypted)
    cfg = tmp_path / "models.config"
    cfg.write_text(f"""model_config_list {{
      config {{ name: 'signed' base_path: '{tmp_path / "signed"}' model_version_policy {{ all {{}} }}
               version_labels {{ key: 'stable' value: 1 }} }}
      config {{ name: 'enc' base_path: '{tmp_path / "enc"}' }} }}""")
    tokens = tmp_path / "tokens"
    tokens.write_text("admin-token-0123456789 ops\nlimited-token-abcdefgh bot models=enc\n")
    with mserve.start(str(cfg), port=0, grpc_port=0, quiet=True, trusted_keys=[str(tmp_path / "key.pub")],
                      model_key_file=str(tmp_path / "model.key"), auth_tokens_file=str(tokens)) as s:
        s.wait_ready()
        s.tmp = tmp_path
        s.public = public
        yield s


ADMIN = {"Authorization": "Bearer admin-token-0123456789"}


def test_the_registry_lists_models_versions_and_their_provenance(served):
    r = requests.get(f"{served.url}/v1/registry", headers=ADMIN)
    assert r.status_code == 200, r.text
    models = {m["name"]: m for m in r.json()["models"]}
    signed, enc = models["signed"], models["enc"]
    assert signed["source"] == str(served.tmp / "signed") and signed["labels"] == {"stable": "1"}
    assert [v["version"] for v in signed["versions"]] == ["2", "1"]
    for v in signed["versions"]:
        path = served.tmp / "signed" / v["version"] / "model.onnx"
        assert v["state"] == "AVAILABLE" and v["path"] == str(path)
        assert v["digest"] == "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
        assert v["signer"] == key_id(served.public) and v["encrypted"] is False
        assert v["loaded_at"].endswith("Z") and v["load_seconds"] > 0
    (e,) = enc["versions"]
    assert e["encrypted"] is True and e["signer"] == ""
    assert e["digest"] == "sha256:" + hashlib.sha256((served.tmp / "enc" / "1" / "model.onnx").read_bytes()).hexdigest()
    one = requests.get(f"{served.url}/v1/registry/signed/versions/1", headers=ADMIN).json()
    assert one == signed["versions"][1]
    assert requests.get(f"{served.url}/v1/registry/signed", headers=ADMIN).json() == signed
    assert requests.get(f"{served.url}/v1/registry/nope", headers=ADMIN).status_code == 404
    assert requests.get(f"{served.url}/v1/registry/signed/versions/9", headers=ADMIN).status_code == 404
    assert requests.get(f"{served.url}/v1/registry/signed/versions/x", headers=ADMIN).status_code == 400
    assert requests.post(f"{served.url}/v1/registry", headers=ADMIN).status_code == 400


def test_the_registry_is_behind_access_control(served):
    limited = {"Authorization": "Bearer limited-token-abcdefgh"}
    assert requests.get(f"{served.url}/v1/registry").status_code == 401
    assert requests.get(f"{served.url}/v1/registry", headers=limited).status_code == 403  # server-wide
    assert requests.get(f"{served.url}/v1/registry/signed", headers=limited).status_code == 403
    assert requests.get(f"{served.url}/v1/registry/enc", headers=limited).status_code == 200


def test_the_registry_over_grpc(served):
    import sys

    from test_grpc import TFS_PROTOS, protoc
    out = served.tmp / "stubs"
    out.mkdir()
    protoc(out, TFS_PROTOS, f"--python_out={out}", f"--grpc_python_out={out}")
    sys.path.append(str(out))
    from mserve_apis import config_service_pb2, config_service_pb2_grpc
    stub = config_service_pb2_grpc.ConfigServiceStub(grpc.insecure_channel(served.grpc_target))
    md = [("authorization", ADMIN["Authorization"])]
    resp = stub.ListModels(config_service_pb2.ListModelsRequest(), metadata=md)
    rest = requests.get(f"{served.url}/v1/registry", headers=ADMIN).json()["models"]
    assert sorted(m.name for m in resp.models) == sorted(m["name"] for m in rest)
    (signed,) = [m for m in resp.models if m.name == "signed"]
    assert [v.version for v in signed.versions] == [2, 1] and dict(signed.labels) == {"stable": 1}
    assert signed.versions[0].signer == key_id(served.public) and signed.versions[0].digest.startswith("sha256:")
    one = stub.ListModels(config_service_pb2.ListModelsRequest(name="signed", version=1), metadata=md)
    assert [v.version for v in one.models[0].versions] == [1]
    with pytest.raises(grpc.RpcError) as e:
        stub.ListModels(config_service_pb2.ListModelsRequest(name="signed", version=9), metadata=md)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as e:
        limited = [("authorization", "Bearer limited-token-abcdefgh")]
        stub.ListModels(config_service_pb2.ListModelsRequest(), metadata=limited)
    assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
