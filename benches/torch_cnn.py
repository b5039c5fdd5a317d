"""PyTorch baseline for Kiln's image benchmarks: Kiln's default CNN, batch and optimiser.

    python torch_cnn.py ROWS EPOCHS BATCH [DEVICE [C,H,W [C1,C2]]]
    # DEVICE: cpu (default) or cuda; C,H,W: the image shape (default 1,8,8, the digits sample);
    # C1,C2: the two conv blocks' channels (default 16,32, Kiln's default CNN)
    # prints: median samples/s of epochs after the first, torch version, threads,
    #         peak GPU memory in MiB (0 on the CPU)

Kiln's default CNN: two blocks of conv 3×3 (same padding) + batch-norm + ReLU + 2×2 max-pool
(16 then 32 channels), dropout 0.25, dense (32·H/4·W/4)→64, ReLU, dropout, dense 64→10.
Random data of the images' shape: throughput does not depend on the pixel values.
"""
import statistics
import sys
import time

import torch
from torch import nn


def block(cin, cout):
    return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2)]


def main():
    rows, epochs, batch = (int(a) for a in sys.argv[1:4])
    device = torch.device(sys.argv[4] if len(sys.argv) > 4 else "cpu")
    c, h, w = (int(v) for v in (sys.argv[5] if len(sys.argv) > 5 else "1,8,8").split(","))
    c1, c2 = (int(v) for v in (sys.argv[6] if len(sys.argv) > 6 else "16,32").split(","))
    torch.manual_seed(1)
    x = torch.rand(rows, c, h, w, device=device)
    y = torch.randint(0, 10, (rows,), device=device)
    model = nn.Sequential(
        *block(c, c1), *block(c1, c2), nn.Flatten(),
        nn.Dropout(0.25), nn.Linear(c2 * (h // 4) * (w // 4), 64), nn.ReLU(),
        nn.Dropout(0.25), nn.Linear(64, 10),
    ).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    loss_fn = nn.CrossEntropyLoss()
    rates = []
    for epoch in range(epochs):
        model.train()
        started = time.perf_counter()
        order = torch.randperm(rows, device=device)
        total = torch.zeros((), device=device)
        for start in range(0, rows, batch):
            index = order[start:start + batch]
            optimizer.zero_grad()
            loss = loss_fn(model(x[index]), y[index])
            loss.backward()
            optimizer.step()
            total += loss.detach()
        total.item()  # waits for the device
        if epoch > 0:
            rates.append(rows / (time.perf_counter() - started))
    peak = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else 0
    print(statistics.median(rates), torch.__version__, torch.get_num_threads(), round(peak))


if __name__ == "__main__":
    main()
