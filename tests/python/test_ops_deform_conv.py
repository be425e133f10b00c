"""DeformConv (kernels/ops/deform_conv.cc) on one-node models, against onnx.reference (onnxruntime where
it has a kernel) and a naive double-precision loop; float32: rtol 1e-4, atol 1e-5."""
import numpy as np
import pytest

import mserve
from op_harness import Cases, build_model, one_node, ort_run, random_inputs

rand = random_inputs(3)
CASES = Cases(opsets=(19, 22))
case = CASES.add


def bilinear(plane, h, w):
    """Bilinear sample of a 2-D plane at (h, w), neighbours outside the plane counting as 0."""
    H, W = plane.shape
    h0, w0 = int(np.floor(h)), int(np.floor(w))
    v = 0.0
    for hh, wh in ((h0, 1 - (h - h0)), (h0 + 1, h - h0)):
        for ww, ww_ in ((w0, 1 - (w - w0)), (w0 + 1, w - w0)):
            if 0 <= hh < H and 0 <= ww < W:
                v += wh * ww_ * float(plane[hh, ww])
    return v


def deform_conv_naive(x, w, offset, b=None, mask=None, group=1, offset_group=1, strides=None, pads=None,
                      dilations=None):
    """Deformable convolution one output element at a time, in float64 (2-D; 1-D as height 1)."""
    one_d = x.ndim == 3
    if one_d:  # lift to 2-D: height 1, offsets along the width only
        x, w = x[:, :, None], w[:, :, None]
        n_, c_, ow_ = offset.shape
        off2 = np.zeros((n_, c_ * 2, 1, ow_))
        off2[:, 1::2, 0] = offset
        offset = off2
        mask = None if mask is None else mask[:, :, None]
        strides = [1] + list(strides or [1])
        dilations = [1] + list(dilations or [1])
        pads = [0, (pads or [0, 0])[0], 0, (pads or [0, 0])[1]]
    strides, dilations, pads = strides or [1, 1], dilations or [1, 1], pads or [0, 0, 0, 0]
    N, C, H, W = x.shape
    M, cg, kh, kw = w.shape
    OH, OW = offset.shape[2:]
    K = kh * kw
    mg = M // group
    cpo = C // offset_group
    y = np.zeros((N, M, OH, OW))
    x64, w64, off64 = x.astype(np.float64), w.astype(np.float64), offset.astype(np.float64)
    for n in range(N):
        for c in range(C):
            og, g = c // cpo, c // cg
            for i in range(kh):
                for j in range(kw):
                    tap = og * K + i * kw + j
                    for oh in range(OH):
                        for ow in range(OW):
                            h = oh * strides[0] - pads[0] + i * dilations[0] + off64[n, 2 * tap, oh, ow]
                            ww = ow * strides[1] - pads[1] + j * dilations[1] + off64[n, 2 * tap + 1, oh, ow]
                            v = bilinear(x64[n, c], h, ww)
                            if mask is not None:
                                v *= float(mask[n, tap, oh, ow])
                            y[n, g * mg:(g + 1) * mg, oh, ow] += v * w64[g * mg:(g + 1) * mg, c % cg, i, j]
    if b is not None:
        y += b.astype(np.float64)[None, :, None, None]
    if one_d:
        y = y[:, :, 0]
    return [y.astype(x.dtype)]


def out_size(n, k, s=1, d=1, p0=0, p1=0):
    return (n + p0 + p1 - ((k - 1) * d + 1)) // s + 1


