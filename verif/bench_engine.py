"""Cycles of the spike-accumulate engine against the analytic bound (``spikeforge bench engine``).

Sweeps the input firing rate over a linear layer and a 3×3 convolution (C_in = C_out = 64,
P = 16 lanes by default), runs each point in the Amaranth simulator (no stalls; weights and bias
as memory ``init``, so loading is not counted), checks every output against the golden op, and
returns per point the events, SOPs, cycles, the bound ``max(events, tokens) * ceil(C_out / P)``,
their ratio and the SOPs per lane per cycle; :func:`targets` says whether the performance targets
hold. The command line (``spikeforge/commands/bench.py``) parses the options and prints them.
"""

import random

from spikeforge.progress import progress_bar

__all__ = ["RATES", "layers", "sweep", "targets"]

RATES = (0.01, 0.05, 0.1, 0.2, 0.5)


def layers(*, channels, lanes, tokens, size):
    """The benchmark's layers: ``(name, engine parameters, inputs per point)``."""
    common = dict(c_in=channels, c_out=channels, lanes=lanes, word_bits=64)
    return [
        ("linear", dict(kind="linear", **common), tokens),
        (f"conv3x3-{size}x{size}", dict(kind="conv", in_height=size, in_width=size, kernel=3,
                                        stride=1, padding=1, **common), 1),
    ]


def sweep(*, rates=RATES, channels=64, lanes=16, tokens=64, size=6, seed=1, progress=True):
    """Run every (layer, rate) point; return the list of point dicts.

    Raises ``ValueError`` unless ``rates`` is a non-empty sequence of firing rates in [0, 1].
    """
    rates = list(rates)
    if not rates or not all(0.0 <= r <= 1.0 for r in rates):
        raise ValueError(f"rates must lie in [0, 1], not {rates!r}")
    from spikeforge.hdl.engine import SpikeEngine
    from spikeforge.verif import engine_model as em

    rng = random.Random(seed)
    points = []
    todo = [(layer, rate) for layer in layers(channels=channels, lanes=lanes, tokens=tokens,
                                              size=size) for rate in rates]
    for (name, params, count), rate in progress_bar(todo, show=progress, desc="bench engine",
                                                    unit="point"):
        shape = em.engine_config(**params)
        weights, bias = em.random_weights(rng, shape), em.random_bias(rng, shape)
        x = em.random_input(rng, shape, count, rate)
        engine = SpikeEngine(**params, weights=weights.tolist(), bias=bias.tolist())
        beats, cycles = em.run_amaranth(engine, x, weights, bias, rng=rng, load=False)
        correct = beats == em.output_beats(shape, em.golden_output(shape, x, weights, bias))
        ops = em.op_count(shape, x)
        bound = em.bound_cycles(shape, x)
        points.append({
            "layer": name, "rate": rate, "events": ops.events, "sops": ops.sops,
            "dense_macs": ops.dense_macs, "cycles": cycles, "bound_cycles": bound,
            "ratio": round(cycles / bound, 4),
            "sop_per_lane_cycle": round(ops.sops / (cycles * lanes), 4),
            "correct": correct,
        })
    return points


def targets(points):
    """The acceptance targets of the engine, each ``True`` when met."""
    linear = {p["rate"]: p for p in points if p["layer"] == "linear"}
    checks = {
        "ratio<=1.15 at r>=0.05": all(p["ratio"] <= 1.15 for p in points if p["rate"] >= 0.05),
        "linear sop/lane/cycle>=0.9 at r>=0.2": all(
            p["sop_per_lane_cycle"] >= 0.9 for r, p in linear.items() if r >= 0.2),
        "all outputs equal golden": all(p["correct"] for p in points),
    }
    if 0.05 in linear and 0.5 in linear:
        checks["linear cycles(0.05)<=0.15*cycles(0.5)"] = (
            linear[0.05]["cycles"] <= 0.15 * linear[0.5]["cycles"])
    return checks

