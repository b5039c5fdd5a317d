"""PyTorch CPU baseline for Kiln's benchmark: the same MLP, batch and optimiser.

    python torch_mlp.py ROWS EPOCHS BATCH
    # prints: median samples/s of epochs after the first, torch version, threads
"""
import statistics
import sys
import time

import torch

FEATURES, HIDDEN, CLASSES = 64, (256, 256), 10


def main():
    rows, epochs, batch = (int(a) for a in sys.argv[1:4])
    torch.manual_seed(1)
    x = torch.rand(rows, FEATURES)
    y = torch.randint(0, CLASSES, (rows,))
    model = torch.nn.Sequential(
        torch.nn.Linear(FEATURES, HIDDEN[0]), torch.nn.ReLU(),
        torch.nn.Linear(HIDDEN[0], HIDDEN[1]), torch.nn.ReLU(),
        torch.nn.Linear(HIDDEN[1], CLASSES),
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    rates = []
    for epoch in range(epochs):
        started = time.perf_counter()
        total = torch.zeros(())
        for start in range(0, rows, batch):
            optimizer.zero_grad()
            loss = loss_fn(model(x[start:start + batch]), y[start:start + batch])
            loss.backward()
            optimizer.step()
            total += loss.detach()
        total.item()
        if epoch > 0:
            rates.append(rows / (time.perf_counter() - started))
    print(statistics.median(rates), torch.__version__, torch.get_num_threads())


if __name__ == "__main__":
    main()
