"""Loading a model file: weights taken from the mapped file (at every alignment; views of the
page cache where they are used as stored), truncated files, and weights that drop their bytes
once packed (shared with readers that need them as stored, or with nodes that constant folding
evaluates), checked against numpy."""
import gc

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import mserve


def _save(tmp_path, nodes, inputs, outputs, initializers, name="m.onnx"):
    g = helper.make_graph(nodes, "g", inputs, outputs, initializer=[numpy_helper.from_array(a, n) for n, a in
                                                                     initializers.items()])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / name
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("pad", [0, 1, 3])
def test_large_weights_at_every_alignment(tmp_path, pad):
    """A 24 MB weight after a small one of `pad` values lands at every alignment in the file and
    reads back exactly."""
    rng = np.random.default_rng(pad)
    big = rng.standard_normal((6_000_000,), np.float32)
    small = rng.standard_normal((pad + 1,), np.float32)
    nodes = [helper.make_node("Add", ["x", "big"], ["y"]), helper.make_node("ReduceSum", ["small"], ["s"])]
    path = _save(tmp_path, nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [6_000_000])],
                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, [6_000_000]),
                  helper.make_tensor_value_info("s", TensorProto.FLOAT, [1])],
                 {"small": small, "big": big})
    m = mserve.load(str(path))
    x = rng.standard_normal((6_000_000,), np.float32)
    out = m.predict({"x": x})
    np.testing.assert_array_equal(out["y"], x + big)
    np.testing.assert_allclose(out["s"], [small.sum()], rtol=1e-6)


