"""Throughput of the default profile's building blocks on this machine.

    .venv/bin/python benchmarks/throughput.py [--widths 8 12 16] [--batch-sizes 128 256]

Prints training and inference images per second of a ResNet (``--arch``, 1 input channel,
28x28, as on Fashion-MNIST) for each width and batch size (inference in the contiguous and the
channels-last layout: the library's is channels-last), then the cost of one evaluation
(feature extraction of the default profile's splits + every head). These numbers chose the
default profile's sizes (see ``illusion/config.py``); run it before changing them.
"""

from __future__ import annotations

import argparse
import time

import torch

from illusion.config import ForgetSet, HeadConfig
from illusion.heads import Features, evaluate_features
from illusion.models import ARCHITECTURES, INFERENCE_BATCH_SIZE, MEMORY_FORMAT, build_model


def images_per_second(model, batch_size: int, train: bool, repeats: int = 6) -> float:
    x = torch.randn(batch_size, 1, 28, 28)
    y = torch.randint(0, 10, (batch_size,))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train(train)

    def step():
        if train:
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
        else:
            with torch.no_grad():
                model(x)
    step(); step()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    return batch_size * repeats / (time.perf_counter() - start)


def inference_images_per_second(model, batch_size: int, layout: torch.memory_format,
                                 images: int = 4096, rounds: int = 3) -> float:
    """Features of ``images`` images in batches, the model's weights in ``layout`` (the
    library's is :data:`illusion.models.MEMORY_FORMAT`); best of ``rounds``."""
    x = torch.randn(images, 1, 28, 28)
    model.eval().to(memory_format=layout)
    best = 0.0
    with torch.no_grad():
        for _ in range(rounds + 1):  # the first round warms oneDNN's kernels up
            start = time.perf_counter()
            for i in range(0, images, batch_size):
                model.features(x[i:i + batch_size])
            best = max(best, images / (time.perf_counter() - start))
    model.to(memory_format=MEMORY_FORMAT)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="resnet10", choices=sorted(ARCHITECTURES))
    parser.add_argument("--widths", type=int, nargs="+", default=[8, 12, 16])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--inference-batch-sizes", type=int, nargs="+",
                        default=sorted({64, INFERENCE_BATCH_SIZE, 256, 1024}))
    parser.add_argument("--train-images", type=int, default=9000)
    parser.add_argument("--test-images", type=int, default=2000)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.arch}")
    print(f"{'width':>5} {'batch':>5} {'train img/s':>12}")
    for width in args.widths:
        model = build_model(args.arch, 10, 1, width)
        for batch_size in args.batch_sizes:
            print(f"{width:>5} {batch_size:>5} {images_per_second(model, batch_size, True):>12.0f}")
    # Inference (no gradient) in batches of each size and in both layouts; the library uses
    # INFERENCE_BATCH_SIZE and MEMORY_FORMAT.
    layouts = {"contiguous": torch.contiguous_format, "channels-last": torch.channels_last}
    print(f"{'width':>5} {'batch':>5} " + " ".join(f"{name + ' img/s':>19}" for name in layouts))
    for width in args.widths:
        model = build_model(args.arch, 10, 1, width)
        for batch_size in args.inference_batch_sizes:
            rates = [inference_images_per_second(model, batch_size, layout)
                     for layout in layouts.values()]
            print(f"{width:>5} {batch_size:>5} " + " ".join(f"{rate:>19.0f}" for rate in rates))
    for width in args.widths:
        model = build_model(args.arch, 10, 1, width)
        feature_dim = model.feature_dim
        g = torch.Generator().manual_seed(0)
        n, m = args.train_images, args.test_images
        feats = Features(torch.randn(n, feature_dim, generator=g), torch.arange(n) % 10,
                         torch.randn(n, 10, generator=g), torch.randn(m, feature_dim, generator=g),
                         torch.arange(m) % 10, torch.randn(m, 10, generator=g), 10)
        extraction = (n + m) / inference_images_per_second(model, INFERENCE_BATCH_SIZE,
                                                           MEMORY_FORMAT)
        start = time.perf_counter()
        table = evaluate_features(feats, ForgetSet((6,)), HeadConfig())
        print(f"width {width}: heads on cached features {time.perf_counter() - start:.2f} s "
              f"(LP {table.loc[table['head'] == 'lp', 'seconds'].iloc[0]:.2f} s); "
              f"feature extraction ~{extraction:.1f} s")


if __name__ == "__main__":
    main()
