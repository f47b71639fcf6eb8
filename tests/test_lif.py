"""LIFArray: Amaranth-simulator unit tests (stalls, row forwarding, saturation, threshold port,
throughput), cocotb on both simulators, parameter checks, and a deliberately broken array
(``>`` for ``>=``) that the cocotb testbench must catch."""

import random

import numpy as np
import pytest

from spikeforge.golden.lif import lif_int, to_lane_order
from spikeforge.hdl.lif import LIFArray
from spikeforge.verif.sim_streams import put_stream, stream_through
from spikeforge.verif.runner import simulate, SimulationFailed, SIMULATORS
from spikeforge.verif.tb_lif import (random_currents, random_thresholds, golden_spikes,
                                     sample_shape)
from spikeforge.verif.broken import broken_variant
from spikeforge.verif.units import UNITS


def _run(p, *, samples, idle, stall, seed, via_port=False):
    """Drive ``samples`` random samples through a LIFArray built with ``p``; return the spike
    beats it produced, the golden ones, and the cycles from the first accepted beat to the
    transfer of the last spike beat."""
    rng = random.Random(seed)
    steps, tokens, channels = sample_shape(p)
    lanes, groups = p["lanes"], p.get("lane_groups", 1)
    thresholds = random_thresholds(rng, p)
    dut = LIFArray(**p, thresholds=None if via_port else thresholds)
    want, beats = [], []
    for _ in range(samples):
        currents = random_currents(rng, (steps, tokens, channels), bits=p["current_bits"])
        spikes = to_lane_order(golden_spikes(p, currents, thresholds), lanes)
        for b, (row, out) in enumerate(zip(to_lane_order(currents, lanes).tolist(),
                                           spikes.tolist())):
            g = b % groups
            meta = {"group": g, "first": g == 0, "last": g == groups - 1}
            beats.append({"data": row, **meta})
            want.append((out, meta["group"], int(meta["first"]), int(meta["last"])))

    async def load_thresholds(ctx):
        rows = [{"group": g, "data": thresholds[g * lanes:(g + 1) * lanes]}
                for g in range(groups)]
        await put_stream(ctx, dut.thr, rows, rng=rng)

    run = stream_through(dut, feeds=[(dut.i, beats)], drain=dut.o, count=len(want), rng=rng,
                         idle=idle, stall=stall, max_cycles=20 * len(want) + 100,
                         setup=load_thresholds if via_port else None)
    got = [([int(s) for s in beat.data], beat.group, beat.first, beat.last)
           for beat in run.payloads]
    return got, want, run.delivered[-1] - run.accepted[0][0]


CONFIGS = {
    # several rows, groups, hard reset, exact F = k*T
    "rows6": dict(lanes=4, lane_groups=2, neurons=24, steps=3, current_bits=6, frac_bits=3),
    # one row: the compute stage reads what the compare stage writes in the same cycle
    "rows1-soft-sat": dict(lanes=4, neurons=4, steps=4, current_bits=6, frac_bits=4,
                           tau_log2=2, reset="soft", membrane_bits=7),
    # two rows: the transparent read port
    "rows2-sat": dict(lanes=2, lane_groups=2, neurons=4, steps=5, current_bits=5, frac_bits=2,
                      membrane_bits=5, threshold_bits=3),
    # three rows: the last short pipeline (transparent read port)
    "rows3-soft": dict(lanes=2, neurons=6, steps=4, current_bits=6, frac_bits=4, reset="soft"),
    # four rows: the first with registered reads (a row is rewritten 4 beats later)
    "rows4-k2": dict(lanes=3, neurons=12, steps=4, current_bits=6, frac_bits=8, tau_log2=2),
}


@pytest.mark.parametrize("name", CONFIGS)
def test_amaranth_sim(name):
    got, want, _ = _run(CONFIGS[name], samples=3, idle=0.3, stall=0.3, seed=len(name))
    assert got == want
    assert any(any(s) for s, *_ in want) and not all(all(s) for s, *_ in want)


