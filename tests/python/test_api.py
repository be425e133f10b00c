"""Python API: input forms, outputs selection, zero copy, thread safety."""
import os
import pathlib
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest
from onnx import helper

import mserve
from op_harness import make_model, ort_run, random_inputs

rand = random_inputs(0)


@pytest.fixture(scope="module")
def two_io():
    # y = a + b, z = a * b
    nodes = [helper.make_node("Add", ["a", "b"], ["y"]), helper.make_node("Mul", ["a", "b"], ["z"])]
    return make_model(nodes, [("a", np.float32, ["n", 3]), ("b", np.float32, ["n", 3])],
                      [("y", np.float32, ["n", 3]), ("z", np.float32, ["n", 3])])


def test_input_forms_and_output_selection(two_io):
    m = mserve.load(two_io)
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.full((2, 3), 2, np.float32)
    by_dict = m.predict({"a": a, "b": b})
    by_list = m.predict([a, b])
    assert set(by_dict) == {"y", "z"}
    for k in by_dict:
        np.testing.assert_array_equal(by_dict[k], by_list[k])
    np.testing.assert_array_equal(m.predict({"a": a, "b": b}, outputs="z"), a * b)
    assert list(m.predict({"a": a, "b": b}, outputs=["y"])) == ["y"]
    # Non-contiguous arrays and lists are converted once.
    big = np.zeros((2, 6), np.float32)
    big[:, ::2] = a
    np.testing.assert_array_equal(m.predict([big[:, ::2], b.tolist()])["y"], a + b)


def test_single_input_forms():
    model = make_model([helper.make_node("Relu", ["x"], ["y"])], [("x", np.float32, [None, 2])],
                       [("y", np.float32, None)])
    m = mserve.load(model)
    x = np.array([[-1, 2]], np.float32)
    np.testing.assert_array_equal(m.predict(x), [[0, 2]])
    np.testing.assert_array_equal(m.predict([x]), [[0, 2]])
    np.testing.assert_array_equal(m.predict([[-1.0, 2.0]]), [[0, 2]])
    np.testing.assert_array_equal(m(x), [[0, 2]])
    assert m.inputs[0].shape == (None, 2)


def test_outputs_own_runtime_buffers():
    model = make_model([helper.make_node("Relu", ["x"], ["y"])], [("x", np.float32, ["n"])], [("y", np.float32, ["n"])])
    m = mserve.load(model)
    y = m.predict(np.ones(1000, np.float32))
    # The array wraps the runtime's 64-byte-aligned buffer, kept alive by a capsule: no copy.
    assert y.ctypes.data % 64 == 0
    assert type(y.base).__name__ == "PyCapsule"
    assert y.flags.writeable
    del m
    assert y.sum() == 1000  # outlives the model


def test_zero_copy_peak_memory():
    """Peak RSS while predicting on a 400 MB input grows by about one output, never by an
    input copy (measured in a fresh process)."""
    script = textwrap.dedent("""
        import resource, numpy as np, mserve
        from onnx import helper
        def model(op_nodes, out_shape):
            g = helper.make_graph(op_nodes, "g", [helper.make_tensor_value_info("x", 1, [100, 1000000])],
                                  [helper.make_tensor_value_info("y", 1, out_shape)],
                                  [helper.make_tensor("i", 7, [1], [3])])
            return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
        relu = mserve.load(model([helper.make_node("Relu", ["x"], ["y"])], [100, 1000000]), threads=2)
        take = mserve.load(model([helper.make_node("Gather", ["x", "i"], ["y"])], [1, 1000000]), threads=2)
        x = np.ones((100, 1000000), np.float32)  # 400 MB
        x[3, 5] = -7
        peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        p0 = peak()
        y = take.predict(x)
        p1 = peak()
        assert y[0, 5] == -7
        z = relu.predict(x)
        p2 = peak()
        print((p1 - p0) / 1e6, (p2 - p1) / 1e6)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    small, full = map(float, out.stdout.split())
    assert small < 50, f"a 4 MB result grew peak RSS by {small:.0f} MB: the input was copied"
    assert full < 400 * 1.25, f"a 400 MB result grew peak RSS by {full:.0f} MB (more than one output)"


def test_import_and_predict_load_no_server():
    # `import mserve`, load and predict: the runtime only. The server's module (and gRPC, OpenSSL,
    # the wire schemas it links) comes with the first server name asked for.
    script = textwrap.dedent("""
        import sys
        import mserve, mserve.examples

        def mapped():
            with open("/proc/self/maps") as f:
                return {line.split()[-1].rsplit("/", 1)[-1].split(".so")[0] for line in f if ".so" in line}

        m = mserve.load(mserve.examples.mlp())
        assert m.predict(mserve.examples.example_input("mlp", 3)).shape == (3, 10)
        server_libs = {"libgrpc", "libgrpc++", "libssl", "libsimdjson"}  # (libcrypto: Python's hashlib too)
        assert "mserve._server" not in sys.modules and "mserve.serving" not in sys.modules
        assert not server_libs & mapped(), server_libs & mapped()
        assert callable(mserve.serve) and mserve.Server.__name__ == "Server"
        assert "mserve._server" in sys.modules and {"libgrpc", "libssl"} <= mapped()
        try:
            mserve.no_such_name
        except AttributeError as e:
            assert "no_such_name" in str(e)
        else:
            raise AssertionError("mserve.no_such_name did not raise")
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


def test_concurrent_predict_from_8_threads():
    from mserve import examples
    model = examples.mlp()
    m = mserve.load(model, threads=2)
    inputs = [examples.example_input("mlp", 1 + i % 5, seed=i) for i in range(8)]
    expected = [ort_run(model, {"x": x})[0] for x in inputs]
    errors = []

    def worker(i):
        try:
            for _ in range(30):
                np.testing.assert_allclose(m.predict(inputs[i]), expected[i], rtol=1e-4, atol=1e-5)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]


