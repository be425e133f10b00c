"""Attention, MultiHeadAttention and RotaryEmbedding (kernels/ops/attention.cc) on one-node models,
against onnxruntime or onnx.reference (float32: rtol 1e-4, atol 1e-5; float16: 2e-3)."""
import numpy as np
import pytest
from onnx import helper

import mserve
from op_harness import Cases, make_model, random_inputs

rand = random_inputs(0)
RNG = rand.rng
CASES = Cases(opsets=(23,), f16_tol={"rtol": 2e-3, "atol": 2e-3})
case = CASES.add


def qkv4(b=2, hq=3, hkv=3, lq=4, lk=5, d=8, dv=8, dtype=np.float32):
    return [("q", rand(b, hq, lq, d, dtype=dtype)), ("k", rand(b, hkv, lk, d, dtype=dtype)),
            ("v", rand(b, hkv, lk, dv, dtype=dtype))]


def qkv3(b=2, hq=3, hkv=3, lq=4, lk=5, d=8, dv=8):
    return [("q", rand(b, lq, hq * d)), ("k", rand(b, lk, hkv * d)), ("v", rand(b, lk, hkv * dv))]


def past(b=2, hkv=3, p=3, d=8, dv=8):
    return [("pk", rand(b, hkv, p, d)), ("pv", rand(b, hkv, p, dv))]


A = "Attention"
case("attn-4d", A, qkv4(), opsets=(23, 24))
case("attn-4d-diff-v", A, qkv4(dv=5, lq=7, lk=3))
case("attn-4d-gqa", A, qkv4(hq=6, hkv=2))
case("attn-4d-scaled", A, qkv4(), attrs={"scale": 0.3})
case("attn-4d-causal", A, qkv4(lq=5, lk=5), attrs={"is_causal": 1})
case("attn-4d-softcap", A, qkv4(), attrs={"softcap": 2.0, "scale": 1.0}, oracle="reference")
case("attn-4d-mask-float2d", A, qkv4() + [("m", rand(4, 5))])
case("attn-4d-mask-float4d", A, qkv4() + [("m", rand(2, 3, 4, 5))])
case("attn-4d-mask-bool", A, qkv4() + [("m", RNG.integers(0, 2, size=(4, 5)).astype(bool) | np.eye(4, 5, dtype=bool))])
case("attn-4d-mask-short", A, qkv4() + [("m", rand(2, 1, 4, 3))], oracle="reference")
case("attn-4d-mask-causal", A, qkv4(lq=5, lk=5) + [("m", rand(1, 3, 5, 5))], attrs={"is_causal": 1},
     oracle="reference")
case("attn-4d-past", A, qkv4(lq=2, lk=2) + [None] + past(), outputs=3)
case("attn-4d-past-causal", A, qkv4(lq=2, lk=2) + [None] + past(), attrs={"is_causal": 1}, outputs=3,
     opsets=(24,), oracle="reference")
case("attn-4d-gqa-past-mask", A, qkv4(hq=4, hkv=2, lq=3, lk=3) + [("m", rand(3, 6))] + past(hkv=2), outputs=3)
for mode in range(4):
    case(f"attn-4d-qk-mode{mode}", A, qkv4() + [("m", rand(4, 5))], attrs={"qk_matmul_output_mode": mode},
         outputs=4, oracle="reference")
case("attn-4d-qk-softcap-mode1", A, qkv4(), attrs={"qk_matmul_output_mode": 1, "softcap": 3.0}, outputs=4,
     oracle="reference")
case("attn-3d", A, qkv3(), attrs={"q_num_heads": 3, "kv_num_heads": 3})
case("attn-3d-gqa-causal", A, qkv3(hq=4, hkv=2, lq=3, lk=3),
     attrs={"q_num_heads": 4, "kv_num_heads": 2, "is_causal": 1})