def test_amaranth_sim_threshold_port():
    got, want, _ = _run(CONFIGS["rows6"], samples=2, idle=0.2, stall=0.2, seed=9, via_port=True)
    assert got == want


@pytest.mark.parametrize("name", ["rows6", "rows3-soft", "rows1-soft-sat"])
def test_amaranth_throughput(name):
    """No stalls: one beat (``lanes`` neuron updates) per cycle, plus the pipeline latency."""
    got, want, cycles = _run(CONFIGS[name], samples=4, idle=0, stall=0, seed=1)
    assert got == want
    assert cycles == len(want) - 1 + LIFArray(**CONFIGS[name]).latency


def test_saturation_reached():
    """The narrow-membrane configurations really saturate (else the test proves nothing)."""
    p = CONFIGS["rows2-sat"]
    currents = np.full((5, 1, 4), 15)
    _, v = lif_int(currents, threshold=7, frac_bits=p["frac_bits"], membrane_bits=5,
                   return_membrane=True)
    assert (v == 15).all()            # 15 * 4 = 60 would need 7 bits: clamped to 15


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_cocotb_default(simulator):
    """The registered unit and stimulus: >= 20,000 neuron updates with random stalls."""
    result = simulate("lif", simulator=simulator, seed=11)
    assert result.mismatches == 0 and result.checked >= 20_000


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_cocotb_one_row_soft_saturating(simulator):
    params = {"lanes": 4, "neurons": 4, "lane_groups": 1, "steps": 6, "current_bits": 6,
              "frac_bits": 5, "tau_log2": 2, "reset": "soft", "membrane_bits": 8}
    result = simulate("lif", params=params, simulator=simulator, seed=5,
                      stimulus={"samples": 30, "out_stall": 0.5})
    assert result.mismatches == 0 and result.checked == 30 * 6 * 4


def test_cocotb_full_throughput():
    """No idle cycles, no back-pressure: cycles = beats + threshold loads + latency + reset."""
    result = simulate("lif", simulator="icarus", seed=2,
                      stimulus={"samples": 8, "in_idle": 0.0, "out_stall": 0.0,
                                "thr_idle": 0.0})
    p = UNITS["lif"].defaults
    beats = result.checked // p["lanes"]
    overhead = 2 * p["lane_groups"] + 2 * (UNITS["lif"].build().latency + 2)
    assert beats == 8 * p["steps"] * p["neurons"] // p["lanes"]
    assert result.cycles <= beats + overhead


@pytest.mark.parametrize("kwargs,name", [
    ({"lanes": 0}, "lanes"),
    ({"neurons": 18}, "neurons"),
    ({"steps": 0}, "steps"),
    ({"current_bits": 1}, "current_bits"),
    ({"frac_bits": -1}, "frac_bits"),
    ({"frac_bits": 2.0}, "frac_bits"),
    ({"tau_log2": 0}, "tau_log2"),
    ({"reset": "none"}, "reset"),
    ({"membrane_bits": 1}, "membrane_bits"),
    ({"threshold_bits": 0}, "threshold_bits"),
    ({"thresholds": [1, 2]}, "thresholds"),
    ({"thresholds": 256}, "thresholds"),
    ({"thresholds": -1}, "thresholds"),
])
def test_bad_parameters(kwargs, name):
    base = dict(lanes=4, neurons=16, steps=2, current_bits=8, frac_bits=2)
    with pytest.raises((TypeError, ValueError), match=name):
        LIFArray(**{**base, **kwargs})


class BrokenLIFArray(LIFArray):
    """Fires on ``H > theta`` instead of ``H >= theta``: the classic off-by-one."""

    @staticmethod
    def _fires(membrane, threshold):
        return membrane > threshold


def test_broken_design_fails():
    with broken_variant("lif", f"{__name__}:BrokenLIFArray", samples=4) as name, \
            pytest.raises(SimulationFailed, match="mismatches"):
        simulate(name, simulator="icarus", seed=7)