def test_gil_is_released_during_compute():
    from mserve import examples
    m = mserve.load(examples.cnn_nhwc(), threads=1)
    x = examples.example_input("cnn_nhwc", 64)
    ticks = []
    stop = threading.Event()

    def ticker():
        while not stop.is_set():
            ticks.append(1)
            stop.wait(0.001)

    t = threading.Thread(target=ticker)
    t.start()
    for _ in range(5):
        m.predict(x)
    stop.set()
    t.join()
    assert len(ticks) > 5  # the ticker ran while predict computed


def test_threads_option():
    model = make_model([helper.make_node("Relu", ["x"], ["y"])], [("x", np.float32, [2])], [("y", np.float32, [2])])
    assert mserve.load(model, threads=3).threads == 3
    assert mserve.load(model).threads >= 1


def test_idle_model_does_not_spin():
    """Workers sleep when there is no work: an idle model with 4 threads burns no CPU."""
    import resource
    import time

    from mserve import examples
    m = mserve.load(examples.cnn_nhwc(), threads=4)
    m.predict(examples.example_input("cnn_nhwc", 8))
    before = resource.getrusage(resource.RUSAGE_SELF)
    time.sleep(0.5)
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    assert cpu < 0.1, f"{cpu:.2f} s of CPU in 0.5 s of idling"


def test_same_value_as_two_outputs_and_input_as_output():
    nodes = [helper.make_node("Relu", ["x"], ["y"])]
    model = make_model(nodes, [("x", np.float32, [3])], [("y", np.float32, [3]), ("x", np.float32, [3])])
    model.graph.output.append(model.graph.output[0])
    out = mserve.load(model).predict(np.array([-1, 0, 2], np.float32))
    # A dict keeps one entry per name; both come from separate buffers.
    np.testing.assert_array_equal(out["y"], [0, 0, 2])
    np.testing.assert_array_equal(out["x"], [-1, 0, 2])


def test_scalar_inputs_keep_rank_zero():
    model = make_model([helper.make_node("Add", ["x", "s"], ["y"])], [("x", np.float32, [2]), ("s", np.float32, [])],
                       [("y", np.float32, [2])])
    m = mserve.load(model)
    x = np.array([1, 2], np.float32)
    np.testing.assert_array_equal(m.predict({"x": x, "s": np.float32(3)}), [4, 5])
    np.testing.assert_array_equal(m.predict({"x": x, "s": 3.0}), [4, 5])
    np.testing.assert_array_equal(m.predict({"x": x[::-1].copy()[::-1], "s": np.array(3, np.float32)}), [4, 5])


