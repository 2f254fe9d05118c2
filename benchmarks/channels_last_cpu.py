"""Why the default profile trains in the contiguous memory format on CPU.

    .venv/bin/python benchmarks/channels_last_cpu.py [--threads 2] [--batch-size 128]

One training step of the default ResNet-10 (width 8, 28x28 grey images, batch statistics) in
each layout, its gradients compared with the same step in float64 (contiguous, no oneDNN):

- ``contiguous``: the book's layout;
- ``channels_last``: every tensor channels-last (oneDNN's kernels);
- ``channels_last, BatchNorm contiguous``: convolutions channels-last, each BatchNorm run on a
  contiguous copy of its input.

and the training throughput of each (best of three rounds of ten steps). With torch 2.14.1
on this machine, channels-last is ~25-40% faster but its gradients are wrong by a few percent
(float32 rounding is 1e-5), deterministically; the fault is oneDNN's channels-last BatchNorm in
this network (with ``torch.backends.mkldnn.enabled = False`` the gradients agree, and so they do
with every BatchNorm run contiguous, though no single BatchNorm or convolution alone shows it),
and running BatchNorm contiguous gives the speed back. Hence ``illusion.models.memory_format``
keeps CPU contiguous. Results: ``benchmarks/results/channels_last_cpu.txt``.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from illusion.models import ResNet


class ContiguousBatchNorm(nn.BatchNorm2d):
    """BatchNorm on a contiguous copy of its input, the output back in channels-last."""

    def forward(self, x):
        return super().forward(x.contiguous()).contiguous(memory_format=torch.channels_last)


def build(layout: str) -> nn.Module:
    torch.manual_seed(0)
    model = ResNet("resnet10", 10, 1, 8)
    if layout == "channels_last, BatchNorm contiguous":
        for module in model.modules():
            if type(module) is nn.BatchNorm2d:
                module.__class__ = ContiguousBatchNorm
    if layout != "contiguous":
        model = model.to(memory_format=torch.channels_last)
    return model.train()


def gradient_error(layout: str, x: torch.Tensor, y: torch.Tensor) -> tuple[float, str]:
    """Largest relative gradient error of one step against float64, and where."""
    model, reference = build(layout), build("contiguous").double()
    fmt = torch.contiguous_format if layout == "contiguous" else torch.channels_last
    nn.functional.cross_entropy(model(x.contiguous(memory_format=fmt)), y).backward()
    nn.functional.cross_entropy(reference(x.double()), y).backward()
    errors = {name: ((p.grad.double() - r.grad).abs().max() / r.grad.abs().max()).item()
              for (name, p), r in zip(model.named_parameters(), reference.parameters())}
    worst = max(errors, key=errors.get)
    return errors[worst], worst


def throughput(layout: str, x: torch.Tensor, y: torch.Tensor) -> float:
    model = build(layout)
    fmt = torch.contiguous_format if layout == "contiguous" else torch.channels_last
    x = x.contiguous(memory_format=fmt)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step():
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    for _ in range(3):
        step()
    best = 0.0
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(10):
            step()
        best = max(best, 10 * len(x) / (time.perf_counter() - start))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(args.batch_size, 1, 28, 28, generator=generator)
    y = torch.randint(0, 10, (args.batch_size,), generator=generator)
    print(f"torch {torch.__version__}, {args.threads} thread(s), batch {args.batch_size}")
    for layout in ("contiguous", "channels_last", "channels_last, BatchNorm contiguous"):
        error, where = gradient_error(layout, x, y)
        print(f"{layout:38s} gradient error {error:.1e} (largest at {where}), "
              f"{throughput(layout, x, y):,.0f} images/s")


if __name__ == "__main__":
    main()
