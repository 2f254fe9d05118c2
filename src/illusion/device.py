"""What every evaluation and loop does with a model on its device: eval mode for a while,
batched inference without gradient, bf16 autocast on CUDA, a synchronisation before a
clock is read, and one CPU thread for small loops.

    with evaluating(model):                # eval mode, every module's own mode restored after
        ...
    feats = extract(model, split.x)        # model.features over batches, eval mode, no gradient
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

import torch
from torch import nn

from .models import INFERENCE_BATCH_SIZE


def autocast(device: torch.device, enabled: bool = True):
    """bf16 autocast on CUDA only: on CPU it is slower and changes the numbers."""
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=enabled and device.type == "cuda")


@contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` in eval mode inside the block. Afterwards every module is back in its own
    mode, not the model's: a caller may hold BatchNorm in eval mode while the rest trains."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, training in modes:
            m.training = training


@torch.no_grad()
def extract(model: nn.Module, x: torch.Tensor, compute: Callable | None = None,
            batch_size: int = INFERENCE_BATCH_SIZE, mixed_precision: bool = False):
    """``compute(batch)`` (default ``model.features``) over the batches of ``x``, ``model`` in
    eval mode (:func:`evaluating`), without gradient and, when ``mixed_precision``, under
    :func:`autocast`. ``compute`` returns a tensor or a tuple/list of tensors per batch; the
    result is the same, concatenated along the batch. ``x`` must not be empty."""
    compute = compute or model.features
    with evaluating(model), autocast(x.device, mixed_precision):
        outputs = [compute(x[start:start + batch_size]) for start in range(0, len(x), batch_size)]
    if torch.is_tensor(outputs[0]):
        return torch.cat(outputs)
    return tuple(torch.cat(parts) for parts in zip(*outputs))


@contextmanager
def one_thread() -> Iterator[None]:
    """torch on one CPU thread inside the block, its own thread count restored after: small
    float64 loops (the classifier dynamics of chapter 3) run several times faster on one
    thread than spread over busy shared cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def synchronize(device: torch.device) -> None:
    """Wait for the work queued on ``device`` (CUDA runs asynchronously), so that a clock read
    next measures it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