def test_fast_path_takes_only_what_the_general_path_would_take_the_same_way():
    """predict's C fast path (one C-contiguous array of the input's dtype) and the general path
    must agree, and everything else must reach the general path (copies, errors)."""
    m = make_model([helper.make_node("Mul", ["x", "two"], ["y"])], [("x", np.float32, ["n", 3])],
                   [("y", np.float32, None)], {"two": np.array(2, np.float32)})
    model = mserve.load(m.SerializeToString())
    assert model._fast is not None
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    np.testing.assert_array_equal(model.predict(x), x * 2)
    np.testing.assert_array_equal(model._fast(x), x * 2)
    y = model.predict(x)
    assert y.flags.writeable and y.flags.owndata is False and y.base is not None  # owns the runtime's buffer
    # Not taken by the fast path, answered by the general one:
    big_endian = x.astype(">f4")
    fortran = np.asfortranarray(np.arange(12, dtype=np.float32).reshape(3, 4).T)
    strided = np.arange(24, dtype=np.float32).reshape(4, 6)[:, ::2]
    for arr in (fortran, strided, [[1.0, 2.0, 3.0]], np.ones((2, 3), np.float32).view(np.matrix)):
        assert model._fast(arr) is None
        np.testing.assert_array_equal(model.predict(arr), np.asarray(arr, np.float32) * 2)
    assert model._fast(big_endian) is None
    with pytest.raises(mserve.InvalidArgument):
        model.predict(big_endian)  # not float32 in native order: no silent cast
    with pytest.raises(mserve.InvalidArgument, match="float64"):
        model.predict(x.astype(np.float64))
    for bad in (np.ones((2, 4), np.float32), np.ones(3, np.float32)):  # wrong shape: the general path says so
        assert model._fast(bad) is None
        with pytest.raises(mserve.InvalidArgument):
            model.predict(bad)
    # outputs= goes the general way too.
    np.testing.assert_array_equal(model.predict(x, outputs="y"), x * 2)


def test_fast_path_only_for_single_array_signatures(two_io):
    assert mserve.load(two_io)._fast is None
    zoo = pathlib.Path(__file__).resolve().parent.parent / "models"
    assert mserve.load(str(zoo / "sk_logistic_zipmap.onnx"))._fast is None  # a list of dicts comes back


@pytest.mark.parametrize("isa", ["base", "avx2", "avx512"])
def test_every_instruction_set_variant_computes_the_same(isa, tmp_path):
    """The vectorized kernels are built for baseline x86-64, AVX2 and AVX-512 and picked at run
    time; MSERVE_ISA forces one (a variant the CPU lacks falls back to the best it has). Each must
    match onnxruntime on the Eigen GEMM paths (small and batched products) and fused activations."""
    nodes = [helper.make_node("MatMul", ["x", "W"], ["m"]), helper.make_node("Add", ["m", "b"], ["a"]),
             helper.make_node("Gelu", ["a"], ["g"]), helper.make_node("Transpose", ["g"], ["gt"], perm=[0, 2, 1]),
             helper.make_node("MatMul", ["g", "gt"], ["y"])]
    rng = np.random.default_rng(3)
    m = make_model(nodes, [("x", np.float32, ["n", 5, 12])], [("y", np.float32, None)],
                   {"W": rng.standard_normal((12, 8)).astype(np.float32),
                    "b": rng.standard_normal(8).astype(np.float32)},
                   opset=20)
    path = tmp_path / "m.onnx"
    path.write_bytes(m.SerializeToString())
    x = rng.standard_normal((3, 5, 12)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    code = textwrap.dedent(f"""
        import numpy as np, mserve
        m = mserve.load({str(path)!r})
        assert "FusedMatMul" in m._s.node_ops
        np.save({str(tmp_path / 'y.npy')!r}, m.predict(np.load({str(tmp_path / 'x.npy')!r})))
    """)
    env = dict(os.environ, MSERVE_ISA=isa)
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), ort_run(m, {"x": x})[0], rtol=1e-4, atol=1e-4)


def test_supported_ops_lists_foundation_ops():
    names = {op.op_type for op in mserve.supported_ops()}
    for op in ["Gemm", "MatMul", "Add", "Sub", "Mul", "Div", "Relu", "Sigmoid", "Tanh", "Softmax", "Conv", "MaxPool",
               "AveragePool", "GlobalAveragePool", "BatchNormalization", "Flatten", "Reshape", "Transpose",
               "Identity", "Constant", "Concat", "Shape", "Gather", "Unsqueeze", "Squeeze", "Cast", "Clip"]:
        assert op in names


def test_profile_reports_time_per_op():
    m = make_model([helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
                    helper.make_node("Sigmoid", ["c"], ["y"])],
                   [("x", np.float32, [1, 3, 8, 8])], [("y", np.float32, None)], {"w": rand(4, 3, 3, 3)})
    model = mserve.load(m.SerializeToString(), optimize=False)
    rows = model.profile(rand(1, 3, 8, 8), runs=7)
    assert sorted(op for op, _, _ in rows) == ["Conv", "Sigmoid"]
    assert all(calls == 7 and ms > 0 for _, calls, ms in rows)
    assert model.profile(rand(1, 3, 8, 8), runs=2)[0][1] == 2  # totals restart with each profile
    with pytest.raises(mserve.InvalidArgument):
        model.profile(rand(1, 3, 8, 8), runs=0)
