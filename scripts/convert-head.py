#!/usr/bin/env python3
"""Convert published heads over CLIP embeddings into lakecap's head layout
(config.json + model.safetensors) for `embedding_head(vec, 'dir')`.

No package carries these weights; download them from their repositories:

  aesthetic-v1        LAION-AI/aesthetic-predictor: sa_0_4_vit_{b_32,b_16,l_14}_linear.pth
                      (one nn.Linear over the normalised image embedding)
  aesthetic-v2        christophschuhmann/improved-aesthetic-predictor:
                      sac+logos+ava1-l14-linearMSE.pth (the MLP without activations)
  aesthetic-v2-relu   the same repository's ava+logos-l14-reluMSE.pth (ReLU MLP)
  laion-nsfw          LAION-AI/CLIP-based-NSFW-Detector: clip_autokeras_binary_nsfw.zip
                      (ViT-L/14) or clip_autokeras_nsfw_b32.zip, unzipped: a Keras
                      SavedModel; needs tensorflow and autokeras to read

    python scripts/convert-head.py KIND WEIGHTS OUT_DIR
    python scripts/convert-head.py --self-test    # needs torch and numpy

The .pth files are read with torch.load(weights_only=True), which refuses
anything but tensors. Every head expects L2-normalised embeddings, as its
reference code feeds it, so normalize_input is true. The NSFW detector's
Normalization layer ((x - mean) / sqrt(variance)) is folded into its first
Dense layer; its final sigmoid becomes output_activation.
"""
import json
import sys
from pathlib import Path

import numpy as np


