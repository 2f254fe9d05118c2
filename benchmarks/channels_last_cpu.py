"""Why the book trains and infers channels-last on CPU too.

    .venv/bin/python benchmarks/channels_last_cpu.py [--threads 1] [--batch-size 128] [--seeds 4]

1. Gradients. One training step of the default ResNet-10 (width 8, 28x28 grey images, batch
   statistics) in each layout, its gradients compared with the same step in float64
   (contiguous, no oneDNN), over ``--seeds`` batches: the relative L2 error of all gradients
   and the largest relative error of one tensor's. With ReLU, channels-last reads ~1e-3 where
   contiguous reads ~1e-6, which an earlier turn took for a fault. It is not: channels-last
   BatchNorm rounds ~10x coarser in float32 (~1e-5), which moves a few of the ~10^5
   pre-activations of a step that close to zero across it, and a ReLU unit that flips passes
   its whole gradient or none. With the ReLUs made smooth (softplus, beta 5), which has no
   kink to flip, both layouts agree with float64 to ~1e-5.
2. The fault. oneDNN's channels-last backward of a strided 1x1 convolution with fewer than 8
   input channels corrupts memory (torch 2.14.1): one step of nn.Conv2d(4, 8, 1, stride=2)
   aborts, segfaults or hangs in a subprocess, and the package's ``Projection`` (the same
   function as a stride-1 1x1 convolution of every second pixel) does not.
3. Speed: training images per second of each layout (best of three rounds of ten steps).

Results: ``benchmarks/results/channels_last_cpu.txt``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

import torch
from torch import nn

from illusion.models import ResNet

LAYOUTS = {"contiguous": torch.contiguous_format, "channels-last": torch.channels_last}

FAULT = """
import sys, torch
from illusion.models import Projection
torch.set_num_threads(1)
for batch in (2, 3, 17, 64, 128):
    conv = (torch.nn.Conv2d(4, 8, 1, stride=2, bias=False) if sys.argv[1] == "nn.Conv2d"
            else Projection(4, 8, 2)).to(memory_format=torch.channels_last)
    x = torch.randn(batch, 4, 28, 28).contiguous(memory_format=torch.channels_last)
    conv(x.requires_grad_(True)).square().mean().backward()
"""


def build(smooth: bool) -> nn.Module:
    torch.manual_seed(0)
    model = ResNet("resnet10", 10, 1, 8).train()
    if smooth:
        for module in list(model.modules()):
            for name, child in list(module.named_children()):
                if isinstance(child, nn.ReLU):
                    setattr(module, name, nn.Softplus(beta=5))
    return model


def gradients(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    nn.functional.cross_entropy(model(x), y).backward()
    return [p.grad.double() for p in model.parameters()]


def gradient_errors(layout: torch.memory_format, smooth: bool, batch_size: int,
                    seeds: int) -> tuple[float, float]:
    """Largest, over ``seeds`` batches, relative L2 error of all gradients and relative error
    of one tensor's, against float64."""
    l2, worst = 0.0, 0.0
    for seed in range(seeds):
        generator = torch.Generator().manual_seed(seed)
        x = torch.randn(batch_size, 1, 28, 28, generator=generator)
        y = torch.randint(0, 10, (batch_size,), generator=generator)
        reference = gradients(build(smooth).double(), x.double(), y)
        model = build(smooth).to(memory_format=layout)
        grads = gradients(model, x.contiguous(memory_format=layout), y)
        flat = torch.cat([g.flatten() for g in grads])
        flat_ref = torch.cat([r.flatten() for r in reference])
        l2 = max(l2, ((flat - flat_ref).norm() / flat_ref.norm()).item())
        worst = max(worst, max(((g - r).abs().max() / r.abs().max()).item()
                               for g, r in zip(grads, reference)))
    return l2, worst


def throughput(layout: torch.memory_format, batch_size: int) -> float:
    model = build(False).to(memory_format=layout)
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(batch_size, 1, 28, 28, generator=generator).contiguous(memory_format=layout)
    y = torch.randint(0, 10, (batch_size,), generator=generator)
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
        best = max(best, 10 * batch_size / (time.perf_counter() - start))
    return best


def one_step_survives(kernel: str) -> str:
    try:
        run = subprocess.run([sys.executable, "-c", FAULT, kernel], capture_output=True,
                             timeout=120)
    except subprocess.TimeoutExpired:
        return "hangs"
    return "runs" if run.returncode == 0 else f"dies (exit {run.returncode})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seeds", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), batch {args.batch_size}, "
          f"{args.seeds} batches")
    for smooth in (False, True):
        for name, layout in LAYOUTS.items():
            l2, worst = gradient_errors(layout, smooth, args.batch_size, args.seeds)
            print(f"{'softplus' if smooth else 'ReLU':8s} {name:13s} gradient error vs float64: "
                  f"L2 {l2:.1e}, largest tensor {worst:.1e}")
    for kernel in ("nn.Conv2d", "Projection"):
        print(f"strided 1x1, 4 input channels, channels-last, {kernel}: "
              f"{one_step_survives(kernel)}")
    for name, layout in LAYOUTS.items():
        print(f"training {name:13s} {throughput(layout, args.batch_size):,.0f} images/s")


if __name__ == "__main__":
    main()
