"""Training from scratch: the paper's recipe for the Original model and for Retrain.

SGD with Nesterov momentum, linear warm-up then cosine decay to ``min_lr`` (stepped per
iteration), the best-validation checkpoint kept (or the last epoch, ``keep="last"``), early
stopping on validation accuracy. A
``checkpoint`` path makes a long run resumable: the state is written atomically after every
epoch and picked up again when the run restarts.

Finite or fail: a loss or a weight that becomes NaN or infinite raises :class:`DivergedError`
(naming the run, the learning rate and the step) instead of yielding a model whose accuracies
would be meaningless; every training loop, unlearning run and attack checks with the functions
below, and evaluations refuse such a model.
"""

from __future__ import annotations

import copy
import math
import os
import random
from pathlib import Path

import numpy as np
import torch
from torch import nn
# tqdm.std, not tqdm.auto: the text bar everywhere (none in an executed notebook, see
# below); auto's widget bar warns "IProgress not found" in a kernel without ipywidgets.
from tqdm.std import tqdm

from .config import KEEP, MethodConfig, SettingError, TrainConfig
from .data import Split, batches
from .device import autocast, extract
from .models import INFERENCE_BATCH_SIZE
from .store import atomic_torch_save


class DivergedError(FloatingPointError):
    """A loss or a model tensor is NaN or infinite: a run diverged (usually a learning rate far
    too large) or a model handed to an evaluation is broken."""


SMALLER_LR = "try a smaller learning rate"


def check_step_loss(loss: torch.Tensor | float, lr: float, step: int, run: str = "the run") -> None:
    """Raise DivergedError when the loss of optimiser step ``step`` (1-based) is not finite:
    every later step would only spread the NaN through the weights."""
    value = loss.item() if torch.is_tensor(loss) else float(loss)
    if not math.isfinite(value):
        raise DivergedError(f"{run} diverged: the loss became {value} at step {step} "
                            f"(lr {lr:g}); {SMALLER_LR}")


def check_finite(model: nn.Module, what: str,
                 advice: str = "any accuracy measured on it would be meaningless") -> None:
    """Raise DivergedError when a floating tensor of ``model`` (parameters and buffers, such as
    BatchNorm statistics) holds a NaN or an infinity."""
    bad = [name for name, t in model.state_dict().items()
           if t.is_floating_point() and not torch.isfinite(t).all()]
    if bad:
        more = f", ... ({len(bad)} in all)" if len(bad) > 3 else ""
        raise DivergedError(f"{what} has NaN or infinite values in {', '.join(bad[:3])}{more}; "
                            f"{advice}")


def check_run_result(model: nn.Module, steps: int, cfg: MethodConfig) -> None:
    """A gradient-based run took at least one step (an unchanged model is no result) and ended
    with finite weights."""
    if steps == 0:
        raise SettingError(f"the method took no optimiser step with epochs {cfg.epochs}: a "
                           f"gradient-based method needs epochs >= 1 (only the training-free "
                           f"ones, svd and prune, take 0) and a non-empty split")
    check_finite(model, f"the run diverged: after {steps} step(s) (lr {cfg.lr:g}) the model",
                 SMALLER_LR)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return the CPU generator that draws batches and crops."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def lr_at(step: int, total_steps: int, warmup_steps: int, lr: float, min_lr: float) -> float:
    """Linear warm-up to ``lr``, then cosine decay to ``min_lr``."""
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * min(1.0, progress)))


def accuracy(model: nn.Module, split: Split, batch_size: int = INFERENCE_BATCH_SIZE) -> float:
    """Top-1 accuracy in percent of ``model`` on ``split`` (eval mode, restored after)."""
    if len(split) == 0:
        return float("nan")
    predicted = extract(model, split.x, lambda x: model(x).argmax(1), batch_size,
                        mixed_precision=True)
    return 100.0 * (predicted == split.y).sum().item() / len(split)


