"""PyTorch's side of Kiln's per-op CNN profile (`bench --only cnn-ops`): the same ops, shapes and
timing rule, on the CPU.

    python torch_cnn_ops.py BATCH C,H,W C1,C2 [REPEATS]
    # prints one JSON object: {"torch": version, "threads": n, "ops": [[op, shape, fwd_ms, both_ms], ...]}

Each op runs on random tensors of the shape it sees inside the network; the figure is the median
of REPEATS calls after a warm-up, in milliseconds. Forward + backward includes the forward; the
input's gradient is computed except for the first conv (as in the network, and in Kiln's table).
The step row is a whole training step of Kiln's default CNN with Adam, dropout on.
"""
import json
import statistics
import sys
import time

import torch
from torch import nn


def time_ms(repeats, work):
    work()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append((time.perf_counter() - started) * 1e3)
    return statistics.median(times)


def profile(shape, input_grad, repeats, op):
    x = torch.randn(*shape, requires_grad=input_grad)

    def forward():
        with torch.no_grad() if not input_grad else torch.enable_grad():
            op(x).sum().item()

    def both():
        out = op(x).sum()
        out.backward()
        if input_grad:
            x.grad.sum().item()
            x.grad = None

    return time_ms(repeats, forward), time_ms(repeats, both)


def main():
    batch = int(sys.argv[1])
    c, h, w = (int(v) for v in sys.argv[2].split(","))
    c1, c2 = (int(v) for v in sys.argv[3].split(","))
    repeats = int(sys.argv[4]) if len(sys.argv) > 4 else 15
    torch.manual_seed(1)
    ops = []
    conv1 = nn.Conv2d(c, c1, 3, padding=1)
    # The first conv has no input gradient: time its weights' gradient instead.
    x0 = torch.randn(batch, c, h, w)
    fwd = time_ms(repeats, lambda: conv1(x0).sum().item())

    def conv1_both():
        conv1(x0).sum().backward()
        conv1.weight.grad.sum().item()
        conv1.zero_grad(set_to_none=True)

    ops.append(["conv 3×3", f"{c}→{c1}, {h}×{w}", fwd, time_ms(repeats, conv1_both)])
    first = (batch, c1, h, w)
    norm1 = nn.BatchNorm2d(c1).train()
    ops.append(["batch-norm (training)", f"{c1}×{h}×{w}", *profile(first, True, repeats, norm1)])
    ops.append(["ReLU", f"{c1}×{h}×{w}", *profile(first, True, repeats, torch.relu)])
    pool = nn.MaxPool2d(2)
    ops.append(["max-pool 2×2", f"{c1}×{h}×{w}", *profile(first, True, repeats, pool)])
    h2, w2 = h // 2, w // 2
    conv2 = nn.Conv2d(c1, c2, 3, padding=1)
    ops.append(["conv 3×3", f"{c1}→{c2}, {h2}×{w2}", *profile((batch, c1, h2, w2), True, repeats, conv2)])
    second = (batch, c2, h2, w2)
    norm2 = nn.BatchNorm2d(c2).train()
    ops.append(["batch-norm (training)", f"{c2}×{h2}×{w2}", *profile(second, True, repeats, norm2)])
    ops.append(["ReLU", f"{c2}×{h2}×{w2}", *profile(second, True, repeats, torch.relu)])
    ops.append(["max-pool 2×2", f"{c2}×{h2}×{w2}", *profile(second, True, repeats, pool)])
    flat = c2 * (h // 4) * (w // 4)
    head = nn.Sequential(nn.Linear(flat, 64), nn.ReLU(), nn.Linear(64, 10))
    ops.append(["dense head", f"{flat}→64→10", *profile((batch, flat), True, repeats, head)])
    targets = torch.arange(batch) % 10
    loss = nn.CrossEntropyLoss()
    ops.append(["cross-entropy", f"{batch}×10",
                *profile((batch, 10), True, repeats, lambda x: loss(x, targets).reshape(1))])

    def block(cin, cout):
        return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2)]

    model = nn.Sequential(*block(c, c1), *block(c1, c2), nn.Flatten(), nn.Dropout(0.25),
                          nn.Linear(flat, 64), nn.ReLU(), nn.Dropout(0.25), nn.Linear(64, 10)).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    inputs = torch.randn(batch, c, h, w)

    def forward():
        with torch.no_grad():
            model(inputs).sum().item()

    def step():
        optimizer.zero_grad(set_to_none=True)
        value = loss(model(inputs), targets)
        value.backward()
        optimizer.step()
        value.item()

    ops.append(["training step (model + Adam)", "whole network", time_ms(repeats, forward), time_ms(repeats, step)])
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "ops": ops}))


if __name__ == "__main__":
    main()
