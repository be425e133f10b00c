"""The window generators, DFT and STFT (kernels/ops/spectral.cc) on one-node models, against
onnxruntime, onnx.reference or float64 numpy; float32: rtol 1e-4, atol 1e-5."""
import numpy as np
import pytest

from op_harness import Cases, random_inputs

rand = random_inputs(0)
CASES = Cases()
case = CASES.add


# Windows (size as a constant; the node suite feeds it at run time)
def window64(op, size, periodic=True):
    a = 2 * np.pi * np.arange(size) / (size if periodic else size - 1)
    return {"HannWindow": 0.5 - 0.5 * np.cos(a), "HammingWindow": 25 / 46 - 21 / 46 * np.cos(a),
            "BlackmanWindow": 0.42 - 0.5 * np.cos(a) + 0.08 * np.cos(2 * a)}[op]


for op in ["HannWindow", "HammingWindow", "BlackmanWindow"]:
    for periodic in (0, 1):
        case(f"{op}-p{periodic}", op, {}, {"n": np.array(10, np.int64)}, attrs={"periodic": periodic}, opsets=(17,))
    case(f"{op}-f64-int32-size", op, {}, {"n": np.array(7, np.int32)}, attrs={"output_datatype": 11}, opsets=(17,))
    # float16: onnx.reference evaluates the formula in float16; compare with float64 values rounded
    case(f"{op}-f16", op, {}, {"n": np.array(16, np.int64)}, attrs={"output_datatype": 10}, opsets=(17,),
         oracle=lambda inputs, op=op: [window64(op, 16).astype(np.float16)])
    case(f"{op}-int", op, {}, {"n": np.array(9, np.int64)}, attrs={"output_datatype": 7}, opsets=(17,),
         oracle="reference")

# DFT: opset 17 (axis attribute) and 20 (axis input)
sig = rand(2, 12, 3, 1)
csig = rand(2, 9, 4, 2)
case("DFT-real", "DFT", {"x": sig}, opsets=(17,))
case("DFT-real-axis2", "DFT", {"x": sig}, attrs={"axis": 2}, opsets=(17,))
case("DFT-complex-len-pad", "DFT", {"x": csig}, {"n": np.array(13, np.int64)}, opsets=(17,))
case("DFT-complex-len-trunc", "DFT", {"x": csig}, {"n": np.array(5, np.int64)}, opsets=(17,))
case("DFT-rfft", "DFT", {"x": sig}, attrs={"onesided": 1}, opsets=(17,))
case("DFT-inverse", "DFT", {"x": csig}, attrs={"inverse": 1}, opsets=(17,))
case("DFT-20-axis-input", "DFT", {"x": csig}, {"n": np.array(4, np.int64), "a": np.array(2, np.int64)}, opsets=(20,))
case("DFT-20-axis-only", "DFT", {"x": csig}, {"skip": None, "a": np.array(1, np.int64)}, opsets=(20,))
case("DFT-20-neg-axis", "DFT", {"x": sig}, {"n": np.array(12, np.int64), "a": np.array(-3, np.int64)},
     attrs={"onesided": 1}, opsets=(20,))
case("DFT-20-default-axis", "DFT", {"x": csig}, attrs={"inverse": 1}, opsets=(20,))
case("DFT-f64", "DFT", {"x": csig.astype(np.float64)}, opsets=(20,))
for n in (None, 16, 15, 6):  # IRFFT: onnxruntime has no kernel for it
    consts = {} if n is None else {"n": np.array(n, np.int64), "a": np.array(1, np.int64)}
    case(f"DFT-irfft-{n}", "DFT", {"x": rand(2, 9, 3, 2)}, consts, attrs={"inverse": 1, "onesided": 1}, opsets=(20,),
         oracle="reference")

# STFT
stft_x = rand(2, 64, 1)
case("STFT-frame-length", "STFT", {"x": stft_x}, {"step": np.array(8, np.int64), "skip": None,
                                                  "len": np.array(16, np.int64)}, opsets=(17,))


def stft64(x, step, w, onesided=True):
    """float64 STFT (onnxruntime's float32 sums drift by ~1e-5 on this case)."""
    n = len(w)
    frames = 1 + (x.shape[1] - n) // step
    sig = x[..., 0].astype(np.float64) + (1j * x[..., 1] if x.shape[-1] == 2 else 0)
    spec = np.stack([np.fft.fft(sig[:, f * step:f * step + n] * w, axis=-1) for f in range(frames)], axis=1)
    spec = spec[..., :n // 2 + 1] if onesided else spec
    return [np.stack([spec.real, spec.imag], axis=-1).astype(x.dtype)]


case("STFT-window", "STFT", {"x": stft_x}, {"step": np.array(6, np.int64), "w": np.hanning(20).astype(np.float32)},
     opsets=(17,), oracle=lambda inputs: stft64(inputs["x"], 6, np.hanning(20).astype(np.float32)))
case("STFT-window-twosided", "STFT", {"x": stft_x}, {"step": np.array(5, np.int64),
                                                     "w": np.hamming(12).astype(np.float32)},
     attrs={"onesided": 0}, opsets=(17,))
case("STFT-window-and-length", "STFT", {"x": rand(1, 50, 1, dtype=np.float64)},
     {"step": np.array(7, np.int64), "w": np.hanning(10), "len": np.array(10, np.int64)}, opsets=(17,))
case("STFT-complex", "STFT", {"x": rand(1, 40, 2)}, {"step": np.array(4, np.int64),
                                                     "w": np.ones(8, np.float32)}, attrs={"onesided": 0}, opsets=(17,))


@pytest.mark.parametrize("c", CASES)
def test_op_matches_oracle(c):
    c.check()

