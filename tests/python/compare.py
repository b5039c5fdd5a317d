"""Checks that the Python example and onnxruntime reproduce Kiln's predictions.

    python compare.py BUNDLE_DIR DATA.csv KILN_PREDICTIONS.csv

DATA.csv is what the example's predict.py takes: the training CSV's columns for an MLP, or one
column per pixel (the card's input_names, 0..255) for a CNN. KILN_PREDICTIONS.csv is the output
of `kiln predict` on the same rows (a CSV file, or the image files the pixels came from).

Also checks the card's golden outputs with numpy and onnxruntime. Exits non-zero (with the
largest differences) unless everything agrees with Kiln within 1e-4.
"""
import csv
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "python"))
import predict  # noqa: E402  (the example under test)

TOLERANCE = 1e-4


def kiln_values(path, card):
    """Kiln's outputs from its CSV: the p_<class> columns, or the prediction itself."""
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    header, rows = rows[0], rows[1:]
    if card["output_kind"] == "probabilities":
        columns = [i for i, name in enumerate(header) if name.startswith("p_")]
        assert len(columns) == len(card["schema"]["target"]["classes"]), header
    else:
        columns = [header.index("prediction")]
    return np.array([[float(row[i]) for i in columns] for row in rows])


def onnx_input(card, inputs):
    """Encoded rows as the ONNX graph takes them: [batch, inputs], or images
    [batch, channels, height, width] for a CNN."""
    inputs = np.asarray(inputs, dtype=np.float32)
    image = card["preprocessor"].get("image")
    if image and card["model"].get("kind") == "cnn":
        shape = image["shape"]
        return inputs.reshape(len(inputs), shape["channels"], shape["height"], shape["width"])
    return inputs


def max_error(got, expected):
    scale = np.maximum(np.abs(expected), 1.0)  # relative for large regression values
    assert got.shape == expected.shape, (got.shape, expected.shape)
    if not (np.all(np.isfinite(got)) and np.all(np.isfinite(expected))):
        return float("inf")  # NaN or infinity never agrees (and max() would hide NaN)
    return float(np.max(np.abs(got - expected) / scale))


def main():
    bundle, data, kiln_csv = sys.argv[1:4]
    card, weights = predict.load_bundle(bundle)
    with open(data, newline="", encoding="utf-8") as handle:
        rows = [{k.strip(): v for k, v in row.items()} for row in csv.DictReader(handle)]
    expected = kiln_values(kiln_csv, card)

    numpy_error = max_error(predict.predict(card, weights, rows), expected)

    import onnxruntime as ort

    session = ort.InferenceSession(str(Path(bundle) / card["files"]["onnx"]["file"]))
    name = session.get_inputs()[0].name
    onnx_out = session.run(None, {name: onnx_input(card, predict.encode(card, rows))})[0]
    onnx_error = max_error(onnx_out, expected)

    golden_in = np.array(card["golden"]["inputs"], dtype=np.float32)
    golden_out = np.array(card["golden"]["outputs"])
    golden_onnx = max_error(session.run(None, {name: onnx_input(card, golden_in)})[0], golden_out)
    golden_numpy = max_error(predict.predict_encoded(card, weights, golden_in), golden_out)

    print(
        f"{card['model'].get('kind', 'mlp')} rows {len(rows)}  numpy {numpy_error:.2e}  "
        f"onnxruntime {onnx_error:.2e}  golden: numpy {golden_numpy:.2e} "
        f"onnxruntime {golden_onnx:.2e}"
    )
    if max(numpy_error, onnx_error, golden_onnx, golden_numpy) > TOLERANCE:
        sys.exit("outputs differ from Kiln's by more than 1e-4")


if __name__ == "__main__":
    main()
