"""Builds the real-size zoo: models at their frameworks' default sizes, exported at test time, never
committed (build/zoo-real by default; `make zoo-real` runs every step and the check).

  transformers  BERT-base, DistilBERT, a MiniLM-sized BERT (384 wide, 6 layers), RoBERTa-base,
                GPT-2 small without and with past key values  (BertConfig() + BertModel(config), ...)
  torchvision   ResNet-50, MobileNetV3-large, EfficientNet-B0, ConvNeXt-tiny, ViT-B/16  (weights=None)

Every model is built from its default config with random weights (nothing is downloaded), made to look
trained (see `make_trained_like`), run by the framework itself (eval mode, torch.no_grad()) on two or
more input sets, and exported twice with torch.onnx.export, batch and sequence axes dynamic: by the
TorchScript exporter (dynamo=False, opset 17) and by the dynamo exporter (dynamo=True: torch.export,
onnxscript, its default opset, weights in an external data file). The files have the committed zoo's
format (tests/models/README.md):

  NAME.onnx  the TorchScript export
  NAME.dynamo.onnx (+ NAME.dynamo.onnx.data)  the dynamo export, checked against the same NAME.npz
  NAME.npz   "<i>:in:<input>", "<i>:out:<output>" (the framework's outputs), "meta:framework",
             "meta:exporter", "meta:params" (the number of parameters of the framework's model),
             "meta:fp16_rounding_error" (how far torch's outputs move when the parameters and float
             inputs are rounded to float16: see fp16_rounding_error)

A second step, under an interpreter with onnxruntime (the project's venv), writes NAME.fp16.onnx, the
float16 conversion of each export (onnxruntime.transformers.float16.convert_float_to_float16, inputs
and outputs float16 too), which tests/python/test_real_zoo.py checks against the same float32 outputs.

A third step, under the same interpreter, writes what onnxruntime's quantizer makes of them:
NAME.int8.onnx for the transformers and the Keras BiLSTM (quantize_dynamic: int8 weights per tensor,
activations quantized at run time by DynamicQuantizeLinear, MatMulInteger, DynamicQuantizeLSTM) and
NAME.qdq.onnx for the CNNs (quantize_static,
QDQ format: uint8 activations calibrated on the model's own input sets, int8 weights per channel).

  build/zoo-torch-venv/bin/python tests/models/generate_real.py [--only NAME ...] [--out DIR]
  build/zoo-torch-venv/bin/python tests/models/generate_real.py --small [--only NAME ...]
  .venv/bin/python tests/models/generate_real.py --fp16 [--only NAME ...] [--out DIR]
  .venv/bin/python tests/models/generate_real.py --int8 [--only NAME ...] [--out DIR]

--small writes the committed zoo's twins of these models (tests/models/dynamo_NAME.onnx, .npz): the
same code at a few hundred kilobytes (SMALL_* configs, 64x64 images, 10 classes), dynamo exporter
only, weights inside the file, so that `make test` runs the dynamo exporter's graphs.

torch 2.9, torchvision 0.24, transformers 5 and onnxscript from PyPI (`make zoo-real` installs them in
build/zoo-torch-venv). Seeded: on the same versions the files come out with the same values.
"""
import argparse
import gc
import os
import sys
import time
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from generate import save_npz  # noqa: E402  (the committed zoo's writer: fixed time stamps)

OPSET = 17
DEFAULT_OUT = os.path.normpath(os.path.join(HERE, "..", "..", "build", "zoo-real"))


# ----------------------------------------------------------------------------------------------
# Trained-like random weights
# ----------------------------------------------------------------------------------------------

