"""``spikeforge bench engine``: cycles of the spike-accumulate engine against the analytic bound.

Sweeps the input firing rate over a linear layer and a 3×3 convolution (C_in = C_out = 64,
P = 16 lanes by default), runs each point in the Amaranth simulator (no stalls; weights and bias
as memory ``init``, so loading is not counted), checks every output against the golden op, and
prints per point the events, SOPs, cycles, the bound ``max(events, tokens) * ceil(C_out / P)``,
their ratio and the SOPs per lane per cycle, then whether the performance targets hold.
"""

import random

import click

from spikeforge.commands.common import json_option, emit
from spikeforge.progress import progress_bar

__all__ = ["command", "sweep"]

RATES = (0.01, 0.05, 0.1, 0.2, 0.5)


def layers(*, channels, lanes, tokens, size):
    """The benchmark's layers: ``(name, engine parameters, inputs per point)``."""
    common = dict(c_in=channels, c_out=channels, lanes=lanes, word_width=64)
    return [
        ("linear", dict(kind="linear", **common), tokens),
        (f"conv3x3-{size}x{size}", dict(kind="conv", in_height=size, in_width=size, kernel=3,
                                        stride=1, padding=1, **common), 1),
    ]


def sweep(*, rates=RATES, channels=64, lanes=16, tokens=64, size=6, seed=1, progress=True):
    """Run every (layer, rate) point; return the list of point dicts."""
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


@click.command("engine")
@click.option("--rates", default=",".join(str(r) for r in RATES), show_default=True,
              help="Comma-separated firing rates.")
@click.option("--channels", default=64, show_default=True, help="C_in = C_out.")
@click.option("--lanes", default=16, show_default=True, help="Adder lanes P.")
@click.option("--tokens", default=64, show_default=True, help="Tokens of the linear layer.")
@click.option("--size", default=6, show_default=True, help="Frame side of the 3x3 conv.")
@click.option("--seed", default=1, show_default=True)
@json_option
def command(rates, channels, lanes, tokens, size, seed, as_json):
    """Sweep firing rates on a linear and a 3x3 conv layer; cycles vs. the analytic bound.

    Cycles are counted in the Amaranth simulator from the first spike word offered to the last
    output beat taken. Exits 1 if a target is missed.
    """
    from spikeforge.errors import as_user_error
    with as_user_error():
        rate_list = [float(r) for r in rates.split(",") if r.strip()]
        if not rate_list or not all(0.0 <= r <= 1.0 for r in rate_list):
            raise ValueError(f"rates must lie in [0, 1], not {rates!r}")
        points = sweep(rates=rate_list, channels=channels, lanes=lanes, tokens=tokens,
                       size=size, seed=seed, progress=True)
    checks = targets(points)
    if as_json:
        emit({"simulator": "amaranth", "lanes": lanes, "points": points, "targets": checks},
             True)
    else:
        header = (f"{'layer':14} {'rate':>5} {'events':>7} {'sops':>8} {'cycles':>7} "
                  f"{'bound':>7} {'ratio':>6} {'sop/lane/cyc':>12} ok")
        lines = [header] + [
            f"{p['layer']:14} {p['rate']:5.2f} {p['events']:7d} {p['sops']:8d} "
            f"{p['cycles']:7d} {p['bound_cycles']:7d} {p['ratio']:6.3f} "
            f"{p['sop_per_lane_cycle']:12.3f} {'yes' if p['correct'] else 'NO'}"
            for p in points]
        lines += [f"target {name}: {'met' if ok else 'MISSED'}" for name, ok in checks.items()]
        emit({}, False, "\n".join(lines))
    if not all(checks.values()):
        raise SystemExit(1)
