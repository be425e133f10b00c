"""The Keras part of the real-size zoo (see generate_real.py): Keras 3 models on TensorFlow, exported
with tf2onnx, written to build/zoo-real next to the transformers and torchvision models in the same
format, and checked by tests/python/test_real_zoo.py against Keras's own outputs.

  keras_cnn           Conv2D / BatchNormalization / ReLU / MaxPooling2D blocks, GlobalAveragePooling2D,
                      Dense, Dropout; NHWC input; outputs `logits` and their softmax `probs`
  keras_bilstm        text classifier: Embedding, two Bidirectional(LSTM) layers (the first returns
                      sequences, the second its final states), Dense; output `logits`
  keras_two_tower     recommender: user and item towers (Embedding, Dense, Dense), their dot product
                      `score` (a logit)
  keras_mobilenet_v2  keras.applications.MobileNetV2(weights=None, classifier_activation=None),
                      224x224 NHWC; output `predictions` (logits)
  keras_efficientnet_b0  keras.applications.EfficientNetB0, the same way; its input is [0, 255]
                      pixels, which its own Rescaling and Normalization layers normalise

The models output logits (Keras's from_logits=True convention): the probabilities of an untrained
classifier are nearly uniform, and a relative L2 error on them would hardly see a wrong layer.

Every model is built with seeded random weights made to look trained (`make_trained_like`: BatchNorm
scales N(1, 0.2), shifts and biases N(0, 0.1), embeddings N(0, 0.2), BatchNorm statistics from a
train-mode pass), run by Keras (training=False) on two input sets, and exported with
tf2onnx.convert.from_keras (opset 17, batch and sequence axes dynamic). The output names are the Keras
model's. NAME.npz carries the same meta entries as generate_real.py's ("meta:framework",
"meta:exporter", "meta:params", "meta:fp16_rounding_error"); the float16 conversions come from
generate_real.py --fp16 like the others'.

It needs tensorflow-cpu and tf2onnx, which want numpy 2 while Debian's torch wants numpy 1: `make
zoo-real` (or `make zoo-keras`, the Keras models alone) installs them into build/zoo-tf-venv and runs

  build/zoo-tf-venv/bin/python tests/models/generate_keras.py [--only NAME ...] [--out DIR]

Seeded and single-threaded: on the same TensorFlow / Keras / tf2onnx versions NAME.npz comes out
byte-identical and the weights in NAME.onnx the same, but the order of the nodes and the numbers
tf2onnx appends to generated names vary from run to run (the graph computes the same thing).
"""
import argparse
import gc
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from generate import save_npz  # noqa: E402
from generate_real import DEFAULT_OUT, OPSET, add_meta, images  # noqa: E402


def nhwc_images(rng, n, size):
    """generate_real.images (smooth structure plus fine noise) in the channels-last layout Keras uses."""
    return np.ascontiguousarray(images(rng, n, size).transpose(0, 2, 3, 1))


def make_trained_like(model, rng):
    """Random weights with a trained model's features, as generate_real.make_trained_like does for
    torch: BatchNorm scales N(1, 0.2) and shifts N(0, 0.1), non-zero biases N(0, 0.1) on every layer
    (Keras initialises them to zero; the LSTM's to 0 and 1 for the forget gate), embeddings N(0, 0.2)
    instead of U(-0.05, 0.05). Kernels keep Keras's seeded initialisers (Glorot, orthogonal)."""
    for v in model.weights:
        leaf = v.path.rsplit("/", 1)[-1]
        if leaf == "gamma":
            v.assign(rng.normal(1.0, 0.2, v.shape).astype(np.float32))
        elif leaf in ("beta", "bias"):
            v.assign(rng.normal(0.0, 0.1, v.shape).astype(np.float32))
        elif leaf == "embeddings":
            v.assign(rng.normal(0.0, 0.2, v.shape).astype(np.float32))


def calibrate_batchnorm(model, batch):
    """Real moving statistics: one train-mode pass with momentum 0 sets every BatchNormalization's
    moving mean and variance to the statistics of its input over the batch (each layer sees the
    output of the layers before it normalised the same way)."""
    import keras
    bns = [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)]
    if not bns:
        return
    saved = [layer.momentum for layer in bns]
    for layer in bns:
        layer.momentum = 0.0
    model(batch, training=True)
    for layer, m in zip(bns, saved):
        layer.momentum = m


# ----------------------------------------------------------------------------------------------
# Models: name -> builder(rng) returning (model, input sets, calibration batch or None)
# ----------------------------------------------------------------------------------------------

