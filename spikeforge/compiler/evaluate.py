"""Compile a model, run its program on the accelerator's golden model over a test split and
compare every layer output and the scores with the golden integer model
(``spikeforge run --backend accelerator``)."""

import torch

from spikeforge.golden.accelerator import Accelerator, compare, golden_layer_outputs

from .core import compile_model

__all__ = ["run_accelerator"]


def run_accelerator(model, split, *, config=None, batch_size=64, progress=None):
    """Figures of ``model`` compiled for ``config`` on ``split`` (a
    :class:`~spikeforge.golden.data.Digits`): accuracy, ``mismatches`` (layer outputs and
    scores, per sample, against the golden integer model), ``cycles_per_inference`` and
    ``bound_cycles`` (the cost model), ``memories`` and a per-layer table."""
    compiled = compile_model(model, config)
    accelerator = Accelerator(compiled.config, compiled.images)
    names = [layer["name"] for layer in compiled.layers]
    per_layer = dict.fromkeys(names, 0)
    bound = [0] * len(names)
    cycles = [0] * len(names)
    score_mismatches, correct = 0, 0
    for i in range(0, len(split), batch_size):
        images = split.images[i:i + batch_size]
        with torch.no_grad():
            run = accelerator.run(images)
        layers, scores = compare(run, golden_layer_outputs(model, images), names)
        for name, count in layers.items():
            per_layer[name] += count
        score_mismatches += scores
        bound = [a + b for a, b in zip(bound, run.bound)]
        cycles = [a + b for a, b in zip(cycles, run.cycles)]
        correct += int((run.scores.argmax(dim=1) == split.labels[i:i + batch_size]).sum())
        if progress is not None:
            progress(len(images))
    n = max(1, len(split))
    table = [{"name": name, "op": layer["op"], "mismatches": per_layer[name],
              "bound_cycles": round(b / n, 1), "cycles": round(c / n, 1)}
             for name, layer, b, c in zip(names, compiled.layers, bound, cycles)]
    return {"config": compiled.config.name, "samples": len(split),
            "accuracy": correct / n if len(split) else 0.0,
            "mismatches": sum(per_layer.values()) + score_mismatches,
            "score_mismatches": score_mismatches,
            "cycles_per_inference": round(sum(cycles) / n, 1),
            "bound_cycles": round(sum(bound) / n, 1),
            "memories": compiled.summary()["memories"], "layers": table}
