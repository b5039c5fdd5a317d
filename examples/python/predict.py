#!/usr/bin/env python3
"""Predict with a Kiln model bundle using only numpy and safetensors.

Reproduces `kiln predict` from the model card and the safetensors weights (PyTorch layout:
linear weights are [out, in], conv weights [out, in, kh, kw]) and prints the same CSV.

    python predict.py BUNDLE_DIR_OR_CARD new.csv

MLP bundles: new.csv has the columns of the training CSV (input schema, standardisation,
one-hot categories and classes come from the card).

CNN bundles: new.csv has one column per pixel, named as the card's "input_names" (c0_y3_x5 is
channel 0, row 3, column 5), holding 0..255 intensities of images already at the model's size
(card["preprocessor"]["image"]["shape"]); decode and resize your images with any library. The
pixels are normalised with the card's per-channel mean and std, as Kiln does.
"""
import csv
import json
import math
import sys
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file


def load_bundle(path):
    path = Path(path)
    card_path = path / "model.card.json" if path.is_dir() else path
    if card_path.suffix == ".bpk" or card_path.name.endswith(".safetensors"):
        card_path = card_path.with_name(card_path.name.split(".")[0] + ".card.json")
    card = json.loads(card_path.read_text())
    weights = load_file(str(card_path.with_name(card["files"]["safetensors"]["file"])))
    return card, weights


def encode(card, rows):
    """Rows (dicts of column -> cell) to the model's input matrix, as Kiln encodes them."""
    if card["preprocessor"].get("image"):
        return encode_pixels(card, rows)
    columns = []
    # Columns whose non-numbers (and blanks) the model treats as missing: the training mean.
    as_missing = card["preprocessor"].get("choices", {}).get("as_missing", [])
    for column in card["preprocessor"]["columns"]:
        name = column["name"]
        cells = [row[name].strip() for row in rows]
        if column["type"] == "standardize":
            if name in as_missing:
                values = [number_or_mean(c, column["mean"]) for c in cells]
            else:
                values = [float(c) for c in cells]
            values = np.array(values, dtype=np.float64)
            columns.append(((values - column["mean"]) / column["std"])[:, None])
        else:
            categories = column["categories"]
            onehot = np.zeros((len(rows), len(categories)))
            for i, cell in enumerate(cells):
                onehot[i, categories.index(cell)] = 1.0
            columns.append(onehot)
    return np.hstack(columns).astype(np.float32)


def number_or_mean(cell, mean):
    """A finite number within f32's range, else the column's training mean (as Kiln does)."""
    try:
        value = float(cell)
    except ValueError:
        return mean
    return value if math.isfinite(value) and abs(value) <= 3.4028234663852886e38 else mean


def encode_pixels(card, rows):
    """Rows of 0..255 pixel values (columns named as card["input_names"], channel-major) to
    model inputs: (pixel / 255 - mean) / std per channel."""
    image = card["preprocessor"]["image"]
    pixels = np.array(
        [[float(row[name]) for name in card["input_names"]] for row in rows], dtype=np.float64
    ).reshape(len(rows), image["shape"]["channels"], -1)
    mean = np.array(image["mean"])[None, :, None]
    std = np.array(image["std"])[None, :, None]
    return ((pixels / 255.0 - mean) / std).reshape(len(rows), -1).astype(np.float32)


def activation(name, x):
    if name == "relu":
        return np.maximum(x, 0.0)
    if name == "tanh":
        return np.tanh(x)
    if name == "gelu":  # exact (erf) GELU, as burn computes it
        erf = np.vectorize(math.erf)
        return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))
    raise ValueError(f"unknown activation {name}")


def conv2d(x, weight, bias):
    """Stride-1 cross-correlation with zero padding kernel_size // 2 (same size out)."""
    kernel = weight.shape[2]
    pad = kernel // 2
    _, _, height, width = x.shape
    padded = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    out = np.zeros((x.shape[0], weight.shape[0], height, width))
    for dy in range(kernel):
        for dx in range(kernel):
            window = padded[:, :, dy : dy + height, dx : dx + width]  # [n, in, h, w]
            out += np.einsum("nchw,oc->nohw", window, weight[:, :, dy, dx])
    return out + bias[None, :, None, None]


