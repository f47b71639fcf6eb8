"""ResidualAdd: Amaranth-simulator unit tests in both modes (with a wrapping adder that must
fail them), cocotb on both simulators, and parameter checks."""

import random

import pytest
import torch
from amaranth.back import rtlil

from spikeforge.contract.sizes import ceil_div, signed_range, unsigned_range
from spikeforge.golden.residual import residual_add_int
from spikeforge.hdl.residual import ResidualAdd
from spikeforge.verif.runner import simulate
from spikeforge.verif.sim_streams import stream_through
from spikeforge.verif.units import UNITS


def _limits(mode, bits):
    return signed_range(bits) if mode == "membrane" else unsigned_range(bits)


def _run(dut, *, beats=120, seed=0):
    """Random beats (a third of the values at a limit) with stalls; return (got, want)."""
    rng = random.Random(seed)
    lanes, groups = dut.lanes, ceil_div(dut.channels, dut.lanes)

    def values(bits):
        low, high = _limits(dut.mode, bits)
        return [rng.choice([low, high, rng.randint(low, high)]) for _ in range(lanes)]

    residual, branch = [], []
    for n in range(beats):
        g = n % groups
        frame = {"group": g, "first": g == 0, "last": g == groups - 1}
        residual.append({"data": values(dut.residual_bits), **frame})
        branch.append({"data": values(dut.branch_bits), **frame})
    want = [(residual_add_int(torch.tensor(r["data"]), torch.tensor(b["data"]), mode=dut.mode,
                              bits=dut.out_bits).tolist(), r["group"], r["last"])
            for r, b in zip(residual, branch)]
    run = stream_through(dut, feeds=[(dut.residual, residual), (dut.branch, branch)],
                         drain=dut.o, count=beats, rng=rng, idle=0.3, stall=0.3,
                         max_cycles=20 * beats)
    got = [([int(beat.data[i]) for i in range(lanes)], int(beat.group), bool(beat.last))
           for beat in run.payloads]
    return got, want


@pytest.mark.parametrize("kwargs", [
    {"lanes": 4, "channels": 10, "mode": "membrane", "residual_bits": 8, "branch_bits": 6,
     "out_bits": 8},
    {"lanes": 3, "channels": 3, "mode": "membrane", "residual_bits": 6, "branch_bits": 9,
     "out_bits": 7},
    {"lanes": 8, "channels": 20, "mode": "sew", "residual_bits": 2, "branch_bits": 1,
     "out_bits": 2},
    {"lanes": 2, "channels": 5, "mode": "sew", "residual_bits": 4, "branch_bits": 4,
     "out_bits": 3},
])
def test_amaranth_sim(kwargs):
    got, want = _run(ResidualAdd(**kwargs), seed=kwargs["lanes"])
    assert got == want


class WrappingAdd(ResidualAdd):
    """Drops the saturation: the sum wraps to ``out_bits`` bits."""

    def _saturate(self, total):
        return total


def test_wrapping_adder_fails():
    got, want = _run(WrappingAdd(lanes=4, channels=8, mode="membrane", residual_bits=8,
                                 branch_bits=8, out_bits=8), seed=1)
    assert len(got) == len(want) and got != want


@pytest.mark.parametrize("simulator,mode", [("icarus", "membrane"), ("verilator", "sew")])
def test_cocotb(simulator, mode):
    params = {"mode": mode}
    if mode == "sew":
        params.update(residual_bits=3, branch_bits=1, out_bits=3)
    result = simulate("residual", params=params, simulator=simulator, seed=3)
    unit = UNITS["residual"]
    groups = ceil_div(unit.defaults["channels"], unit.defaults["lanes"])
    assert result.mismatches == 0
    assert result.checked == unit.stimulus["tokens"] * groups


@pytest.mark.parametrize("kwargs,name", [
    ({"mode": "add"}, "mode"),
    ({"lanes": 0}, "lanes"),
    ({"channels": -1}, "channels"),
    ({"out_bits": 1}, "out_bits"),
    ({"residual_bits": "8"}, "residual_bits"),
    ({"mode": "sew", "branch_bits": 0}, "branch_bits"),
])
def test_bad_parameters(kwargs, name):
    args = {"lanes": 4, "channels": 8, "mode": "membrane", "residual_bits": 8,
            "branch_bits": 8, "out_bits": 8}
    with pytest.raises((TypeError, ValueError), match=name):
        ResidualAdd(**{**args, **kwargs})


@pytest.mark.parametrize("mode", ["membrane", "sew"])
def test_multiplier_free(mode):
    assert "$mul" not in rtlil.convert(ResidualAdd(lanes=4, channels=8, mode=mode))