def dc_case(id_, n, c, h, wd, m, kh, kw, group=1, offset_group=1, strides=(1, 1), pads=(0, 0, 0, 0),
            dilations=(1, 1), bias=False, mask=False, spread=1.5, dtype=np.float32, **extra):
    oh = out_size(h, kh, strides[0], dilations[0], pads[0], pads[2])
    ow = out_size(wd, kw, strides[1], dilations[1], pads[1], pads[3])
    x = rand(n, c, h, wd).astype(dtype)
    w = rand(m, c // group, kh, kw).astype(dtype)
    off = rand(n, offset_group * kh * kw * 2, oh, ow, lo=-spread, hi=spread).astype(dtype)
    b = rand(m).astype(dtype) if bias else None
    msk = rand(n, offset_group * kh * kw, oh, ow, lo=0, hi=1).astype(dtype) if mask else None
    attrs = {"group": group, "offset_group": offset_group, "strides": list(strides), "pads": list(pads),
             "dilations": list(dilations), "kernel_shape": [kh, kw]}
    inputs = [("x", x), ("w", w), ("off", off), ("b", b) if bias else None] + ([("mask", msk)] if mask else [])
    naive = {k: attrs[k] for k in ("group", "offset_group", "strides", "pads", "dilations")}
    case(id_, "DeformConv", inputs, attrs=attrs, oracle="reference", **extra)
    case(id_ + "-naive", "DeformConv", inputs, attrs=attrs, opsets=(22,),
         oracle=lambda i: deform_conv_naive(x, w, off, b, msk, **naive), **extra)


dc_case("DeformConv-basic", 1, 1, 3, 3, 1, 2, 2, spread=0.0)
dc_case("DeformConv-offsets", 2, 3, 6, 5, 4, 3, 3)
dc_case("DeformConv-pads", 1, 2, 5, 5, 3, 3, 3, pads=(1, 1, 1, 1), bias=True)
dc_case("DeformConv-asym-pads-strides", 1, 2, 7, 6, 2, 3, 2, strides=(2, 1), pads=(1, 0, 2, 1))
dc_case("DeformConv-dilations", 1, 2, 7, 7, 2, 2, 2, dilations=(2, 3), pads=(1, 1, 0, 2))
dc_case("DeformConv-mask-bias", 2, 2, 5, 4, 3, 2, 2, bias=True, mask=True)
dc_case("DeformConv-groups", 1, 4, 5, 5, 6, 3, 3, group=2, pads=(1, 1, 1, 1), bias=True)
dc_case("DeformConv-offset-groups", 1, 4, 5, 5, 2, 2, 2, offset_group=2, mask=True)
dc_case("DeformConv-groups-and-offset-groups", 1, 6, 4, 5, 4, 2, 3, group=2, offset_group=3, mask=True, bias=True)
dc_case("DeformConv-far-offsets", 1, 2, 4, 4, 2, 2, 2, spread=6.0, mask=True)
dc_case("DeformConv-f64", 1, 2, 5, 5, 2, 3, 3, pads=(1, 1, 1, 1), mask=True, dtype=np.float64)
dc_case("DeformConv-f16", 1, 2, 5, 5, 2, 3, 3, pads=(1, 1, 1, 1), dtype=np.float16,
        f16_tol={"rtol": 1e-2, "atol": 1e-2})

# Integer offsets sample the grid exactly: a plain Conv (onnxruntime) shifted by those offsets.
x_i = rand(1, 3, 6, 6)
w_i = rand(4, 3, 3, 3)
case("DeformConv-zero-offsets-is-conv", "DeformConv",
     {"x": x_i, "w": w_i, "off": np.zeros((1, 18, 4, 4), np.float32)}, attrs={"kernel_shape": [3, 3]}, opsets=(19,),
     oracle=lambda i: ort_run(one_node("Conv", {"x": i["x"]}, {"w": i["w"]}, opset=17)[0], {"x": i["x"]}))


@pytest.mark.parametrize("c", CASES)
def test_op_matches_oracle(c):
    c.check()


def test_deform_conv_1d_matches_naive():
    x, w = rand(2, 3, 11), rand(4, 3, 3)
    off, b = rand(2, 3, 6, lo=-2, hi=2), rand(4)
    attrs = {"strides": [2], "pads": [1, 1], "dilations": [1]}
    model, _ = build_model("DeformConv", {"x": x, "w": w, "off": off, "b": b}, {}, attrs, 19, out_type=1)
    got = mserve.load(model.SerializeToString()).predict({"x": x, "w": w, "off": off, "b": b})
    np.testing.assert_allclose(got, deform_conv_naive(x, w, off, b, **attrs)[0], rtol=1e-4, atol=1e-5)


def test_deform_conv_larger_threads():
    # A detection-sized layer (several GEMM tiles) on 4 threads against the reference at 1 thread.
    x, w = rand(1, 16, 20, 18), rand(24, 16, 3, 3)
    off, msk = rand(1, 2 * 18, 20, 18, lo=-3, hi=3), rand(1, 18, 20, 18, lo=0, hi=1)
    attrs = {"pads": [1, 1, 1, 1], "offset_group": 2}
    feeds = {"x": x, "w": w, "off": off, "b": rand(24), "mask": msk}
    model, _ = build_model("DeformConv", feeds, {}, attrs, 22, out_type=1)
    got4 = mserve.load(model.SerializeToString(), threads=4).predict(feeds)
    got1 = mserve.load(model.SerializeToString(), threads=1).predict(feeds)
    np.testing.assert_allclose(got4, got1, rtol=1e-5, atol=1e-5)
    sub = dict(feeds, x=x[:, :4], w=w[:4, :4], b=feeds["b"][:4])  # a slice small enough for the naive loop
    model, _ = build_model("DeformConv", sub, {}, {"pads": [1, 1, 1, 1], "offset_group": 2}, 22, out_type=1)
    got = mserve.load(model.SerializeToString()).predict(sub)
    np.testing.assert_allclose(got, deform_conv_naive(sub["x"], sub["w"], off, sub["b"], msk, offset_group=2,
                                                      pads=[1, 1, 1, 1])[0], rtol=1e-4, atol=1e-4)


def _dc_model(x, w, off, attrs, extra=None):
    feeds = {"x": x, "w": w, "off": off, **(extra or {})}
    model, _ = build_model("DeformConv", feeds, {}, attrs, 19, out_type=1)
    return model, feeds


@pytest.mark.parametrize("shapes,attrs", [
    (((1, 4, 5, 5), (2, 3, 3, 3), (1, 18, 3, 3)), {}),                      # W channels != C / group
    (((1, 4, 5, 5), (3, 2, 3, 3), (1, 18, 3, 3)), {"group": 2}),            # M not divisible by group
    (((1, 4, 5, 5), (2, 4, 3, 3), (1, 18, 3, 3)), {"offset_group": 3}),     # C not divisible by offset_group
    (((1, 4, 5, 5), (2, 4, 3, 3), (1, 16, 3, 3)), {}),                      # offset channels wrong
    (((1, 4, 5, 5), (2, 4, 3, 3), (1, 18, 4, 3)), {}),                      # offset spatial != output
    (((2, 4, 5, 5), (2, 4, 3, 3), (1, 18, 3, 3)), {}),                      # offset batch != N
    (((1, 4, 5, 5), (2, 4, 3, 3), (1, 18, 3, 3)), {"kernel_shape": [2, 2]}),  # kernel_shape != W's
    (((1, 4, 5, 5), (2, 4, 3, 3), (1, 18, 3, 3)), {"group": 0}),
    (((1, 4, 5, 5), (2, 4, 3, 3), (1, 18, 3, 3)), {"strides": [0, 1]}),
    (((1, 4, 5, 5), (2, 4, 3, 3), (1, 18, 3, 3)), {"pads": [1, 1]}),
    (((1, 4, 2, 2), (2, 4, 3, 3), (1, 18, 1, 1)), {}),                      # kernel larger than input
    (((1, 4, 5, 5, 5), (2, 4, 3, 3, 3), (1, 81, 3, 3, 3)), {}),             # 3-D: not supported
])
def test_deform_conv_bad_shapes(shapes, attrs):
    xs, ws, os_ = shapes
    model, feeds = _dc_model(rand(*xs), rand(*ws), rand(*os_), attrs)
    with pytest.raises(mserve.Error):
        mserve.load(model.SerializeToString()).predict(feeds)


def test_deform_conv_bad_mask_and_bias():
    x, w, off = rand(1, 2, 4, 4), rand(3, 2, 2, 2), rand(1, 8, 3, 3)
    for extra in [{"b": rand(2)}, {"b": rand(3), "mask": rand(1, 4, 3, 2)}, {"b": rand(3), "mask": rand(1, 3, 3, 3)}]:
        model, feeds = _dc_model(x, w, off, {}, extra)
        with pytest.raises(mserve.InvalidArgument):
            mserve.load(model.SerializeToString()).predict(feeds)