def keras_models():
    import keras
    from keras import layers

    def cnn(rng):
        inp = keras.Input((64, 64, 3), name="image")
        x = inp
        for width in (32, 64, 128):
            x = layers.Conv2D(width, 3, padding="same", use_bias=False)(x)
            x = layers.BatchNormalization()(x)
            x = layers.ReLU()(x)
            x = layers.Conv2D(width, 3, padding="same")(x)
            x = layers.BatchNormalization()(x)
            x = layers.ReLU()(x)
            x = layers.MaxPooling2D(2)(x)
        x = layers.GlobalAveragePooling2D()(x)
        x = layers.Dense(128, activation="relu")(x)
        x = layers.Dropout(0.3)(x)
        logits = layers.Dense(10, name="logits")(x)
        probs = layers.Softmax(name="probs")(logits)
        sets = [{"image": nhwc_images(rng, 1, 64)}, {"image": nhwc_images(rng, 3, 64)}]
        return keras.Model(inp, [logits, probs], name="keras_cnn"), sets, {"image": nhwc_images(rng, 32, 64)}

    def bilstm(rng):
        vocab = 20000
        inp = keras.Input((None,), dtype="int32", name="tokens")
        x = layers.Embedding(vocab, 128)(inp)
        x = layers.Bidirectional(layers.LSTM(64, return_sequences=True))(x)
        x = layers.Bidirectional(layers.LSTM(32))(x)
        x = layers.Dense(64, activation="relu")(x)
        out = layers.Dense(4, name="logits")(x)
        sets = [{"tokens": rng.integers(1, vocab, (1, 48)).astype(np.int32)},
                {"tokens": rng.integers(1, vocab, (3, 17)).astype(np.int32)}]
        return keras.Model(inp, out, name="keras_bilstm"), sets, None

    def two_tower(rng):
        users, items = 50000, 20000
        u_in = keras.Input((), dtype="int32", name="user_id")
        i_in = keras.Input((), dtype="int32", name="item_id")

        def tower(ids, n, prefix):
            x = layers.Embedding(n, 64, name=prefix + "_embedding")(ids)
            x = layers.Dense(128, activation="relu", name=prefix + "_hidden")(x)
            return layers.Dense(32, name=prefix + "_vector")(x)

        out = layers.Dot(axes=1, name="score")([tower(u_in, users, "user"), tower(i_in, items, "item")])
        sets = []
        for n in (1, 16):
            sets.append({"user_id": rng.integers(0, users, n).astype(np.int32),
                         "item_id": rng.integers(0, items, n).astype(np.int32)})
        return keras.Model([u_in, i_in], out, name="keras_two_tower"), sets, None

    def applications(ctor, pixels=False):
        """pixels: the model rescales and normalises [0, 255] pixels itself (EfficientNet's Rescaling
        and Normalization layers); the others take normalised images."""
        def image_batch(rng, n):
            x = nhwc_images(rng, n, 224)
            return (127.5 + 50.0 * x).astype(np.float32) if pixels else x

        def build(rng):
            model = ctor(weights=None, input_tensor=keras.Input((224, 224, 3), name="image"),
                         classifier_activation=None)
            sets = [{"image": image_batch(rng, 1)}, {"image": image_batch(rng, 2)}]
            return model, sets, {"image": image_batch(rng, 16)}
        return build

    return {
        "keras_cnn": cnn,
        "keras_bilstm": bilstm,
        "keras_two_tower": two_tower,
        "keras_mobilenet_v2": applications(keras.applications.MobileNetV2),
        "keras_efficientnet_b0": applications(keras.applications.EfficientNetB0, pixels=True),
    }


def run_keras(model, feeds):
    """{output name: array} from Keras itself, in inference mode."""
    args = [feeds[t.name] for t in model.inputs]
    got = model(args if isinstance(model.input, (list, tuple)) else args[0], training=False)
    got = got if isinstance(got, (list, tuple)) else [got]
    return [np.asarray(t) for t in got]


def fp16_rounding_error(model, stored):
    """As generate_real.fp16_rounding_error: how far Keras's outputs move when the weights and float
    inputs are rounded to float16 and the rest stays float32. Rounds the model's weights in place."""
    model.set_weights([w.astype(np.float16).astype(np.float32) if w.dtype == np.float32 else w
                       for w in model.get_weights()])
    worst = 0.0
    for feeds, want in stored:
        rounded = {k: v.astype(np.float16).astype(np.float32) if v.dtype == np.float32 else v for k, v in feeds.items()}
        for got, w in zip(run_keras(model, rounded), want.values()):
            w = w.astype(np.float64)
            worst = max(worst, float(np.linalg.norm(got - w) / np.linalg.norm(w)))
    return worst


def build(out_dir, only):
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(1)   # outputs independent of the core count
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import keras
    import onnx
    import tf2onnx
    versions = f"tensorflow {tf.__version__} / keras {keras.__version__}"
    exporter = f"tf2onnx {tf2onnx.__version__} / {versions}"
    for name, builder in keras_models().items():
        if only and name not in only:
            continue
        t0 = time.time()
        seed = sum(map(ord, name))
        keras.utils.set_random_seed(seed)
        rng = np.random.default_rng(seed)
        model, sets, calib = builder(rng)
        make_trained_like(model, rng)
        if calib is not None:
            batch = calib[model.inputs[0].name]
            calibrate_batchnorm(model, [batch] if isinstance(model.input, (list, tuple)) else batch)
        ins = [t.name for t in model.inputs]
        stored = []
        for feeds in sets:
            assert sorted(feeds) == sorted(ins), (name, list(feeds), ins)
            stored.append((feeds, dict(zip(model.output_names, run_keras(model, feeds)))))
        # Every axis that Keras leaves open (batch, sequence) stays dynamic in the export.
        spec = [tf.TensorSpec(t.shape, t.dtype, name=t.name) for t in model.inputs]
        path = os.path.join(out_dir, name + ".onnx")
        proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=OPSET)
        outs = [o.name for o in proto.graph.output]
        assert outs == list(model.output_names), (name, outs, model.output_names)
        onnx.save(proto, path)
        save_npz(out_dir, name, stored, versions)
        add_meta(out_dir, name, exporter=exporter, params=model.count_params(),
                 fp16_rounding_error=fp16_rounding_error(model, stored))
        print(f"{name}: {model.count_params() / 1e6:.2f}M parameters, {os.path.getsize(path) / 2**20:.1f} MB, "
              f"{len(proto.graph.node)} nodes ({', '.join(sorted({n.op_type for n in proto.graph.node}))}), "
              f"{time.time() - t0:.0f} s", flush=True)
        del model, proto, stored
        keras.backend.clear_session()
        gc.collect()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="*", help="model names (default: all)")
    ap.add_argument("--out", default=DEFAULT_OUT)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    build(args.out, set(args.only or []))


if __name__ == "__main__":
    main()