def save(out, layers, arrays, output_activation, names):
    """layers: [(name, in, out, bias, activation)]; arrays: {name.weight: [out, in], ...}."""
    from safetensors.numpy import save_file

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in arrays.items()},
              str(out / "model.safetensors"))
    cfg = {
        "model_type": "embedding_head",
        "input_dim": layers[0][1],
        "normalize_input": True,
        "layers": [{"name": n, "in_features": i, "out_features": o, "bias": b, "activation": a}
                   for n, i, o, b, a in layers],
        "output_activation": output_activation,
        "output_names": names,
    }
    (out / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")


def from_state_dict(sd, relu):
    """An nn.Sequential's state dict (layers.N.weight) or one nn.Linear (weight, bias)."""
    sd = {k: np.asarray(v, dtype=np.float32) for k, v in sd.items()}
    if set(sd) == {"weight", "bias"}:
        sd = {"layers.0.weight": sd["weight"], "layers.0.bias": sd["bias"]}
    idx = sorted({int(k.split(".")[1]) for k in sd})
    layers = []
    for n, i in enumerate(idx):
        w = sd[f"layers.{i}.weight"]
        last = n == len(idx) - 1
        layers.append((f"layers.{i}", w.shape[1], w.shape[0], f"layers.{i}.bias" in sd,
                       None if last or not relu else "relu"))
    return layers, sd


def from_keras(model_layers):
    """Keras layers (InputLayer, Normalization, Dense, Activation, Dropout) as
    lakecap layers; returns (layers, arrays, output_activation)."""
    dense, pending_norm, out_act = [], None, None
    for layer in model_layers:
        kind = type(layer).__name__
        if kind == "Normalization":
            mean, var = (np.asarray(a, dtype=np.float64).reshape(-1) for a in layer.get_weights()[:2])
            pending_norm = (mean, np.sqrt(np.maximum(var, 1e-7)))
        elif kind == "Dense":
            kernel, bias = (np.asarray(a, dtype=np.float64) for a in layer.get_weights())
            w, b = kernel.T, bias
            if pending_norm is not None:
                mean, std = pending_norm
                w, b = w / std, b - (w / std) @ mean
                pending_norm = None
            dense.append([w, b, layer.activation.__name__])
        elif kind in ("Activation", "ReLU") and dense:
            dense[-1][2] = "relu" if kind == "ReLU" else layer.activation.__name__
        elif kind in ("InputLayer", "Dropout", "Flatten"):
            continue
        else:
            sys.exit(f"convert-head: unsupported Keras layer {kind} ({layer.name})")
    if dense and dense[-1][2] in ("sigmoid", "softmax"):
        out_act = dense[-1][2]
    layers, arrays = [], {}
    for i, (w, b, act) in enumerate(dense):
        act = None if act in ("linear", "sigmoid", "softmax") else act
        if act not in (None, "relu", "gelu", "silu"):
            sys.exit(f"convert-head: unsupported activation {act}")
        layers.append((f"layers.{i}", w.shape[1], w.shape[0], True, act))
        arrays[f"layers.{i}.weight"], arrays[f"layers.{i}.bias"] = w, b
    return layers, arrays, out_act


def forward(layers, arrays, out_act, x):
    """The converted head in numpy, as lakecap computes it (the self-test's check)."""
    h = x / np.linalg.norm(x, axis=-1, keepdims=True)
    for name, _, _, bias, act in layers:
        h = h @ arrays[f"{name}.weight"].T + (arrays[f"{name}.bias"] if bias else 0)
        if act == "relu":
            h = np.maximum(h, 0)
    return 1 / (1 + np.exp(-h)) if out_act == "sigmoid" else h


def self_test():
    import tempfile
    import types

    import torch

    torch.manual_seed(0)
    x = torch.randn(5, 12)
    xn = torch.nn.functional.normalize(x, dim=-1)
    L, D = torch.nn.Linear, torch.nn.Dropout
    cases = {
        "aesthetic-v1": (L(12, 1), False),
        "aesthetic-v2": (torch.nn.Sequential(L(12, 10), D(0.2), L(10, 6), D(0.1), L(6, 4), L(4, 1)), False),
        "aesthetic-v2-relu": (torch.nn.Sequential(L(12, 10), torch.nn.ReLU(), D(0.2), L(10, 4),
                                                  torch.nn.ReLU(), L(4, 1)), True),
    }
    with tempfile.TemporaryDirectory() as tmp:
        for kind, (m, relu) in cases.items():
            m.eval()
            if isinstance(m, torch.nn.Sequential):
                wrap = torch.nn.Module()
                wrap.layers = m
                sd = wrap.state_dict()
            else:
                sd = m.state_dict()
            path = Path(tmp) / f"{kind}.pth"
            torch.save(sd, path)
            convert(kind, path, Path(tmp) / kind)
            layers, arrays = from_state_dict(torch.load(path, weights_only=True), relu)
            want = m(xn).detach().numpy()
            got = forward(layers, arrays, None, x.numpy())
            assert np.allclose(got, want, atol=1e-5), (kind, got, want)
            assert json.loads((Path(tmp) / kind / "config.json").read_text())["layers"]

    class Layer:
        def __init__(self, kind, weights=(), act=None):
            self.__class__ = type(kind, (Layer,), {})
            self.weights, self.name = weights, kind.lower()
            self.activation = types.SimpleNamespace(__name__=act)

        def get_weights(self):
            return self.weights

    rng = np.random.default_rng(1)
    mean, var = rng.normal(size=12), rng.uniform(0.5, 2, size=12)
    k1, b1, k2, b2 = rng.normal(size=(12, 7)), rng.normal(size=7), rng.normal(size=(7, 1)), rng.normal(size=1)
    keras = [Layer("InputLayer"), Layer("Normalization", [mean, var, 0]),
             Layer("Dense", [k1, b1], "linear"), Layer("ReLU"), Layer("Dropout"),
             Layer("Dense", [k2, b2], "linear"), Layer("Activation", act="sigmoid")]
    layers, arrays, out_act = from_keras(keras)
    xk = x.numpy().astype(np.float64)
    h = xk / np.linalg.norm(xk, axis=-1, keepdims=True)
    want = 1 / (1 + np.exp(-(np.maximum(((h - mean) / np.sqrt(var)) @ k1 + b1, 0) @ k2 + b2)))
    assert out_act == "sigmoid" and np.allclose(forward(layers, arrays, out_act, xk), want, atol=1e-9)
    print("convert-head self-test: ok (aesthetic-v1, aesthetic-v2, aesthetic-v2-relu, keras folding)")


def convert(kind, weights, out):
    if kind in ("aesthetic-v1", "aesthetic-v2", "aesthetic-v2-relu"):
        import torch

        sd = torch.load(weights, map_location="cpu", weights_only=True)
        layers, arrays = from_state_dict(sd, kind == "aesthetic-v2-relu")
        save(out, layers, arrays, None, ["aesthetic"])
    elif kind == "laion-nsfw":
        import autokeras as ak  # noqa: F401 (registers the model's custom objects)
        from tensorflow.keras.models import load_model

        model = load_model(str(weights), custom_objects=ak.CUSTOM_OBJECTS)
        layers, arrays, out_act = from_keras(model.layers)
        save(out, layers, arrays, out_act, ["nsfw"])
    else:
        sys.exit(f"convert-head: unknown kind {kind} (aesthetic-v1, aesthetic-v2, aesthetic-v2-relu, laion-nsfw)")


if __name__ == "__main__":
    if sys.argv[1:] == ["--self-test"]:
        self_test()
    elif len(sys.argv) == 4:
        convert(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]))
        print(f"wrote {sys.argv[3]}/config.json and model.safetensors")
    else:
        sys.exit(__doc__)
