"""Builds the model zoo: real exports from PyTorch (torch.onnx.export) and scikit-learn (skl2onnx).

For every model NAME it writes, next to this file:
  NAME.onnx  the exported model
  NAME.npz   input sets and the source framework's own outputs for them:
               "<i>:in:<input name>"   input set i (i = 0, 1, ...; several batch sizes, and several
                                       sequence lengths for sequence models)
               "<i>:out:<output name>" the framework's output for input set i (torch in eval mode under
                                       torch.no_grad(); scikit-learn's predict / predict_proba)
               "zipmap:<output name>"  for a ZipMap output (a list of {label: probability}): the labels;
                                       "<i>:out:<name>" then holds predict_proba as a matrix
               "meta:framework"        e.g. "torch 1.13.0" or "sklearn 1.9.1 / skl2onnx 1.20.0"

The torch part runs under the system Python with Debian's python3-torch; the scikit-learn part runs
under the project's venv (scikit-learn, skl2onnx). Each part is skipped when the interpreter cannot
import its framework; `make zoo` runs both. Weights are random with fixed seeds, widths are small.

  /usr/bin/python3 tests/models/generate.py --families torch
  .venv/bin/python tests/models/generate.py --families sklearn
  ... [--only NAME ...] [--out DIR]
"""
import argparse
import io
import math
import os
import sys
import warnings
import zipfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OPSET = 17


def save_npz(out_dir, name, sets, framework, zipmap=None):
    arrays = {"meta:framework": np.array(framework)}
    for i, (inputs, outputs) in enumerate(sets):
        for k, v in inputs.items():
            arrays[f"{i}:in:{k}"] = v
        for k, v in outputs.items():
            arrays[f"{i}:out:{k}"] = v
    for k, labels in (zipmap or {}).items():
        arrays[f"zipmap:{k}"] = np.asarray(labels)
    # np.savez_compressed, with fixed time stamps so that regenerating gives identical bytes.
    with zipfile.ZipFile(os.path.join(out_dir, name + ".npz"), "w", zipfile.ZIP_DEFLATED) as z:
        for key, value in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asarray(value), allow_pickle=False)
            info = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, buf.getvalue())


# ----------------------------------------------------------------------------------------------
# PyTorch models
# ----------------------------------------------------------------------------------------------