def fit(model: nn.Module, train: Split, val: Split, recipe: TrainConfig, seed: int,
        checkpoint: str | Path | None = None, desc: str = "train") -> tuple[nn.Module, dict]:
    """Train ``model`` with ``recipe``; return the model of the epoch ``recipe.keep`` says (the
    best validation accuracy, or the training accuracy without a validation split; or the last)
    and the history (per-epoch ``train_loss``, ``train_accuracy``, ``val_accuracy`` (NaN
    without a validation split), ``lr``)."""
    if recipe.keep not in KEEP:
        raise ValueError(f"unknown checkpoint choice keep={recipe.keep!r}; valid choices: {list(KEEP)}")
    device = next(model.parameters()).device
    generator = seed_everything(seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                                nesterov=recipe.nesterov, weight_decay=recipe.weight_decay)
    steps_per_epoch = math.ceil(len(train) / recipe.batch_size)
    total_steps, warmup_steps = recipe.epochs * steps_per_epoch, recipe.warmup_epochs * steps_per_epoch
    history = {"epoch": [], "train_loss": [], "train_accuracy": [], "val_accuracy": [], "lr": []}
    best_state, best_val, best_epoch, start_epoch = None, -1.0, -1, 0

    checkpoint = Path(checkpoint) if checkpoint else None
    if checkpoint and checkpoint.is_file():
        try:
            saved = torch.load(checkpoint, map_location=device, weights_only=True)
            model.load_state_dict(saved["model"])
            optimizer.load_state_dict(saved["optimizer"])
            generator.set_state(saved["generator"])
            best_state, best_val, best_epoch = saved["best_state"], saved["best_val"], saved["best_epoch"]
            history, start_epoch = saved["history"], saved["epoch"] + 1
        except Exception as error:  # a torn or foreign file: start over rather than fail
            print(f"ignoring unreadable training checkpoint {checkpoint}: {error}")

    # disable=None: a bar on a terminal, none in an executed notebook, whose every refresh
    # would become a line of the rendered book.
    bar = tqdm(range(start_epoch, recipe.epochs), desc=desc, leave=False,
               initial=start_epoch, total=recipe.epochs, disable=None)
    for epoch in bar:
        model.train()
        loss_sum, correct, seen = 0.0, 0, 0
        for i, (x, y) in enumerate(batches(train, recipe.batch_size, generator,
                                           padding=recipe.crop_padding, flip=recipe.flip)):
            step = epoch * steps_per_epoch + i
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step, total_steps, warmup_steps, recipe.lr, recipe.min_lr)
            with autocast(device):
                logits = model(x)
                loss = nn.functional.cross_entropy(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_value = loss.item()
            check_step_loss(loss_value, recipe.lr, step + 1, desc)
            loss_sum += loss_value * len(y)
            correct += (logits.argmax(1) == y).sum().item()
            seen += len(y)
        check_finite(model, f"{desc} diverged: after epoch {epoch + 1} (lr {recipe.lr:g}) the "
                            f"model", SMALLER_LR)
        val_accuracy = accuracy(model, val) if len(val) else float("nan")
        selection = val_accuracy if len(val) else 100.0 * correct / seen
        history["epoch"].append(epoch + 1)
        history["train_loss"].append(loss_sum / seen)
        history["train_accuracy"].append(100.0 * correct / seen)
        history["val_accuracy"].append(val_accuracy)
        history["lr"].append(optimizer.param_groups[0]["lr"])
        if recipe.keep == "last" or selection > best_val:
            best_val, best_epoch = selection, epoch
            best_state = copy.deepcopy(model.state_dict())
        bar.set_postfix(loss=f"{loss_sum / seen:.3f}", val=f"{val_accuracy:.1f}")
        if checkpoint:
            atomic_torch_save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                               "generator": generator.get_state(), "best_state": best_state,
                               "best_val": best_val, "best_epoch": best_epoch,
                               "history": history, "epoch": epoch}, checkpoint)
        if recipe.patience is not None and epoch - best_epoch >= recipe.patience:
            break
    model.load_state_dict(best_state)
    history["best_epoch"] = best_epoch + 1
    if checkpoint and checkpoint.is_file():
        os.remove(checkpoint)
    return model, history
