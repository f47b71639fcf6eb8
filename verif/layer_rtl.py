"""Run the conv and linear layers of a model program on the engine RTL (Amaranth simulator).

For one sample, :class:`LayerTrace` records the integer input each conv layer of the golden
integer model receives (:mod:`spikeforge.golden.integer_model`); :func:`run_layer` builds a
:class:`~spikeforge.hdl.engine.SpikeEngine` for the layer (``linear`` for a 1×1 stride-1 conv,
run token by token; ``depthwise`` when ``groups = C_in = C_out``; ``conv`` otherwise), loads the
layer's weights and biases through its ``load`` port, streams the recorded input through it and
compares every output beat with the golden op. Cycles count from the first spike word offered to
the last output beat taken, with no stalls; the bound is :func:`~.engine_model.bound_cycles`.
"""

import fnmatch
import random
from dataclasses import dataclass, asdict

import numpy as np

from spikeforge.golden.energy import E_AC_PJ, E_MAC_PJ, Counter
from spikeforge.golden.integer_model import run_program
from spikeforge.hdl.engine import SpikeEngine
from spikeforge.progress import progress_bar
from spikeforge.verif import engine_model as em

__all__ = ["LayerTrace", "LayerRun", "engine_params", "run_layer", "inference_report",
           "NoMatchingLayer"]


class LayerTrace(Counter):
    """A :class:`~spikeforge.golden.energy.Counter` that also keeps each conv layer's input."""

    def __init__(self):
        super().__init__()
        self.inputs = {}

    def conv(self, layer, x, weight_shape, *, steps, real_input=False):
        super().conv(layer, x, weight_shape, steps=steps, real_input=real_input)
        self.inputs[layer["name"]] = np.asarray(x, dtype=np.int64)


@dataclass
class LayerRun:
    """One layer on the RTL: measured ``cycles`` against the analytic ``bound_cycles``."""

    name: str
    kind: str
    lanes: int
    events: int
    sops: int
    cycles: int
    bound_cycles: int
    beats: int
    mismatches: int

    @property
    def ratio(self):
        return self.cycles / max(self.bound_cycles, 1)

    def as_dict(self):
        return {**asdict(self), "ratio": round(self.ratio, 4)}


def _signed_bits(values):
    """Bits of the narrowest two's-complement type holding every value (at least 2)."""
    values = np.asarray(values, dtype=np.int64)
    high = int(values.max(initial=0))
    low = int(values.min(initial=0))
    return max(2, high.bit_length() + 1, (-low - 1).bit_length() + 1)


def engine_params(layer, weight, bias, shape, *, lanes):
    """SpikeEngine parameters for program ``layer`` on input of ``shape`` ``(C, H, W)``."""
    c_in, in_height, in_width = shape
    common = dict(c_in=c_in, c_out=layer["out_channels"], lanes=lanes,
                  input_bits=layer["input_bits"], weight_bits=_signed_bits(weight),
                  bias_bits=max(_signed_bits(bias), 2), acc_bits=layer["acc_bits"])
    k, stride, padding = layer["kernel"], layer["stride"], layer["padding"]
    if k == 1 and stride == 1 and padding == 0 and layer["groups"] == 1:
        return dict(kind="linear", **common)
    kind = "depthwise" if layer["groups"] > 1 else "conv"
    if kind == "depthwise" and not layer["groups"] == c_in == layer["out_channels"]:
        raise ValueError(f"layer {layer['name']}: grouped conv with groups={layer['groups']} "
                         "is neither dense nor depthwise; the engine has no such mode")
    return dict(kind=kind, in_height=in_height, in_width=in_width, kernel=k, stride=stride,
                padding=padding, **common)


def run_layer(layer, arrays, x, *, lanes, seed=0):
    """Run program ``layer`` on input ``x`` ``(frames, C, H, W)`` on the engine RTL."""
    name = layer["name"]
    weight = np.asarray(arrays[f"{name}.weight"], dtype=np.int64)
    bias = np.asarray(arrays[f"{name}.bias"], dtype=np.int64)
    params = engine_params(layer, weight, bias, x.shape[1:], lanes=lanes)
    engine = SpikeEngine(**params)
    config = engine.config
    if config.kind == "linear":
        x = x.transpose(0, 2, 3, 1).reshape(-1, config.c_in)
        weight = weight.reshape(config.c_out, config.c_in)
    expected = em.output_beats(config, em.golden_output(config, x, weight, bias))
    beats, cycles = em.run_amaranth(engine, x, weight, bias, rng=random.Random(seed))
    mismatches = sum(a != b for a, b in zip(beats, expected)) + abs(len(beats) - len(expected))
    ops = em.op_count(config, x)
    return LayerRun(name=name, kind=config.kind, lanes=lanes, events=ops.events, sops=ops.sops,
                    cycles=cycles, bound_cycles=em.bound_cycles(config, x), beats=len(beats),
                    mismatches=mismatches)


class NoMatchingLayer(ValueError):
    """The ``patterns`` given to :func:`inference_report` name no conv/linear layer."""


def _matching(rows, patterns):
    globs = [g.strip() for g in patterns.split(",") if g.strip()]
    chosen = [row["name"] for row in rows
              if row["op"] == "conv" and any(fnmatch.fnmatchcase(row["name"], g) for g in globs)]
    if not chosen:
        raise NoMatchingLayer(f"--layers {patterns!r} matches no conv/linear layer of the model")
    return chosen


def inference_report(model, image, *, lanes, patterns="*", rtl=True, progress=False):
    """Per-layer figures of one inference of ``model`` (a loaded model file) on ``image``
    ``(1, C, H, W)``; with ``rtl`` the conv/linear layers matching the comma-separated globs
    ``patterns`` also run on the engine RTL (:func:`run_layer`). Raises
    :class:`NoMatchingLayer` when none matches. The ``report`` command prints the returned
    dict (``docs/report.md``).
    """
    trace = LayerTrace()
    logits = run_program(model, image, counter=trace)
    rows = trace.summary()["layers"]
    chosen = _matching(rows, patterns)
    program = {layer["name"]: layer for layer in model.layers}
    runs = {}
    if rtl:
        bar = progress_bar(chosen, show=progress, desc="layers on RTL", unit="layer",
                           leave=False)
        for name in bar:
            bar.set_postfix_str(name)
            runs[name] = run_layer(program[name], model.arrays, trace.inputs[name], lanes=lanes)
    for row in rows:
        if row["op"] != "lif":
            row["energy_pj"] = round(row["dense_ops"] * E_MAC_PJ if row["counted_as"] == "MAC"
                                     else row["sops"] * E_AC_PJ, 3)
        if row["name"] in runs:
            run = runs[row["name"]].as_dict()
            row.update({key: run[key] for key in (
                "kind", "cycles", "bound_cycles", "ratio", "mismatches")})
    totals = {key: sum(getattr(run, key) for run in runs.values()) if runs else None
              for key in ("cycles", "bound_cycles", "mismatches")}
    return {
        "model": str(model.path), "arch": model.config.arch, "time_steps": model.time_steps,
        "predicted": int(logits.argmax(dim=1)[0]), "lanes": lanes,
        "sops": sum(row["sops"] for row in rows if row.get("counted_as") == "AC"),
        "energy_uj": round(sum(row.get("energy_pj", 0) for row in rows) * 1e-6, 6),
        **totals,
        "ratio": round(totals["cycles"] / max(totals["bound_cycles"], 1), 4) if runs else None,
        "layers": rows,
    }