def torch_models(bench=False):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    def make_divisible(v, divisor=8):
        new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
        return new_v + divisor if new_v < 0.9 * v else new_v

    # ---- linear regression, MLP -------------------------------------------------------------
    class LinearRegression(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(12, 1)

        def forward(self, x):
            return self.fc(x)

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(20, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Dropout(0.2),
                                     nn.Linear(64, 32), nn.GELU(), nn.Linear(32, 5))

        def forward(self, x):
            return torch.softmax(self.net(x), dim=-1)

    # ---- Keras-style CNN on NHWC images -----------------------------------------------------
    class KerasCNN(nn.Module):
        """What a Keras Sequential CNN computes: NHWC in, 'same' convolutions, Flatten in NHWC order."""

        def __init__(self):
            super().__init__()
            self.c1 = nn.Conv2d(3, 8, 3, padding=1)
            self.c2 = nn.Conv2d(8, 16, 3, padding=1, bias=False)
            self.bn = nn.BatchNorm2d(16, eps=1e-3)
            self.fc1 = nn.Linear(16 * 8 * 8, 32)
            self.fc2 = nn.Linear(32, 10)

        def forward(self, x):                      # x: (N, 32, 32, 3)
            x = x.permute(0, 3, 1, 2)
            x = F.max_pool2d(F.relu(self.c1(x)), 2)
            x = F.max_pool2d(F.relu(self.bn(self.c2(x))), 2)
            x = x.permute(0, 2, 3, 1).flatten(1)     # Keras Flatten: channels last
            return torch.softmax(self.fc2(F.relu(self.fc1(x))), dim=-1)

    # ---- text classifiers -------------------------------------------------------------------
    VOCAB = 500

    class FastText(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.EmbeddingBag(VOCAB, 16, mode="mean")
            self.fc = nn.Linear(16, 4)

        def forward(self, tokens):                 # (N, L) int64
            return self.fc(self.emb(tokens))

    class TextCNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(VOCAB, 16, padding_idx=0)
            self.convs = nn.ModuleList([nn.Conv1d(16, 8, k) for k in (2, 3, 4)])
            self.fc = nn.Linear(24, 3)

        def forward(self, tokens):                 # (N, L >= 4)
            x = self.emb(tokens).transpose(1, 2)   # (N, 16, L)
            pooled = [F.relu(c(x)).amax(dim=2) for c in self.convs]
            return self.fc(torch.cat(pooled, dim=1))

    class BiLSTM(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(VOCAB, 16, padding_idx=0)
            self.lstm = nn.LSTM(16, 24, num_layers=2, batch_first=True, bidirectional=True)
            self.fc = nn.Linear(96, 3)

        def forward(self, tokens):
            out, (h, c) = self.lstm(self.emb(tokens))          # out: (N, L, 48)
            feats = torch.cat([out.mean(dim=1), out.amax(dim=1)], dim=1)
            return self.fc(feats)

    # ---- BERT-style encoder -----------------------------------------------------------------
    class BertLayer(nn.Module):
        def __init__(self, hidden, heads):
            super().__init__()
            self.heads, self.dh = heads, hidden // heads
            self.q, self.k, self.v = nn.Linear(hidden, hidden), nn.Linear(hidden, hidden), nn.Linear(hidden, hidden)
            self.o = nn.Linear(hidden, hidden)
            self.ln1 = nn.LayerNorm(hidden, eps=1e-12)
            self.ff1, self.ff2 = nn.Linear(hidden, 4 * hidden), nn.Linear(4 * hidden, hidden)
            self.ln2 = nn.LayerNorm(hidden, eps=1e-12)

        def split(self, x):
            return x.view(x.size(0), x.size(1), self.heads, self.dh).permute(0, 2, 1, 3)

        def forward(self, x, ext_mask):
            q, k, v = self.split(self.q(x)), self.split(self.k(x)), self.split(self.v(x))
            scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.dh) + ext_mask
            ctx = torch.matmul(torch.softmax(scores, dim=-1), v).permute(0, 2, 1, 3).contiguous()
            ctx = ctx.view(ctx.size(0), ctx.size(1), -1)
            x = self.ln1(x + self.o(ctx))
            return self.ln2(x + self.ff2(F.gelu(self.ff1(x))))

    class Bert(nn.Module):
        def __init__(self, hidden=32, heads=4, layers=2, max_len=64):
            super().__init__()
            self.word = nn.Embedding(VOCAB, hidden, padding_idx=0)
            self.pos = nn.Embedding(max_len, hidden)
            self.token_type = nn.Embedding(2, hidden)
            self.register_buffer("position_ids", torch.arange(max_len).unsqueeze(0))
            self.ln = nn.LayerNorm(hidden, eps=1e-12)
            self.layers = nn.ModuleList([BertLayer(hidden, heads) for _ in range(layers)])
            self.pool = nn.Linear(hidden, hidden)
            self.cls = nn.Linear(hidden, 2)

        def forward(self, input_ids, attention_mask, token_type_ids):
            n = input_ids.size(1)
            x = self.word(input_ids) + self.pos(self.position_ids[:, :n]) + self.token_type(token_type_ids)
            x = self.ln(x)
            ext = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * -10000.0
            for layer in self.layers:
                x = layer(x, ext)
            pooled = torch.tanh(self.pool(x[:, 0]))
            return x, self.cls(pooled)

    # ---- GPT-style decoder ------------------------------------------------------------------
    class GPTBlock(nn.Module):
        def __init__(self, hidden, heads):
            super().__init__()
            self.heads, self.dh = heads, hidden // heads
            self.ln1, self.ln2 = nn.LayerNorm(hidden), nn.LayerNorm(hidden)
            self.qkv = nn.Linear(hidden, 3 * hidden)
            self.proj = nn.Linear(hidden, hidden)
            self.fc, self.out = nn.Linear(hidden, 4 * hidden), nn.Linear(4 * hidden, hidden)

        def forward(self, x):
            b, t, c = x.shape
            q, k, v = self.qkv(self.ln1(x)).split(c, dim=2)
            q, k, v = [z.reshape(b, t, self.heads, self.dh).transpose(1, 2) for z in (q, k, v)]
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(self.dh))
            causal = torch.tril(torch.ones(t, t, dtype=torch.bool, device=x.device))
            att = att.masked_fill(~causal, float("-inf"))
            y = (torch.softmax(att, dim=-1) @ v).transpose(1, 2).reshape(b, t, c)
            x = x + self.proj(y)
            return x + self.out(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))

    class GPT(nn.Module):
        def __init__(self, hidden=32, heads=4, layers=2, max_len=64):
            super().__init__()
            self.tok = nn.Embedding(VOCAB, hidden)
            self.pos = nn.Embedding(max_len, hidden)
            self.blocks = nn.ModuleList([GPTBlock(hidden, heads) for _ in range(layers)])
            self.ln = nn.LayerNorm(hidden)
            self.head = nn.Linear(hidden, VOCAB, bias=False)
            self.head.weight = self.tok.weight          # tied embeddings

        def forward(self, input_ids):
            t = input_ids.size(1)
            pos = torch.arange(t, dtype=torch.long, device=input_ids.device)
            x = self.tok(input_ids) + self.pos(pos)
            for blk in self.blocks:
                x = blk(x)
            return self.head(self.ln(x))

    # ---- recommenders -----------------------------------------------------------------------
    class GRURecommender(nn.Module):
        def __init__(self, users=100, items=200):
            super().__init__()
            self.user = nn.Embedding(users, 16)
            self.item = nn.Embedding(items, 16)
            self.gru = nn.GRU(16, 32, batch_first=True)
            self.mlp = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 1))

        def forward(self, user_id, history, item_id):   # (N,), (N, L), (N,)
            _, h = self.gru(self.item(history))
            z = torch.cat([self.user(user_id), h[-1], self.item(item_id)], dim=1)
            return torch.sigmoid(self.mlp(z)).squeeze(1)

    class DLRM(nn.Module):
        def __init__(self, tables=(50, 80, 30), dim=8, dense=4):
            super().__init__()
            self.bottom = nn.Sequential(nn.Linear(dense, 16), nn.ReLU(), nn.Linear(16, dim), nn.ReLU())
            self.embs = nn.ModuleList([nn.EmbeddingBag(n, dim, mode="sum") for n in tables])
            f = len(tables) + 1
            li, lj = zip(*[(i, j) for i in range(f) for j in range(i)])
            self.register_buffer("li", torch.tensor(li))
            self.register_buffer("lj", torch.tensor(lj))
            self.top = nn.Sequential(nn.Linear(dim + len(li), 16), nn.ReLU(), nn.Linear(16, 1))

        def forward(self, dense, idx0, off0, idx1, off1, idx2, off2):
            x = self.bottom(dense)
            ly = [e(i, o) for e, i, o in zip(self.embs, (idx0, idx1, idx2), (off0, off1, off2))]
            t = torch.stack([x] + ly, dim=1)               # (N, F, D)
            z = torch.bmm(t, t.transpose(1, 2))            # (N, F, F)
            zflat = z[:, self.li, self.lj]                 # strictly lower triangle
            return torch.sigmoid(self.top(torch.cat([x, zflat], dim=1)))

    # ---- image classifiers ------------------------------------------------------------------
    class BasicBlock(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.down = None
            if stride != 1 or cin != cout:
                self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

        def forward(self, x):
            idt = x if self.down is None else self.down(x)
            out = F.relu(self.bn1(self.conv1(x)))
            return F.relu(self.bn2(self.conv2(out)) + idt)

    class ResNet18(nn.Module):
        def __init__(self, width=8, classes=10):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, width, 7, 2, 3, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
                                      nn.MaxPool2d(3, 2, 1))
            blocks, cin = [], width
            for i, w in enumerate([width, 2 * width, 4 * width, 8 * width]):
                blocks += [BasicBlock(cin, w, 1 if i == 0 else 2), BasicBlock(w, w, 1)]
                cin = w
            self.blocks = nn.Sequential(*blocks)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(cin, classes)

        def forward(self, x):
            return self.fc(torch.flatten(self.pool(self.blocks(self.stem(x))), 1))

    def conv_bn_act(cin, cout, k, stride, groups=1, act=nn.ReLU6):
        layers = [nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
        if act is not None:
            layers.append(act())
        return nn.Sequential(*layers)

    class InvertedResidual(nn.Module):
        def __init__(self, cin, cout, stride, expand):
            super().__init__()
            hidden = int(round(cin * expand))
            self.use_res = stride == 1 and cin == cout
            layers = [] if expand == 1 else [conv_bn_act(cin, hidden, 1, 1)]
            layers += [conv_bn_act(hidden, hidden, 3, stride, groups=hidden),       # depthwise
                       conv_bn_act(hidden, cout, 1, 1, act=None)]                    # linear bottleneck
            self.conv = nn.Sequential(*layers)

        def forward(self, x):
            return x + self.conv(x) if self.use_res else self.conv(x)

    class MobileNetV2(nn.Module):
        def __init__(self, width=0.25, classes=10, last=128):
            super().__init__()
            cfg = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                   (6, 320, 1, 1)]
            cin = make_divisible(32 * width)
            feats = [conv_bn_act(3, cin, 3, 2)]
            for t, c, n, s in cfg:
                cout = make_divisible(c * width)
                for i in range(n):
                    feats.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                    cin = cout
            feats.append(conv_bn_act(cin, last, 1, 1))
            self.features = nn.Sequential(*feats)
            self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(last, classes))

        def forward(self, x):
            x = F.adaptive_avg_pool2d(self.features(x), (1, 1))
            return self.classifier(torch.flatten(x, 1))

    class SqueezeExcitation(nn.Module):
        def __init__(self, c, squeeze):
            super().__init__()
            self.fc1, self.fc2 = nn.Conv2d(c, squeeze, 1), nn.Conv2d(squeeze, c, 1)

        def forward(self, x):
            s = F.adaptive_avg_pool2d(x, 1)
            s = F.hardsigmoid(self.fc2(F.relu(self.fc1(s))))
            return x * s

    class V3Block(nn.Module):
        def __init__(self, cin, k, exp, cout, se, act, stride):
            super().__init__()
            a = nn.Hardswish if act == "HS" else nn.ReLU
            self.use_res = stride == 1 and cin == cout
            layers = [] if exp == cin else [conv_bn_act(cin, exp, 1, 1, act=a)]
            layers.append(conv_bn_act(exp, exp, k, stride, groups=exp, act=a))
            if se:
                layers.append(SqueezeExcitation(exp, make_divisible(exp // 4)))
            layers.append(conv_bn_act(exp, cout, 1, 1, act=None))
            self.block = nn.Sequential(*layers)

        def forward(self, x):
            y = self.block(x)
            return x + y if self.use_res else y

    class MobileNetV3Small(nn.Module):
        def __init__(self, width=0.5, classes=10, last=256):
            super().__init__()
            cfg = [(3, 16, 16, True, "RE", 2), (3, 72, 24, False, "RE", 2), (3, 88, 24, False, "RE", 1),
                   (5, 96, 40, True, "HS", 2), (5, 240, 40, True, "HS", 1), (5, 240, 40, True, "HS", 1),
                   (5, 120, 48, True, "HS", 1), (5, 144, 48, True, "HS", 1), (5, 288, 96, True, "HS", 2),
                   (5, 576, 96, True, "HS", 1), (5, 576, 96, True, "HS", 1)]
            cin = make_divisible(16 * width)
            feats = [conv_bn_act(3, cin, 3, 2, act=nn.Hardswish)]
            for k, exp, c, se, act, s in cfg:
                cout = make_divisible(c * width)
                feats.append(V3Block(cin, k, make_divisible(exp * width), cout, se, act, s))
                cin = cout
            feats.append(conv_bn_act(cin, 6 * cin, 1, 1, act=nn.Hardswish))
            self.features = nn.Sequential(*feats)
            self.classifier = nn.Sequential(nn.Linear(6 * cin, last), nn.Hardswish(), nn.Dropout(0.2),
                                            nn.Linear(last, classes))

        def forward(self, x):
            x = torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1)
            return self.classifier(x)

    # ---- inputs -----------------------------------------------------------------------------
    def tokens(rng, n, length, pad=True):
        t = rng.integers(1, VOCAB, size=(n, length)).astype(np.int64)
        if pad and length > 4:                       # right padding with id 0 on some rows
            for r in range(0, n, 2):
                t[r, length - rng.integers(1, length // 2):] = 0
        return t

    def image(rng, n, shape):
        return rng.standard_normal((n,) + shape).astype(np.float32)

    def bert_inputs(rng, n, length):
        ids = tokens(rng, n, length)
        mask = (ids != 0).astype(np.int64)
        mask[:, 0] = 1
        types = np.zeros_like(ids)
        types[:, length // 2:] = 1
        return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}

    def rec_inputs(rng, n, length):
        return {"user_id": rng.integers(0, 100, n).astype(np.int64),
                "history": rng.integers(0, 200, (n, length)).astype(np.int64),
                "item_id": rng.integers(0, 200, n).astype(np.int64)}

    def dlrm_inputs(rng, n):
        feeds = {"dense": rng.standard_normal((n, 4)).astype(np.float32)}
        for t, rows in enumerate((50, 80, 30)):
            counts = rng.integers(0 if n > 1 else 1, 4, n)   # bags of 0..3 ids (an empty bag sums to 0)
            feeds[f"idx{t}"] = rng.integers(0, rows, counts.sum()).astype(np.int64)
            feeds[f"off{t}"] = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        return feeds

    seq = {0: "batch", 1: "sequence"}
    bat = {0: "batch"}
    if bench:  # realistic widths, one input set of one row at sequence length 128 (bench/models)
        return {
            "bert_seq128": (lambda: Bert(hidden=256, heads=4, layers=4, max_len=128),
                                 ["input_ids", "attention_mask", "token_type_ids"], ["last_hidden_state", "logits"],
                                 {"input_ids": seq, "attention_mask": seq, "token_type_ids": seq,
                                  "last_hidden_state": seq, "logits": bat},
                                 [lambda r: bert_inputs(r, 1, 128)]),
            "gpt_seq128": (lambda: GPT(hidden=256, heads=4, layers=4, max_len=128), ["input_ids"], ["logits"],
                           {"input_ids": seq, "logits": seq}, [lambda r: {"input_ids": tokens(r, 1, 128, False)}]),
        }
    # name: (constructor, input names, output names, dynamic axes, list of input-set makers)
    return {
        "linear_regression": (LinearRegression, ["x"], ["y"], {"x": bat, "y": bat},
                              [lambda r: {"x": image(r, 1, (12,))}, lambda r: {"x": image(r, 9, (12,))}]),
        "mlp": (MLP, ["x"], ["probs"], {"x": bat, "probs": bat},
                [lambda r: {"x": image(r, 2, (20,))}, lambda r: {"x": image(r, 16, (20,))}]),
        "cnn_nhwc": (KerasCNN, ["image"], ["probs"], {"image": bat, "probs": bat},
                     [lambda r: {"image": image(r, 1, (32, 32, 3))}, lambda r: {"image": image(r, 5, (32, 32, 3))}]),
        "fasttext": (FastText, ["tokens"], ["logits"], {"tokens": seq, "logits": bat},
                     [lambda r: {"tokens": tokens(r, 2, 7, pad=False)}, lambda r: {"tokens": tokens(r, 5, 19, False)},
                      lambda r: {"tokens": tokens(r, 1, 1, False)}]),
        "textcnn": (TextCNN, ["tokens"], ["logits"], {"tokens": seq, "logits": bat},
                    [lambda r: {"tokens": tokens(r, 2, 6)}, lambda r: {"tokens": tokens(r, 4, 23)}]),
        "bilstm": (BiLSTM, ["tokens"], ["logits"], {"tokens": seq, "logits": bat},
                   [lambda r: {"tokens": tokens(r, 2, 5)}, lambda r: {"tokens": tokens(r, 3, 17)},
                    lambda r: {"tokens": tokens(r, 1, 1)}]),
        "bert_encoder": (Bert, ["input_ids", "attention_mask", "token_type_ids"], ["last_hidden_state", "logits"],
                         {"input_ids": seq, "attention_mask": seq, "token_type_ids": seq,
                          "last_hidden_state": seq, "logits": bat},
                         [lambda r: bert_inputs(r, 2, 8), lambda r: bert_inputs(r, 3, 21),
                          lambda r: bert_inputs(r, 1, 1)]),
        "gpt_decoder": (GPT, ["input_ids"], ["logits"], {"input_ids": seq, "logits": seq},
                        [lambda r: {"input_ids": tokens(r, 2, 6, False)},
                         lambda r: {"input_ids": tokens(r, 3, 16, False)},
                         lambda r: {"input_ids": tokens(r, 1, 1, False)}]),
        "gru_recommender": (GRURecommender, ["user_id", "history", "item_id"], ["score"],
                            {"user_id": bat, "history": seq, "item_id": bat, "score": bat},
                            [lambda r: rec_inputs(r, 2, 5), lambda r: rec_inputs(r, 6, 12)]),
        "dlrm": (DLRM, ["dense", "idx0", "off0", "idx1", "off1", "idx2", "off2"], ["ctr"],
                 dict({"dense": bat, "ctr": bat}, **{f"idx{t}": {0: f"n_ids{t}"} for t in range(3)},
                      **{f"off{t}": bat for t in range(3)}),
                 [lambda r: dlrm_inputs(r, 1), lambda r: dlrm_inputs(r, 4), lambda r: dlrm_inputs(r, 9)]),
        "resnet18": (ResNet18, ["image"], ["logits"], {"image": bat, "logits": bat},
                     [lambda r: {"image": image(r, 1, (3, 64, 64))}, lambda r: {"image": image(r, 3, (3, 64, 64))}]),
        "mobilenet_v2": (MobileNetV2, ["image"], ["logits"], {"image": bat, "logits": bat},
                         [lambda r: {"image": image(r, 1, (3, 64, 64))},
                          lambda r: {"image": image(r, 3, (3, 64, 64))}]),
        "mobilenet_v3_small": (MobileNetV3Small, ["image"], ["logits"], {"image": bat, "logits": bat},
                               [lambda r: {"image": image(r, 1, (3, 64, 64))},
                                lambda r: {"image": image(r, 3, (3, 64, 64))}]),
    }


def calibrate_batchnorm(model, make_inputs, rng):
    """Gives every BatchNorm real running statistics (a few train-mode passes on random inputs,
    cumulative averages) and random affine parameters, so that eval-mode BN is not the identity."""
    import torch
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    with torch.no_grad():
        for m in bns:
            m.reset_running_stats()
            m.momentum = None
            m.weight.uniform_(0.5, 1.5)
            m.bias.normal_(0.0, 0.2)
        model.train()
        for _ in range(3):
            feeds = make_inputs(rng)
            big = {k: np.concatenate([v] * 4) for k, v in feeds.items()}
            model(*[torch.from_numpy(v) for v in big.values()])


def build_torch(out_dir, only, bench=False):
    import torch
    torch.set_num_threads(1)
    made = []
    for name, (ctor, in_names, out_names, dyn, makers) in torch_models(bench).items():
        if only and name not in only:
            continue
        torch.manual_seed(0)
        rng = np.random.default_rng(sum(map(ord, name)))
        model = ctor()
        calibrate_batchnorm(model, makers[-1], rng)
        model.eval()
        sets = []
        with torch.no_grad():
            for make in makers:
                feeds = make(rng)
                assert list(feeds) == in_names, (name, list(feeds))
                outs = model(*[torch.from_numpy(v) for v in feeds.values()])
                outs = outs if isinstance(outs, tuple) else (outs,)
                sets.append((feeds, {k: o.numpy() for k, o in zip(out_names, outs)}))
            example = tuple(torch.from_numpy(v) for v in sets[0][0].values())
            path = os.path.join(out_dir, name + ".onnx")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(model, example, path, opset_version=OPSET, input_names=in_names,
                                  output_names=out_names, dynamic_axes=dyn, do_constant_folding=True)
        if bench:  # weights stripped: the stored outputs would not match the bench's weights
            strip_weights(path)
            sets = [(feeds, {}) for feeds, _ in sets]
        save_npz(out_dir, name, sets, f"torch {torch.__version__}")
        made.append(name)
        print(f"torch   {name}: {len(sets)} input sets", flush=True)
    return made


# ----------------------------------------------------------------------------------------------
# scikit-learn models
# ----------------------------------------------------------------------------------------------

def sklearn_models():
    from sklearn.ensemble import (
        GradientBoostingClassifier,
        GradientBoostingRegressor,
        RandomForestClassifier,
        RandomForestRegressor,
    )
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler, StandardScaler

    rng = np.random.default_rng(7)
    X = (rng.standard_normal((300, 6)) * [1, 2, 0.5, 3, 1, 10] + [0, 1, -2, 0, 5, 100]).astype(np.float32)
    w = np.array([1.0, -0.5, 2.0, 0.3, 0.0, 0.05])
    y_reg = X @ w + 0.1 * rng.standard_normal(300)
    score = (X - X.mean(0)) / X.std(0) @ np.array([1.0, -1.0, 0.5, 0.8, 0.0, -0.3])
    y_bin = (score > 0).astype(np.int64)
    y_multi = np.digitize(score, [-0.7, 0.0, 0.7]).astype(np.int64) * 2 + 3       # labels 3, 5, 7, 9

    # name: (estimator, y, task, zipmap)
    return X, {
        "sk_linear_regression": (LinearRegression(), y_reg, "reg", False),
        "sk_logistic_zipmap": (LogisticRegression(max_iter=1000), y_multi, "clf", True),
        "sk_logistic": (LogisticRegression(max_iter=1000), y_bin, "clf", False),
        "sk_random_forest_zipmap": (RandomForestClassifier(20, max_depth=6, random_state=0), y_multi, "clf", True),
        "sk_random_forest_regressor": (RandomForestRegressor(15, max_depth=6, random_state=0), y_reg, "reg", False),
        "sk_gradient_boosting": (GradientBoostingClassifier(n_estimators=25, max_depth=3, random_state=0), y_multi,
                                 "clf", False),
        "sk_gradient_boosting_binary_zipmap": (GradientBoostingClassifier(n_estimators=25, random_state=0), y_bin,
                                               "clf", True),
        "sk_gradient_boosting_regressor": (GradientBoostingRegressor(n_estimators=30, random_state=0), y_reg, "reg",
                                           False),
        "sk_scaler_logistic_zipmap": (make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)), y_multi,
                                      "clf", True),
        "sk_scaler_pipeline": (make_pipeline(StandardScaler(), MinMaxScaler(), LogisticRegression(max_iter=1000)),
                               y_bin, "clf", False),
        "sk_scaler_regression": (make_pipeline(MinMaxScaler(), StandardScaler(), LinearRegression()), y_reg, "reg",
                                 False),
    }


def build_sklearn(out_dir, only):
    import skl2onnx
    import sklearn
    X, models = sklearn_models()
    made = []
    rng = np.random.default_rng(11)
    for name, (est, y, task, zipmap) in models.items():
        if only and name not in only:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")          # lbfgs convergence warnings on the unscaled data
            est.fit(X, y)
            options = None if task == "reg" or zipmap else {"zipmap": False}
            onx = skl2onnx.to_onnx(est, X[:1], options=options, target_opset={"": OPSET, "ai.onnx.ml": 3})
        opsets = sorted((o.domain, o.version) for o in onx.opset_import)   # skl2onnx's order varies run to run
        del onx.opset_import[:]
        for domain, version in opsets:
            onx.opset_import.add(domain=domain, version=version)
        with open(os.path.join(out_dir, name + ".onnx"), "wb") as f:
            f.write(onx.SerializeToString())
        sets = []
        for n in (1, 7, 40):
            xs = X[rng.choice(len(X), n, replace=False)] + rng.standard_normal((n, X.shape[1])).astype(np.float32) * 0.1
            xs = xs.astype(np.float32)
            if task == "reg":
                outs = {"variable": est.predict(xs).reshape(n, 1).astype(np.float32)}
            else:
                labels = est.predict(xs).astype(np.int64)
                proba = est.predict_proba(xs).astype(np.float32)
                outs = ({"output_label": labels, "output_probability": proba} if zipmap
                        else {"label": labels, "probabilities": proba})
            sets.append(({"X": xs}, outs))
        zm = {"output_probability": np.asarray(est.classes_, np.int64)} if zipmap else None
        save_npz(out_dir, name, sets, f"sklearn {sklearn.__version__} / skl2onnx {skl2onnx.__version__}", zm)
        made.append(name)
        print(f"sklearn {name}: {len(sets)} input sets", flush=True)
    return made


STRIPPED = "mserve-bench: float initializers of 1024 values or more are stripped; bench/bench_models.py fills them"


def strip_weights(path):
    """Drops the data of every float32 initializer of 1024 values or more (dims kept), so that a
    bench model of realistic width stays small in the repository. Needs the onnx package: under an
    interpreter without it (the system Python with torch), runs itself under the project's venv."""
    try:
        import onnx
    except ImportError:
        import subprocess
        venv = os.path.join(HERE, "..", "..", ".venv", "bin", "python")
        subprocess.run([venv, os.path.abspath(__file__), "--strip", path], check=True)
        return
    m = onnx.load(path)
    for t in m.graph.initializer:
        if t.data_type == onnx.TensorProto.FLOAT and math.prod(t.dims) >= 1024:
            t.ClearField("raw_data")
            del t.float_data[:]
    m.doc_string = STRIPPED
    onnx.save(m, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--families", nargs="+", default=["torch", "sklearn"], choices=["torch", "sklearn", "bench"],
                    help="bench: transformers of realistic width for make bench, weights stripped, into bench/models")
    ap.add_argument("--only", nargs="*", help="model names to build (default: all)")
    ap.add_argument("--out", default=HERE)
    ap.add_argument("--strip", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.strip:
        strip_weights(args.strip)
        return
    if "bench" in args.families:
        bench_dir = os.path.join(HERE, "..", "..", "bench", "models")
        os.makedirs(bench_dir, exist_ok=True)
        build_torch(bench_dir, set(args.only or []), bench=True)
    os.makedirs(args.out, exist_ok=True)
    only = set(args.only or [])
    for fam, build, module in (("torch", build_torch, "torch"), ("sklearn", build_sklearn, "skl2onnx")):
        if fam not in args.families:
            continue
        try:
            __import__(module)
            if fam == "sklearn":
                __import__("sklearn")
        except ImportError:
            print(f"skipping the {fam} models: {sys.executable} cannot import {module}", file=sys.stderr)
            continue
        build(args.out, only)


if __name__ == "__main__":
    main()
