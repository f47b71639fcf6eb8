"""SpikePacker: Amaranth-simulator unit test, cocotb on both simulators, parameter checks, and a
deliberately broken packer that the cocotb testbench must catch."""

import random

import numpy as np
import pytest

from spikeforge.contract.sizes import ceil_div
from spikeforge.golden.spikes import pack_words, unpack_words
from spikeforge.hdl.packer import SpikePacker
from spikeforge.verif.sim_streams import stream_through
from spikeforge.verif.runner import simulate, SimulationFailed, SIMULATORS
from spikeforge.verif.broken import broken_variant, ignoring_back_pressure
from spikeforge.verif.units import UNITS


def test_golden_round_trip():
    rng = np.random.default_rng(0)
    spikes = (rng.random((7, 37)) < 0.4).astype(np.uint8)
    words = pack_words(spikes, 16)
    assert len(words) == 7 * 3 and [last for _, last in words[:3]] == [False, False, True]
    assert (unpack_words(words, 16, 37) == spikes).all()
    assert words[0][0] == sum(int(b) << i for i, b in enumerate(spikes[0, :16]))


@pytest.mark.parametrize("lanes,channels,word_bits", [(4, 16, 8), (8, 36, 16), (3, 10, 3)])
def test_amaranth_sim(lanes, channels, word_bits):
    dut = SpikePacker(lanes=lanes, channels=channels, word_bits=word_bits)
    groups = ceil_div(channels, lanes)
    rng = random.Random(lanes * 100 + channels)
    tokens = [[rng.random() < 0.5 for _ in range(groups * lanes)] for _ in range(40)]
    beats = [{"data": token[g * lanes:(g + 1) * lanes], "group": g, "first": g == 0,
              "last": g == groups - 1} for token in tokens for g in range(groups)]
    want = pack_words(np.array(tokens, dtype=np.uint8)[:, :channels], word_bits)
    run = stream_through(dut, feeds=[(dut.i, beats)], drain=dut.o, count=len(want), rng=rng,
                         idle=0.3, stall=0.3, max_cycles=20 * len(beats) + 100)
    assert [(int(w.data), int(w.last)) for w in run.payloads] == \
        [(w, int(last)) for w, last in want]


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_cocotb(simulator):
    result = simulate("packer", simulator=simulator, seed=7)
    assert result.mismatches == 0
    assert result.checked == 3 * UNITS["packer"].stimulus["tokens"]


@pytest.mark.parametrize("kwargs,name", [
    ({"lanes": 0, "channels": 8, "word_bits": 8}, "lanes"),
    ({"lanes": 4, "channels": "8", "word_bits": 8}, "channels"),
    ({"lanes": 4, "channels": 8, "word_bits": 6}, "word_bits"),
])
def test_bad_parameters(kwargs, name):
    with pytest.raises((TypeError, ValueError), match=name):
        SpikePacker(**kwargs)


# Takes beats while its output register is still full.
BrokenPacker = ignoring_back_pressure(SpikePacker, "i")


def test_broken_design_fails():
    with broken_variant("packer", f"{__name__}:BrokenPacker") as name, \
            pytest.raises(SimulationFailed, match="mismatches"):
        simulate(name, simulator="icarus", seed=7)