case("attn-3d-diff-v", A, qkv3(dv=6), attrs={"q_num_heads": 3, "kv_num_heads": 3})
case("attn-3d-past", A, qkv3(lq=1, lk=1) + [("m", rand(1, 4))] + past(), attrs={"q_num_heads": 3, "kv_num_heads": 3},
     outputs=3)
case("attn-f64", A, [(n, a.astype(np.float64)) for n, a in qkv4()], oracle="reference")
case("attn-f16", A, qkv4(dtype=np.float16), oracle="reference")
case("attn-24-nonpad", A, qkv4(lq=2, lk=6) + [None, None, None, ("n", np.array([4, 6], np.int64))],
     attrs={"is_causal": 1}, opsets=(24,), oracle="reference")
case("attn-one-head-large", A, qkv4(b=1, hq=1, hkv=1, lq=70, lk=90, d=64, dv=48), attrs={"is_causal": 1})
case("attn-many-heads-large", A, qkv4(b=3, hq=8, hkv=2, lq=33, lk=65, d=40, dv=24) + [("m", rand(33, 65))])

R = "RotaryEmbedding"
pos_cos, pos_sin = rand(16, 4), rand(16, 4)
pid = RNG.integers(0, 16, size=(2, 3)).astype(np.int64)
case("rope-4d", R, [("x", rand(2, 5, 3, 8)), ("c", pos_cos), ("s", pos_sin), ("p", pid)])
case("rope-4d-interleaved", R, [("x", rand(2, 5, 3, 8)), ("c", pos_cos), ("s", pos_sin), ("p", pid)],
     attrs={"interleaved": 1})
case("rope-3d", R, [("x", rand(2, 3, 16)), ("c", pos_cos), ("s", pos_sin), ("p", pid)], attrs={"num_heads": 2})
case("rope-rotdim", R, [("x", rand(2, 2, 3, 12)), ("c", pos_cos), ("s", pos_sin), ("p", pid)],
     attrs={"rotary_embedding_dim": 8})
case("rope-rotdim-interleaved", R, [("x", rand(2, 2, 3, 12)), ("c", pos_cos), ("s", pos_sin), ("p", pid)],
     attrs={"rotary_embedding_dim": 8, "interleaved": 1})
case("rope-no-pos", R, [("x", rand(2, 2, 3, 8)), ("c", rand(2, 3, 4)), ("s", rand(2, 3, 4))])
case("rope-no-pos-3d", R, [("x", rand(2, 3, 8)), ("c", rand(2, 3, 2)), ("s", rand(2, 3, 2))],
     attrs={"num_heads": 2, "interleaved": 1})


@pytest.mark.parametrize("c", CASES)
def test_op_matches_oracle(c):
    c.check()


def test_attention_rejects_bad_shapes():
    q, k, v = rand(1, 2, 3, 4), rand(1, 2, 3, 5), rand(1, 2, 3, 4)
    node = helper.make_node(A, ["q", "k", "v"], ["y"])
    model = make_model([node], [("q", np.float32, [1, 2, 3, 4]), ("k", np.float32, [1, 2, 3, 5]),
                                ("v", np.float32, [1, 2, 3, 4])], [("y", np.float32, None)], opset=23)
    with pytest.raises(mserve.Error):
        mserve.load(model.SerializeToString()).predict({"q": q, "k": k, "v": v})


def test_rotary_rejects_out_of_range_position():
    node = helper.make_node(R, ["x", "c", "s", "p"], ["y"])
    model = make_model([node], [("x", np.float32, [1, 1, 2, 4]), ("c", np.float32, [3, 2]), ("s", np.float32, [3, 2]),
                                ("p", np.int64, [1, 2])], [("y", np.float32, None)], opset=23)
    m = mserve.load(model.SerializeToString())
    with pytest.raises(mserve.Error):
        m.predict({"x": rand(1, 1, 2, 4), "c": rand(3, 2), "s": rand(3, 2), "p": np.array([[0, 7]], np.int64)})