def batch_norm(x, weights, prefix, eps=1e-5):
    """Inference batch-norm over channels with the stored running statistics."""
    shape = (1, -1, 1, 1)
    mean = weights[f"{prefix}.running_mean"].astype(np.float64).reshape(shape)
    var = weights[f"{prefix}.running_var"].astype(np.float64).reshape(shape)
    gamma = weights[f"{prefix}.weight"].astype(np.float64).reshape(shape)
    beta = weights[f"{prefix}.bias"].astype(np.float64).reshape(shape)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def max_pool_2x2(x):
    n, c, height, width = x.shape
    h, w = height // 2, width // 2
    return x[:, :, : 2 * h, : 2 * w].reshape(n, c, h, 2, w, 2).max(axis=(3, 5))


def forward_cnn(card, weights, inputs):
    """Conv blocks (conv, batch-norm, relu, 2x2 max-pool), flatten, then the dense head."""
    model = card["model"]
    shape = card["preprocessor"]["image"]["shape"]
    x = inputs.astype(np.float64).reshape(
        len(inputs), shape["channels"], shape["height"], shape["width"]
    )
    for index, block in enumerate(model["blocks"]):
        prefix = f"blocks.{index}"
        x = conv2d(
            x,
            weights[f"{prefix}.conv.weight"].astype(np.float64),
            weights[f"{prefix}.conv.bias"].astype(np.float64),
        )
        if model.get("batch_norm"):
            x = batch_norm(x, weights, f"{prefix}.norm")
        x = np.maximum(x, 0.0)
        if block.get("pool", True):
            x = max_pool_2x2(x)
    x = x.reshape(len(x), -1)  # channel-major, as burn flattens
    layers = len(model.get("dense", [])) + 1
    for index in range(layers):
        weight = weights[f"head.{index}.weight"].astype(np.float64)  # [out, in]
        bias = weights[f"head.{index}.bias"].astype(np.float64)
        x = x @ weight.T + bias
        if index < layers - 1:
            x = np.maximum(x, 0.0)
    return x


def forward(card, weights, inputs):
    if card["model"].get("kind") == "cnn":
        return forward_cnn(card, weights, inputs)
    x = inputs.astype(np.float64)
    layers = card["layers"]
    for index, layer in enumerate(layers):
        weight = weights[f"{layer['name']}.weight"].astype(np.float64)  # [out, in]
        bias = weights[f"{layer['name']}.bias"].astype(np.float64)
        x = x @ weight.T + bias
        if index < len(layers) - 1:
            x = activation(card["model"]["activation"], x)
    return x


def predict(card, weights, rows):
    return predict_encoded(card, weights, encode(card, rows))


def predict_encoded(card, weights, inputs):
    """The card's outputs (probabilities or values) for encoded inputs, e.g. the golden ones."""
    outputs = forward(card, weights, np.asarray(inputs, dtype=np.float32))
    if card["output_kind"] == "probabilities":
        exp = np.exp(outputs - outputs.max(axis=1, keepdims=True))
        return exp / exp.sum(axis=1, keepdims=True)
    pre = card["preprocessor"]
    return outputs[:, :1] * pre["target_std"] + pre["target_mean"]


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    card, weights = load_bundle(sys.argv[1])
    with open(sys.argv[2], newline="", encoding="utf-8") as handle:
        rows = [{k.strip(): v for k, v in row.items()} for row in csv.DictReader(handle)]
    results = predict(card, weights, rows)
    out = csv.writer(sys.stdout, lineterminator="\n")
    if card["output_kind"] == "probabilities":
        classes = card["schema"]["target"]["classes"]
        out.writerow(["prediction"] + [f"p_{c}" for c in classes])
        for p in results:
            out.writerow([classes[int(p.argmax())]] + [f"{v:.6f}" for v in p])
    else:
        out.writerow(["prediction"])
        for value in results[:, 0]:
            out.writerow([repr(float(value))])


if __name__ == "__main__":
    main()