def test_truncated_file_is_a_load_error(tmp_path):
    big = np.ones((3_000_000,), np.float32)
    path = _save(tmp_path, [helper.make_node("Add", ["x", "big"], ["y"])],
                 [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3_000_000])],
                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3_000_000])], {"big": big})
    data = path.read_bytes()
    for cut in (len(data) // 2, len(data) - 1, 10):
        bad = tmp_path / f"cut{cut}.onnx"
        bad.write_bytes(data[:cut])
        with pytest.raises(mserve.ModelLoadError, match="not an ONNX model"):
            mserve.load(str(bad))


def test_packed_weights_shared_with_readers_that_need_them(tmp_path):
    """W is packed by two MatMuls, read as stored by an Add, and by a MatMul whose other input
    constant folding computes; V only by one MatMul (its bytes go as soon as it is packed); U by
    a folded node only. Every answer matches numpy."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((64, 64), np.float32)
    v = rng.standard_normal((64, 32), np.float32)
    u = rng.standard_normal((64, 64), np.float32)
    c = rng.standard_normal((64, 64), np.float32)
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["a"]),
        helper.make_node("MatMul", ["a", "W"], ["b"]),
        helper.make_node("Add", ["b", "W"], ["y1"]),            # W as stored, at run time
        helper.make_node("Relu", ["C"], ["rc"]),                # folded: rc becomes constant
        helper.make_node("MatMul", ["rc", "W"], ["cw"]),        # folded too
        helper.make_node("MatMul", ["rc", "U"], ["cu"]),        # folded, U's only reader
        helper.make_node("Add", ["b", "cw"], ["bw"]),
        helper.make_node("Add", ["bw", "cu"], ["y2"]),
        helper.make_node("MatMul", ["x", "V"], ["y3"]),         # V: one packing reader
    ]
    path = _save(tmp_path, nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [64, 64])],
                 [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("y1", "y2", "y3")],
                 {"W": w, "V": v, "U": u, "C": c})
    x = rng.standard_normal((64, 64), np.float32)
    xd, wd, rc = x.astype(np.float64), w.astype(np.float64), np.maximum(c, 0).astype(np.float64)
    b = xd @ wd @ wd
    for optimize in (True, False):
        out = mserve.load(str(path), optimize=optimize).predict({"x": x})
        np.testing.assert_allclose(out["y1"], b + wd, rtol=1e-4, atol=1e-3)
        np.testing.assert_allclose(out["y2"], b + rc @ wd + rc @ u, rtol=1e-4, atol=1e-3)
        np.testing.assert_allclose(out["y3"], xd @ v, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("op", ["Gemm", "Conv"])
def test_weights_of_a_node_whose_other_input_is_folded(tmp_path, op):
    """The node's weight comes from a folded Relu, so folding creates its kernel again, and it
    reads its bias anew: the bias keeps its bytes until then."""
    rng = np.random.default_rng(1)
    if op == "Gemm":
        w = rng.standard_normal((32, 16), np.float32)
        bias = rng.standard_normal((16,), np.float32)
        x = rng.standard_normal((4, 32), np.float32)
        node = helper.make_node("Gemm", ["x", "wr", "B"], ["y"])
        want = x.astype(np.float64) @ np.maximum(w, 0) + bias
        xin, yshape = [4, 32], [4, 16]
    else:
        w = rng.standard_normal((8, 3, 3, 3), np.float32)
        bias = rng.standard_normal((8,), np.float32)
        x = rng.standard_normal((1, 3, 6, 6), np.float32)
        node = helper.make_node("Conv", ["x", "wr", "B"], ["y"])
        wr = np.maximum(w, 0).astype(np.float64)
        want = np.zeros((1, 8, 4, 4))
        for o in range(8):
            for i in range(4):
                for j in range(4):
                    want[0, o, i, j] = (x[0, :, i:i + 3, j:j + 3] * wr[o]).sum() + bias[o]
        xin, yshape = [1, 3, 6, 6], [1, 8, 4, 4]
    path = _save(tmp_path, [helper.make_node("Relu", ["W"], ["wr"]), node],
                 [helper.make_tensor_value_info("x", TensorProto.FLOAT, xin)],
                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, yshape)], {"W": w, "B": bias})
    np.testing.assert_allclose(mserve.load(str(path)).predict(x), want, rtol=1e-4, atol=1e-4)


def _mapped(path):
    with open("/proc/self/maps") as f:
        return any(line.rstrip().endswith(str(path)) for line in f)


def _embedding_file(path, table, aligned):
    """A Gather from `table`, written to `path` with the table's bytes at a 4-byte boundary in the
    file or off one (the model's doc string moves them)."""
    g = helper.make_graph([helper.make_node("Gather", ["E", "ids"], ["y"])], "g",
                          [helper.make_tensor_value_info("ids", TensorProto.INT64, [None])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 64])],
                          initializer=[numpy_helper.from_array(table, "E")])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    for pad in range(4):
        model.doc_string = "d" * pad
        data = model.SerializeToString()
        if (data.find(table.tobytes()) % 4 == 0) == aligned:
            break
    path.write_bytes(data)


def test_weights_used_as_stored_view_the_file(tmp_path):
    """An embedding read by Gather stays in the file's pages (shared by every process that maps
    the model) while the model lives; the mapping goes with the model."""
    rng = np.random.default_rng(2)
    table = rng.standard_normal((4096, 64), np.float32)
    path = tmp_path / "emb.onnx"
    _embedding_file(path, table, aligned=True)
    m = mserve.load(str(path))
    assert _mapped(path)
    ids = np.array([0, 4095, 17], np.int64)
    np.testing.assert_array_equal(m.predict(ids), table[ids])
    del m
    gc.collect()
    assert not _mapped(path)


def test_packed_weights_leave_the_file_unmapped(tmp_path):
    """Weights that every reader packs hold no view of the file once loaded."""
    rng = np.random.default_rng(3)
    w = rng.standard_normal((256, 256), np.float32)
    path = _save(tmp_path, [helper.make_node("MatMul", ["x", "W"], ["y"])],
                 [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 256])],
                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 256])], {"W": w})
    m = mserve.load(str(path))
    x = rng.standard_normal((8, 256), np.float32)
    np.testing.assert_allclose(m.predict(x), x.astype(np.float64) @ w, rtol=1e-4, atol=1e-4)
    assert not _mapped(path)


