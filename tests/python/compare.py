"""Checks that the Python example and onnxruntime reproduce Kiln's predictions.

    python compare.py BUNDLE_DIR DATA.csv KILN_PREDICTIONS.csv

Exits non-zero (with the largest differences) unless both agree with Kiln within 1e-4.
"""
import csv
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "python"))
import predict  # noqa: E402  (the example under test)

TOLERANCE = 1e-4


def kiln_values(path, card):
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))[1:]
    if card["output_kind"] == "probabilities":
        return np.array([[float(v) for v in row[1:]] for row in rows])
    return np.array([[float(row[0])] for row in rows])


def main():
    bundle, data, kiln_csv = sys.argv[1:4]
    card, weights = predict.load_bundle(bundle)
    with open(data, newline="", encoding="utf-8") as handle:
        rows = [{k.strip(): v for k, v in row.items()} for row in csv.DictReader(handle)]
    expected = kiln_values(kiln_csv, card)
    scale = np.maximum(np.abs(expected), 1.0)  # relative for large regression values

    numpy_out = predict.predict(card, weights, rows)
    numpy_error = float(np.max(np.abs(numpy_out - expected) / scale))

    import onnxruntime as ort

    session = ort.InferenceSession(str(Path(bundle) / card["files"]["onnx"]["file"]))
    name = session.get_inputs()[0].name
    onnx_out = session.run(None, {name: predict.encode(card, rows)})[0]
    onnx_error = float(np.max(np.abs(onnx_out - expected) / scale))

    golden_in = np.array(card["golden"]["inputs"], dtype=np.float32)
    golden_out = np.array(card["golden"]["outputs"])
    golden_error = float(np.max(np.abs(session.run(None, {name: golden_in})[0] - golden_out) / np.maximum(np.abs(golden_out), 1.0)))

    print(f"rows {len(rows)}  numpy {numpy_error:.2e}  onnxruntime {onnx_error:.2e}  onnx golden {golden_error:.2e}")
    if max(numpy_error, onnx_error, golden_error) > TOLERANCE:
        sys.exit("outputs differ from Kiln's by more than 1e-4")


if __name__ == "__main__":
    main()
