"""Surrogate-gradient training of the float models on the digits, reproducibly on 2 CPU cores.

Same seed, same code, same torch build → the same weights: ``torch.manual_seed``, deterministic
algorithms, ``torch.set_num_threads(2)``, a fixed data order from a seeded generator.
"""

import math
import time

import torch
from torch import nn

from spikeforge.progress import progress_bar

from .data import load_digits
from .models import build_model, neuron_layers

__all__ = ["train", "evaluate", "TrainResult", "DEFAULTS"]

DEFAULTS = {"epochs": 30, "batch_size": 32, "lr": 5e-3, "weight_decay": 1e-4, "seed": 0,
            "shift": 1}


def random_shift(images, generator, shift):
    """Translate every image by a random ``(dy, dx)`` in ``[-shift, shift]``, zero fill."""
    if shift == 0:
        return images
    n, _, h, w = images.shape
    padded = torch.nn.functional.pad(images, (shift,) * 4)
    dy = torch.randint(0, 2 * shift + 1, (n,), generator=generator).tolist()
    dx = torch.randint(0, 2 * shift + 1, (n,), generator=generator).tolist()
    return torch.stack([padded[i, :, y:y + h, x:x + w] for i, (y, x) in enumerate(zip(dy, dx))])


class TrainResult:
    """What :func:`train` returns: the model (eval mode), accuracies, seconds, loss per epoch."""

    def __init__(self, model, train_accuracy, test_accuracy, seconds, losses):
        self.model = model
        self.train_accuracy = train_accuracy
        self.test_accuracy = test_accuracy
        self.seconds = seconds
        self.losses = losses


@torch.no_grad()
def evaluate(model, split, *, batch_size=256, rates=None):
    """Top-1 accuracy (0..1) of ``model`` in eval mode on a :class:`~.data.Digits` split.

    ``rates``: a dict to fill with each neuron layer's firing rate (spikes per neuron-step).
    """
    model.eval()
    layers = neuron_layers(model) if rates is not None else []
    sums = {name: 0.0 for name, _ in layers}
    for _, m in layers:
        m.record = True
    correct = 0
    try:
        for i in range(0, len(split), batch_size):
            logits = model(split.images[i:i + batch_size].float())
            n = len(logits)
            correct += int((logits.argmax(1) == split.labels[i:i + batch_size]).sum())
            for name, m in layers:
                sums[name] += m.last_rate * n
    finally:
        for _, m in layers:
            m.record = False
    if rates is not None:
        rates.update({name: total / max(len(split), 1) for name, total in sums.items()})
    return correct / max(len(split), 1)


def train(config, *, epochs=DEFAULTS["epochs"], batch_size=DEFAULTS["batch_size"],
          lr=DEFAULTS["lr"], weight_decay=DEFAULTS["weight_decay"], seed=DEFAULTS["seed"],
          shift=DEFAULTS["shift"],
          train_samples=None, threads=2, progress=False, on_epoch=None):
    """Train a fresh model of ``config`` with AdamW and a cosine learning rate.

    Parameters
    ----------
    config : NetConfig
    epochs, batch_size : int
    lr, weight_decay : float
    seed : int
        Seeds the initialisation, the data order and the augmentation.
    shift : int
        Augmentation: random translations of up to ``shift`` pixels (0: none).
    train_samples : int or None
        Train on the first ``n`` training samples only (smoke tests).
    threads : int
        ``torch.set_num_threads``.
    progress : bool
        Show a progress bar (per batch) on stderr when it is a terminal.
    on_epoch : callable or None
        ``on_epoch(epoch, mean_loss, model)`` after every epoch (the model is in train mode).

    Returns
    -------
    TrainResult
    """
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, not {epochs!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, not {batch_size!r}")
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(seed)
    train_split, test_split = load_digits()
    train_split = train_split.head(train_samples)
    # channels-last activations: the CPU convolution kernels run them ~1.3x faster here
    model = build_model(config).to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps_per_epoch = math.ceil(len(train_split) / batch_size)
    total = epochs * steps_per_epoch
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total) / total)))
    loss_fn = nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(seed)
    bar = progress_bar(total=total, show=progress, desc="train", unit="batch", leave=False)
    losses = []
    start = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(train_split), generator=generator)
        running = 0.0
        for i in range(0, len(order), batch_size):
            idx = order[i:i + batch_size]
            images = random_shift(train_split.images[idx].float(), generator, shift)
            logits = model(images.contiguous(memory_format=torch.channels_last))
            loss = loss_fn(logits, train_split.labels[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            running += loss.detach().item() * len(idx)
            bar.update(1)
            bar.set_postfix(epoch=epoch + 1, loss=f"{loss.detach().item():.3f}")
        losses.append(running / len(train_split))
        if on_epoch is not None:
            on_epoch(epoch, losses[-1], model)
    bar.close()
    seconds = time.perf_counter() - start
    model.eval()
    return TrainResult(model, evaluate(model, train_split), evaluate(model, test_split), seconds,
                       losses)