def make_trained_like(model, seed):
    """Random weights with the features a trained model has and a fresh one lacks, so that a runtime
    that drops a bias, ignores a norm's affine parameters or misapplies BatchNorm statistics fails:
    norm scales around 1 with spread (N(1, 0.2)) and non-zero norm shifts (N(0, 0.1)); non-zero biases
    (N(0, 0.1)) on every linear and convolution layer that has one, and on any other all-zero bias
    (nn.MultiheadAttention's in_proj_bias); no all-zero weight matrix (the classifier heads that
    torchvision initialises to zero get N(0, 0.02)); ConvNeXt's layer scales (1e-6 at init, which
    would silence every block) drawn from U(0.1, 0.6); ViT's class token N(0, 0.02)."""
    import torch
    import torch.nn as nn
    g = torch.Generator().manual_seed(seed)

    def normal_(t, mean, std):
        t.copy_(torch.randn(t.shape, generator=g) * std + mean)

    norms = (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._BatchNorm)
    with torch.no_grad():
        for mod in model.modules():
            w, b = getattr(mod, "weight", None), getattr(mod, "bias", None)
            if isinstance(mod, norms):
                if w is not None:
                    normal_(w, 1.0, 0.2)
                if b is not None:
                    normal_(b, 0.0, 0.1)
            elif isinstance(w, torch.Tensor) and not isinstance(mod, nn.Embedding):
                if w.dim() >= 2 and not torch.any(w != 0):
                    normal_(w, 0.0, 0.02)
                if isinstance(b, torch.Tensor):
                    normal_(b, 0.0, 0.1)
        for name, p in model.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            if leaf == "layer_scale":
                p.copy_(torch.rand(p.shape, generator=g) * 0.5 + 0.1)
            elif leaf == "class_token":
                normal_(p, 0.0, 0.02)
            elif leaf.endswith("bias") and not torch.any(p != 0):     # nn.MultiheadAttention's in_proj_bias
                normal_(p, 0.0, 0.1)


def calibrate_batchnorm(model, batches):
    """Real running statistics: reset, then cumulative averages over a few train-mode passes."""
    import torch
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    with torch.no_grad():
        for feeds in batches:
            model(*[torch.from_numpy(v) for v in feeds.values()])
    model.eval()


# ----------------------------------------------------------------------------------------------
# Inputs
# ----------------------------------------------------------------------------------------------

