"""PyTorch baseline for Kiln's benchmarks: the same MLP, batch and optimiser.

    python torch_mlp.py ROWS EPOCHS BATCH [DEVICE [WIDTHS]]
    # DEVICE: cpu (default) or cuda; WIDTHS: input,hidden…,classes (default 64,256,256,10)
    # prints: median samples/s of epochs after the first, torch version, threads,
    #         peak GPU memory in MiB (0 on the CPU)
"""
import statistics
import sys
import time

import torch


def main():
    rows, epochs, batch = (int(a) for a in sys.argv[1:4])
    device = torch.device(sys.argv[4] if len(sys.argv) > 4 else "cpu")
    widths = [int(w) for w in (sys.argv[5] if len(sys.argv) > 5 else "64,256,256,10").split(",")]
    torch.manual_seed(1)
    x = torch.rand(rows, widths[0], device=device)
    y = torch.randint(0, widths[-1], (rows,), device=device)
    layers = []
    for i in range(len(widths) - 1):
        layers.append(torch.nn.Linear(widths[i], widths[i + 1]))
        if i < len(widths) - 2:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    rates = []
    for epoch in range(epochs):
        started = time.perf_counter()
        total = torch.zeros((), device=device)
        for start in range(0, rows, batch):
            optimizer.zero_grad()
            loss = loss_fn(model(x[start:start + batch]), y[start:start + batch])
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
