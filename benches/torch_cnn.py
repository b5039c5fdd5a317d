"""PyTorch CPU baseline for Kiln's image benchmark: Kiln's default CNN, batch and optimiser.

    python torch_cnn.py ROWS EPOCHS BATCH
    # prints: median samples/s of epochs after the first, torch version, threads

Kiln's default CNN on 1×8×8 images: two blocks of conv 3×3 (same padding) + batch-norm + ReLU +
2×2 max-pool (16 then 32 channels), dropout 0.25, dense 128→64, ReLU, dropout, dense 64→10.
Random data of the digits' shape: throughput does not depend on the pixel values.
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
    torch.manual_seed(1)
    x = torch.rand(rows, 1, 8, 8)
    y = torch.randint(0, 10, (rows,))
    model = nn.Sequential(
        *block(1, 16), *block(16, 32), nn.Flatten(),
        nn.Dropout(0.25), nn.Linear(128, 64), nn.ReLU(),
        nn.Dropout(0.25), nn.Linear(64, 10),
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    loss_fn = nn.CrossEntropyLoss()
    rates = []
    for epoch in range(epochs):
        model.train()
        started = time.perf_counter()
        order = torch.randperm(rows)
        total = torch.zeros(())
        for start in range(0, rows, batch):
            index = order[start:start + batch]
            optimizer.zero_grad()
            loss = loss_fn(model(x[index]), y[index])
            loss.backward()
            optimizer.step()
            total += loss.detach()
        total.item()
        if epoch > 0:
            rates.append(rows / (time.perf_counter() - started))
    print(statistics.median(rates), torch.__version__, torch.get_num_threads())


if __name__ == "__main__":
    main()
