#!/usr/bin/env python3
"""Predict with a Kiln model bundle using only numpy and safetensors.

Reproduces `kiln predict --model BUNDLE --data new.csv` for MLP models: reads the model card
(input schema, standardisation, one-hot categories, classes) and the safetensors weights
(PyTorch layout: layers.N.weight is [out, in]) and prints the same CSV.

    python predict.py BUNDLE_DIR_OR_CARD new.csv
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
    columns = []
    for column in card["preprocessor"]["columns"]:
        name = column["name"]
        cells = [row[name].strip() for row in rows]
        if column["type"] == "standardize":
            values = np.array([float(c) for c in cells], dtype=np.float64)
            columns.append(((values - column["mean"]) / column["std"])[:, None])
        else:
            categories = column["categories"]
            onehot = np.zeros((len(rows), len(categories)))
            for i, cell in enumerate(cells):
                onehot[i, categories.index(cell)] = 1.0
            columns.append(onehot)
    return np.hstack(columns).astype(np.float32)


def activation(name, x):
    if name == "relu":
        return np.maximum(x, 0.0)
    if name == "tanh":
        return np.tanh(x)
    if name == "gelu":  # exact (erf) GELU, as burn computes it
        erf = np.vectorize(math.erf)
        return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))
    raise ValueError(f"unknown activation {name}")


def forward(card, weights, inputs):
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
    outputs = forward(card, weights, encode(card, rows))
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