def _packing_model(tmp_path, seed=4, name="p.onnx"):
    """A MatMul, a Gemm and a Conv whose constant weights oneDNN packs, with its numpy oracle."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((256, 256), np.float32)
    g = rng.standard_normal((128, 256), np.float32)
    gb = rng.standard_normal((128,), np.float32)
    k = rng.standard_normal((16, 3, 3, 3), np.float32)
    nodes = [helper.make_node("MatMul", ["x", "W"], ["a"]),
             helper.make_node("Gemm", ["a", "G", "GB"], ["y"], transB=1),
             helper.make_node("Conv", ["img", "K"], ["z"])]
    path = _save(tmp_path, nodes,
                 [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 256]),
                  helper.make_tensor_value_info("img", TensorProto.FLOAT, [1, 3, 16, 16])],
                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
                  helper.make_tensor_value_info("z", TensorProto.FLOAT, None)],
                 {"W": w, "G": g, "GB": gb, "K": k}, name=name)
    x = rng.standard_normal((8, 256), np.float32)
    img = rng.standard_normal((1, 3, 16, 16), np.float32)
    y = x.astype(np.float64) @ w @ g.T.astype(np.float64) + gb
    z = np.zeros((1, 16, 14, 14))
    for i in range(14):
        for j in range(14):
            z[0, :, i, j] = np.tensordot(k.astype(np.float64), img[0, :, i:i + 3, j:j + 3], axes=3)
    return path, {"x": x, "img": img}, {"y": y, "z": z}


def _check(model, feeds, want):
    out = model.predict(feeds)
    for key, value in want.items():
        np.testing.assert_allclose(out[key], value, rtol=1e-4, atol=1e-3)


def test_pack_cache_is_written_once_then_mapped(tmp_path):
    path, feeds, want = _packing_model(tmp_path)
    cache = tmp_path / "cache"
    first = mserve.load(str(path), pack_cache=cache)
    r = first.pack_cache
    assert r["packed"] >= 3 and r["found"] == 0 and r["written"] and r["error"] == ""
    assert r["path"].startswith(str(cache)) and r["path"].endswith(".mspack")
    _check(first, feeds, want)
    second = mserve.load(str(path), pack_cache=cache)
    r2 = second.pack_cache
    # Found: every packed weight, and the unaligned copies still used as stored (W and G, which
    # the Eigen path reads for row counts too small for oneDNN).
    assert r2["found"] >= r["packed"] and r2["found"] <= r["packed"] + r["copied"]
    assert (r2["packed"], r2["copied"], r2["written"], r2["error"]) == (0, 0, False, "")
    assert _mapped(r2["path"])  # the packed weights are the file's pages
    _check(second, feeds, want)
    # True: beside the model; without: no cache at all.
    beside = mserve.load(str(path), pack_cache=True)
    assert beside.pack_cache["path"].startswith(str(tmp_path / ".mserve-cache"))
    assert mserve.load(str(path)).pack_cache is None


@pytest.mark.parametrize("damage", ["entry", "header", "truncated", "garbage", "empty"])
def test_damaged_pack_cache_is_ignored_and_rewritten(tmp_path, damage):
    path, feeds, want = _packing_model(tmp_path)
    cache = tmp_path / "cache"
    packed = mserve.load(str(path), pack_cache=cache).pack_cache
    f = tmp_path / packed["path"]
    data = bytearray(f.read_bytes())
    if damage == "entry":
        data[100] ^= 0x40  # inside the first entry's bytes
    elif damage == "header":
        data[9] ^= 1  # the environment digest: another build's file
    elif damage == "truncated":
        data = data[:len(data) // 2]
    elif damage == "garbage":
        data = bytearray(b"not a pack cache" * 8)
    else:
        data = bytearray()
    f.write_bytes(bytes(data))
    m = mserve.load(str(path), pack_cache=cache)
    r = m.pack_cache
    assert r["packed"] + r["copied"] >= 1 and r["written"] and "ignored" in r["error"]
    _check(m, feeds, want)
    again = mserve.load(str(path), pack_cache=cache).pack_cache
    assert again["found"] >= packed["packed"] and (again["packed"], again["copied"], again["error"]) == (0, 0, "")


def test_changed_weights_are_packed_anew(tmp_path):
    """Entries are keyed by the bytes they were packed from: a model file replaced by one with
    other weights finds nothing stale."""
    cache = tmp_path / "cache"
    path, _, _ = _packing_model(tmp_path, seed=4)
    mserve.load(str(path), pack_cache=cache)
    path, feeds, want = _packing_model(tmp_path, seed=5)  # same file name, new weights
    m = mserve.load(str(path), pack_cache=cache)
    assert m.pack_cache["found"] == 0 and m.pack_cache["packed"] >= 3
    _check(m, feeds, want)


def test_unwritable_pack_cache_never_fails_a_load(tmp_path):
    path, feeds, want = _packing_model(tmp_path)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    m = mserve.load(str(path), pack_cache=blocker / "cache")  # its parent is a file
    r = m.pack_cache
    assert not r["written"] and "could not write" in r["error"]
    _check(m, feeds, want)
    with pytest.raises(mserve.InvalidArgument, match="file path"):
        mserve.load(path.read_bytes(), pack_cache=True)
    with pytest.raises(mserve.InvalidArgument, match="pack_cache"):
        mserve.load(str(path), pack_cache=3)  # type: ignore[arg-type]


def test_servers_share_a_versions_packed_weights(tmp_path):
    """--pack_cache_dir: the first server to load a version writes DIR/<model>/<version>/...; a
    second one over the same repository maps that file and answers the same."""
    requests = pytest.importorskip("requests")
    path, feeds, want = _packing_model(tmp_path, name="model.onnx")
    version = tmp_path / "repo" / "m" / "1"
    version.mkdir(parents=True)
    path.rename(version / "model.onnx")
    cache = tmp_path / "packs"
    body = {"inputs": {"x": feeds["x"].tolist(), "img": feeds["img"].tolist()}}
    with mserve.start(str(tmp_path / "repo" / "m"), model_name="m", port=0, quiet=True, pack_cache_dir=cache) as a:
        a.wait_ready()
        files = list((cache / "m" / "1").glob("model.onnx.*.mspack"))
        assert len(files) == 1 and not _mapped(files[0])
        with mserve.start(str(tmp_path / "repo" / "m"), model_name="m", port=0, quiet=True,
                          pack_cache_dir=cache) as b:
            b.wait_ready()
            assert _mapped(files[0])
            for server in (a, b):
                r = requests.post(server.url + "/v1/models/m:predict", json=body)
                assert r.status_code == 200, r.text
                out = r.json()["outputs"]
                for key, value in want.items():
                    np.testing.assert_allclose(out[key], value, rtol=1e-4, atol=1e-3)


def test_unaligned_weights_used_as_stored_are_shared_through_the_cache(tmp_path):
    """An embedding that the file holds at an odd offset is copied at load; with a pack cache the
    copy is stored once and later loads map it (a Gather reads it as stored)."""
    rng = np.random.default_rng(6)
    table = rng.standard_normal((1024, 64), np.float32)
    path = tmp_path / "emb.onnx"
    _embedding_file(path, table, aligned=False)
    ids = np.array([3, 1023, 0], np.int64)
    first = mserve.load(str(path), pack_cache=tmp_path / "c")
    assert first.pack_cache["copied"] == 1 and first.pack_cache["written"]
    assert not _mapped(path)  # copied: no view of the file
    second = mserve.load(str(path), pack_cache=tmp_path / "c")
    assert (second.pack_cache["found"], second.pack_cache["copied"]) == (1, 0)
    assert _mapped(second.pack_cache["path"])
    for m in (first, second):
        np.testing.assert_array_equal(m.predict(ids), table[ids])