def images(rng, n, size=224):
    """Normalised-image-like inputs: smooth structure (8x8 blocks of a size/8-wide field) plus fine noise."""
    coarse = rng.standard_normal((n, 3, size // 8, size // 8))
    return (np.kron(coarse, np.ones((8, 8))) + 0.3 * rng.standard_normal((n, 3, size, size))).astype(np.float32)


def token_batch(rng, lengths, seq, lo, hi, pad, first=None):
    """Right-padded token ids (int64) and the attention mask: row r has lengths[r] real tokens."""
    ids = rng.integers(lo, hi, size=(len(lengths), seq)).astype(np.int64)
    mask = np.zeros((len(lengths), seq), np.int64)
    for r, n in enumerate(lengths):
        mask[r, :n] = 1
        ids[r, n:] = pad
    if first is not None:
        ids[:, 0] = first
    return ids, mask


def bert_inputs(rng, lengths, seq, with_types=True, vocab=30522):
    ids, mask = token_batch(rng, lengths, seq, min(1000, vocab // 4), min(30000, vocab), 0, first=101)
    feeds = {"input_ids": ids, "attention_mask": mask}
    if with_types:
        types = np.zeros_like(ids)
        for r, n in enumerate(lengths):
            types[r, n // 2:n] = 1                 # a sentence pair: the second half is segment 1
        feeds["token_type_ids"] = types
    return feeds


# ----------------------------------------------------------------------------------------------
# Models: name -> (exporter, builder) where builder(rng) returns
#   (module, input names, output names, dynamic axes, input sets, calibration batches)
# ----------------------------------------------------------------------------------------------

# The committed zoo's small twins (tests/models/dynamo_<name>): the same code at these sizes.
SMALL_TRANSFORMER = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                         vocab_size=1000, max_position_embeddings=64)
SMALL_DISTILBERT = dict(dim=32, n_layers=2, n_heads=4, hidden_dim=64, vocab_size=1000, max_position_embeddings=64)
SMALL_GPT2 = dict(n_embd=32, n_layer=2, n_head=4, vocab_size=1000, n_positions=64, bos_token_id=999, eos_token_id=999)


def transformers_models(small=False):
    import torch
    import torch.nn as nn
    import transformers as tf

    class Encoder(nn.Module):
        """An encoder's forward with positional inputs, returning its tensors as a tuple."""

        def __init__(self, model, outputs):
            super().__init__()
            self.model, self.outputs = model, outputs

        def forward(self, *args):
            out = self.model(*args, return_dict=True)
            return tuple(out[k] for k in self.outputs)

    seq2 = {0: "batch", 1: "sequence"}

    def encoder(config_cls, model_cls, config_kw, with_types, outputs, vocab_pad=0, small_kw=SMALL_TRANSFORMER):
        def build(rng):
            config = config_cls(**{**config_kw, **small_kw}) if small else config_cls(**config_kw)
            model = model_cls(config)
            ins = ["input_ids", "attention_mask"] + (["token_type_ids"] if with_types else [])
            v = config.vocab_size
            sets = ([bert_inputs(rng, [16], 16, with_types, v), bert_inputs(rng, [7, 12, 3], 12, with_types, v)]
                    if small else
                    [bert_inputs(rng, [128], 128, with_types, v), bert_inputs(rng, [37, 64, 20], 64, with_types, v)])
            if vocab_pad:                          # RoBERTa: <s> = 0, <pad> = 1
                for feeds in sets:
                    feeds["input_ids"][:, 0] = 0
                    feeds["input_ids"][feeds["attention_mask"] == 0] = vocab_pad
            dyn = {k: seq2 for k in ins}
            dyn.update({k: (seq2 if k == "last_hidden_state" else {0: "batch"}) for k in outputs})
            return Encoder(model, outputs), ins, outputs, dyn, sets, []
        return build

    def flat_cache(cache):
        """A transformers cache as (key.0, value.0, key.1, ...)."""
        return tuple(t for layer in cache.layers for t in (layer.keys, layer.values))

    class GPT2(nn.Module):
        """GPT-2 with its LM head; with past=True it takes and returns the key/value cache, flattened
        as past_key.<layer>, past_value.<layer> -> present_key.<layer>, present_value.<layer>."""

        def __init__(self, model, past):
            super().__init__()
            self.model, self.past = model, past

        def forward(self, input_ids, attention_mask, *flat):
            if not self.past:
                return self.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
            cache = tf.DynamicCache([(flat[2 * i], flat[2 * i + 1]) for i in range(len(flat) // 2)],
                                    config=self.model.config)
            out = self.model(input_ids=input_ids, attention_mask=attention_mask, past_key_values=cache, use_cache=True)
            return (out.logits,) + flat_cache(out.past_key_values)

    def gpt2(past):
        def build(rng):
            # With a cache, torch.export cannot trace the SDPA path's is_causal test on a dynamic
            # query length (a SymBool where a bool is needed): that model uses the eager attention.
            config = tf.GPT2Config(**(SMALL_GPT2 if small else {}))
            if past:
                config._attn_implementation = "eager"
            model = tf.GPT2LMHeadModel(config)
            L = config.n_layer
            if not past:
                sets = []
                for lengths, seq in ((([16], 16), ([9, 5], 9)) if small else (([64], 64), ([32, 19], 32))):
                    ids, mask = token_batch(rng, lengths, seq, 0, config.vocab_size, config.vocab_size - 1)
                    sets.append({"input_ids": ids, "attention_mask": mask})
                dyn = {"input_ids": seq2, "attention_mask": seq2, "logits": seq2}
                return GPT2(model, False), ["input_ids", "attention_mask"], ["logits"], dyn, sets, []
            # A decoding step after a prompt: the cache is what the model itself computed on the prompt.
            kv_in = [f"past_{kind}.{i}" for i in range(L) for kind in ("key", "value")]
            kv_out = [f"present_{kind}.{i}" for i in range(L) for kind in ("key", "value")]
            sets = []
            model.eval()
            for batch, prompt, new in (((1, 8, 1), (2, 5, 3)) if small else ((1, 32, 1), (2, 16, 4))):
                ids = rng.integers(0, config.vocab_size, size=(batch, prompt + new)).astype(np.int64)
                with torch.no_grad():
                    cache = model(input_ids=torch.from_numpy(ids[:, :prompt]), use_cache=True).past_key_values
                feeds = {"input_ids": ids[:, prompt:], "attention_mask": np.ones((batch, prompt + new), np.int64)}
                feeds.update({k: t.numpy() for k, t in zip(kv_in, flat_cache(cache))})
                sets.append(feeds)
            dyn = {"input_ids": seq2, "attention_mask": {0: "batch", 1: "total_sequence"},
                   "logits": seq2}
            dyn.update({k: {0: "batch", 2: "past_sequence"} for k in kv_in})
            dyn.update({k: {0: "batch", 2: "total_sequence"} for k in kv_out})
            return (GPT2(model, True), ["input_ids", "attention_mask"] + kv_in, ["logits"] + kv_out, dyn, sets, [])
        return build

    bert_out = ["last_hidden_state", "pooler_output"]
    models = {
        "bert_base": encoder(tf.BertConfig, tf.BertModel, {}, True, bert_out),
        "distilbert": encoder(tf.DistilBertConfig, tf.DistilBertModel, {}, False, ["last_hidden_state"],
                              small_kw=SMALL_DISTILBERT),
        # all-MiniLM-L6-v2's shape: 384 wide, 6 layers, 12 heads, 1536 intermediate
        "minilm": encoder(tf.BertConfig, tf.BertModel,
                          dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536),
                          True, bert_out),
        # type_vocab_size=1 and 514 positions as roberta-base ships; the position ids come from the
        # input ids (a CumSum over the non-padding tokens)
        "roberta": encoder(tf.RobertaConfig, tf.RobertaModel,
                           dict(vocab_size=50265, max_position_embeddings=514, type_vocab_size=1), False, bert_out,
                           vocab_pad=1, small_kw=dict(SMALL_TRANSFORMER, max_position_embeddings=66)),
        "gpt2": gpt2(False),
        "gpt2_past": gpt2(True),
    }
    if small:
        del models["minilm"]                       # at the small size it is the BERT
    return models


def torchvision_models(small=False):
    import torchvision.models as tvm
    from torchvision.models.convnext import CNBlockConfig, ConvNeXt
    from torchvision.models.efficientnet import EfficientNet, _efficientnet_conf

    def cnn(ctor, size=224):
        def build(rng):
            model = ctor()
            n = 64 if small else size
            if small and isinstance(model, tvm.VisionTransformer):
                n = model.image_size
            sets = [{"image": images(rng, 1, n)}, {"image": images(rng, 2, n)}]
            calib = [{"image": images(rng, 8, n)} for _ in range(3)]
            return model, ["image"], ["logits"], {"image": {0: "batch"}, "logits": {0: "batch"}}, sets, calib
        return build

    if small:      # the same architectures, narrow and shallow, 10 classes
        def small_efficientnet():
            setting, last = _efficientnet_conf("efficientnet_b0", width_mult=0.25, depth_mult=0.25)
            return EfficientNet(setting, 0.2, last_channel=last, num_classes=10)
        return {
            "mobilenet_v3_large": cnn(lambda: tvm.mobilenet_v3_large(weights=None, width_mult=0.25, num_classes=10)),
            "efficientnet_b0": cnn(small_efficientnet),
            "convnext_tiny": cnn(lambda: ConvNeXt([CNBlockConfig(16, 32, 1), CNBlockConfig(32, None, 1)],
                                                  num_classes=10)),
            "vit_b_16": cnn(lambda: tvm.VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2,
                                                          hidden_dim=32, mlp_dim=64, num_classes=10)),
        }
    return {
        "resnet50": cnn(lambda: tvm.resnet50(weights=None)),
        "mobilenet_v3_large": cnn(lambda: tvm.mobilenet_v3_large(weights=None)),
        "efficientnet_b0": cnn(lambda: tvm.efficientnet_b0(weights=None)),
        "convnext_tiny": cnn(lambda: tvm.convnext_tiny(weights=None)),
        "vit_b_16": cnn(lambda: tvm.vit_b_16(weights=None)),
    }


def frameworks(small=False):
    """[(exporter label, {name: builder}), ...] for the frameworks this interpreter can import."""
    out = []
    try:
        import torch
        import transformers
        out.append((f"transformers {transformers.__version__} / torch {torch.__version__}",
                    transformers_models(small)))
    except ImportError as e:
        print(f"skipping the transformers models: {sys.executable} cannot import {e.name}", file=sys.stderr)
    try:
        import torch
        import torchvision
        out.append((f"torchvision {torchvision.__version__} / torch {torch.__version__}", torchvision_models(small)))
    except ImportError as e:
        print(f"skipping the torchvision models: {sys.executable} cannot import {e.name}", file=sys.stderr)
    return out


def with_named_parameters(module, n):
    """module behind a forward(a0, ..., a<n-1>): torch.export traces a *args forward wrongly (its
    guard code names a variable it never defines)."""
    import torch
    params = ", ".join(f"a{i}" for i in range(n))
    scope: dict = {}
    exec(f"def forward(self, {params}):\n    return self.inner({params})\n", scope)
    cls = type("Positional", (torch.nn.Module,), {"forward": scope["forward"]})
    wrapper = cls()
    wrapper.inner = module
    return wrapper.eval()


def strip_metadata(path):
    """Drops the metadata the dynamo exporter writes on every node and value (the Python stack trace,
    with this machine's file paths, the module hierarchy, the FX node): a committed model carries
    only the graph."""
    import onnx

    def strip_graph(g):
        g.doc_string = ""
        del g.metadata_props[:]
        for v in list(g.input) + list(g.output) + list(g.value_info) + list(g.initializer):
            v.doc_string = ""
            del v.metadata_props[:]
        for n in g.node:
            n.doc_string = ""
            del n.metadata_props[:]
            for a in n.attribute:
                if a.HasField("g"):
                    strip_graph(a.g)
                for sub in a.graphs:
                    strip_graph(sub)

    model = onnx.load(path)
    strip_graph(model.graph)
    for f in model.functions:
        del f.metadata_props[:]
        for n in f.node:
            n.doc_string = ""
            del n.metadata_props[:]
    model.doc_string = ""
    onnx.save(model, path)


def export(module, sets, path, ins, outs, dyn, dynamo, external_data=True):
    """torch.onnx.export with the TorchScript exporter (opset OPSET, constants folded) or the dynamo
    one (torch.export, its default opset; weights in PATH.data unless external_data is False).
    The last input set must have every dynamic axis above 1."""
    import torch
    # dynamo: an example with batch and lengths above 1 (torch.export fixes a dynamic axis of size 1)
    args = tuple(torch.from_numpy(v) for v in sets[-1 if dynamo else 0].values())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            shapes = tuple({axis: torch.export.Dim.DYNAMIC for axis in dyn.get(k, {})} for k in ins)
            torch.onnx.export(with_named_parameters(module, len(ins)), args, path, dynamo=True, input_names=ins,
                              output_names=outs, dynamic_shapes=shapes, external_data=external_data, verbose=False)
        else:
            torch.onnx.export(module, args, path, dynamo=False, opset_version=OPSET, input_names=ins,
                              output_names=outs, dynamic_axes=dyn, do_constant_folding=True)


def build(out_dir, only, small=False):
    """Every model through both exporters: NAME.onnx (TorchScript) and NAME.dynamo.onnx (dynamo),
    checked against one NAME.npz. small: the committed zoo's twins, dynamo only, as
    dynamo_NAME.onnx with its weights inside."""
    import torch
    torch.set_num_threads(1)          # the stored outputs do not depend on the machine's core count
    for exporter, models in frameworks(small):
        for name, builder in models.items():
            if only and name not in only:
                continue
            t0 = time.time()
            seed = sum(map(ord, name))
            torch.manual_seed(seed)
            rng = np.random.default_rng(seed)
            module, ins, outs, dyn, sets, calib = builder(rng)
            make_trained_like(module, seed)
            calibrate_batchnorm(module, calib)
            module.eval()
            params = sum(p.numel() for p in module.parameters())
            stored = []
            with torch.no_grad():
                for feeds in sets:
                    assert list(feeds) == ins, (name, list(feeds))
                    got = module(*[torch.from_numpy(v) for v in feeds.values()])
                    got = got if isinstance(got, tuple) else (got,)
                    stored.append((feeds, {k: t.numpy().copy() for k, t in zip(outs, got)}))
            if small:
                name = "dynamo_" + name
                path = os.path.join(out_dir, name + ".onnx")
                export(module, sets, path, ins, outs, dyn, dynamo=True, external_data=False)
                strip_metadata(path)
                save_npz(out_dir, name, stored, f"{exporter}, dynamo exporter")
            else:
                # Exported with gradients enabled: under no_grad, nn.MultiheadAttention (ViT) in eval
                # mode takes its fused fast path; the stored outputs above come from that path, as
                # users' inference does.
                path = os.path.join(out_dir, name + ".onnx")
                export(module, sets, path, ins, outs, dyn, dynamo=False)
                t1 = time.time()
                export(module, sets, os.path.join(out_dir, name + ".dynamo.onnx"), ins, outs, dyn, dynamo=True)
                save_npz(out_dir, name, stored, f"torch {torch.__version__}")
                add_meta(out_dir, name, exporter=exporter, params=params,
                         fp16_rounding_error=fp16_rounding_error(module, stored, outs))
                print(f"  {name}.dynamo.onnx: {time.time() - t1:.0f} s", flush=True)
            del module, stored
            gc.collect()
            print(f"{name}: {params / 1e6:.1f}M parameters, {os.path.getsize(path) / 2**20:.1f} MB, "
                  f"{time.time() - t0:.0f} s", flush=True)


def fp16_rounding_error(module, stored, outs):
    """How much this model's outputs move when its parameters and float inputs are rounded to
    float16 and everything else stays float32 (the largest relative L2 change over the outputs of
    every input set): the error a float16 conversion cannot avoid, against which the test sizes its
    tolerance. Rounds the module's parameters in place."""
    import torch
    worst = 0.0
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(p.half().float())
        for feeds, want in stored:
            args = [torch.from_numpy(v.astype(np.float16).astype(np.float32) if v.dtype == np.float32 else v)
                    for v in feeds.values()]
            got = module(*args)
            for k, t in zip(outs, got if isinstance(got, tuple) else (got,)):
                w = want[k].astype(np.float64)
                worst = max(worst, float(np.linalg.norm(t.numpy() - w) / np.linalg.norm(w)))
    return worst


def add_meta(out_dir, name, **meta):
    """Appends meta:<key> entries to NAME.npz, with the same fixed time stamps as save_npz."""
    import io
    import zipfile
    with zipfile.ZipFile(os.path.join(out_dir, name + ".npz"), "a", zipfile.ZIP_DEFLATED) as z:
        for key, value in meta.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asarray(value), allow_pickle=False)
            info = zipfile.ZipInfo(f"meta:{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, buf.getvalue())


def to_fp16(out_dir, only):
    """NAME.fp16.onnx for every NAME.onnx: weights, activations, inputs and outputs in float16."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16
    for f in sorted(os.listdir(out_dir)):
        name = f[:-len(".onnx")]
        if not f.endswith(".onnx") or name.endswith((".fp16", ".dynamo")) or (only and name not in only):
            continue
        t0 = time.time()
        model = convert_float_to_float16(onnx.load(os.path.join(out_dir, f)), keep_io_types=False)
        onnx.save(model, os.path.join(out_dir, name + ".fp16.onnx"))
        del model
        gc.collect()
        print(f"{name}.fp16: {time.time() - t0:.0f} s", flush=True)


# The models each quantizer step takes: transformers and the Keras BiLSTM (whose LSTMs become
# com.microsoft DynamicQuantizeLSTM) get dynamic int8 (what onnxruntime recommends for them), CNNs
# static QDQ.
INT8_DYNAMIC = ["bert_base", "distilbert", "minilm", "roberta", "gpt2", "keras_bilstm"]
INT8_STATIC = ["resnet50", "mobilenet_v3_large", "efficientnet_b0", "convnext_tiny"]


def to_int8(out_dir, only):
    """NAME.int8.onnx (dynamic) and NAME.qdq.onnx (static QDQ) with onnxruntime's quantizer."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self, feeds):
            self.it = iter(feeds)

        def get_next(self):
            return next(self.it, None)

    def inputs_of(name):
        data = np.load(os.path.join(out_dir, name + ".npz"))
        sets = {}
        for key in data.files:
            if not key.startswith("meta:"):
                i, kind, tensor = key.split(":", 2)
                if kind == "in":
                    sets.setdefault(int(i), {})[tensor] = data[key]
        return [sets[i] for i in sorted(sets)]

    for name in INT8_DYNAMIC + INT8_STATIC:
        src = os.path.join(out_dir, name + ".onnx")
        if (only and name not in only) or not os.path.exists(src):
            continue
        t0 = time.time()
        if name in INT8_DYNAMIC:
            dst = os.path.join(out_dir, name + ".int8.onnx")
            quantize_dynamic(src, dst, weight_type=QuantType.QInt8)
        else:
            dst = os.path.join(out_dir, name + ".qdq.onnx")
            # Each stored set split into single images: calibration sees every one of them.
            feeds = [{k: v[j:j + 1] for k, v in s.items()}
                     for s in inputs_of(name) for j in range(len(next(iter(s.values()))))]
            quantize_static(src, dst, Reader(feeds), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        print(f"{os.path.basename(dst)}: {os.path.getsize(dst) / 2**20:.0f} MB, {time.time() - t0:.0f} s", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="*", help="model names (default: all)")
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--fp16", action="store_true", help="write the float16 conversions of the exports in --out")
    ap.add_argument("--int8", action="store_true", help="write onnxruntime's int8 quantizations of the exports")
    ap.add_argument("--small", action="store_true",
                    help="the committed zoo's dynamo twins (dynamo_NAME in tests/models by default)")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    only = set(args.only or [])
    if args.fp16:
        to_fp16(args.out, only)
    elif args.int8:
        to_int8(args.out, only)
    else:
        build(args.out if args.out != DEFAULT_OUT or not args.small else HERE, only, small=args.small)


if __name__ == "__main__":
    main()
