"""SpikeEncoder (hdl/engine/encoder.py): Amaranth-simulator unit tests, the cocotb testbench on
both simulators, parameter checks, and a deliberately broken encoder that the testbench must
catch."""

import random

import pytest
from amaranth.sim import Simulator

from spikeforge.golden.sops import spike_events
from spikeforge.contract.sizes import ceil_div
from spikeforge.hdl.engine.encoder import SpikeEncoder
from spikeforge.verif.runner import simulate, SimulationFailed
from spikeforge.verif.sim_streams import put_stream, get_stream, run_bounded
from spikeforge.verif.broken import broken_variant, ignoring_back_pressure


def random_words(rng, *, word_bits, channels, planes, tokens, taps=1):
    """``(word, last)`` stream of ``tokens`` tokens with all-zero, all-one and random words
    (junk above ``channels`` included, which the encoder must ignore). ``taps > 1`` puts that
    many plane groups in one token, as the engine's conv window does."""
    per_token = taps * planes * ceil_div(channels, word_bits)
    words = []
    for t in range(tokens):
        rate = [0.0, 1.0][t] if t < 2 else rng.choice([0.02, 0.1, 0.5, 0.9])
        for w in range(per_token):
            word = sum(int(rng.random() < rate) << i for i in range(word_bits))
            words.append((word, w == per_token - 1))
    return words


def run_encoder(*, word_bits, channels, planes=1, count=1, chunk=1, tokens=20, idle=0.3,
                stall=0.3, seed=1, taps=1):
    rng = random.Random(seed)
    dut = SpikeEncoder(word_bits=word_bits, channels=channels, planes=planes, count=count,
                       chunk=chunk)
    words = random_words(rng, word_bits=word_bits, channels=channels, planes=planes,
                         tokens=tokens, taps=taps)
    expected = spike_events(words, word_bits=word_bits, channels=channels, planes=planes,
                            count=count, chunk=chunk)
    in_layout = dut.i.payload.shape()
    got = []

    async def producer(ctx):
        await put_stream(ctx, dut.i, [in_layout.const({"data": w, "last": l}) for w, l in words],
                         rng=rng, idle=idle)

    async def consumer(ctx):
        for beat in await get_stream(ctx, dut.o, len(expected), rng=rng, stall=stall):
            items = tuple((int(beat.addr[s]), int(beat.mask[s]) if chunk > 1 else 1)
                          for s in range(count) if (int(beat.valid) >> s) & 1)
            got.append((items, int(beat.plane), bool(beat.last)))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    run_bounded(sim, max_cycles=20 * len(words) + 1000)
    return got, expected


@pytest.mark.parametrize("config", [
    dict(word_bits=16, channels=36),
    dict(word_bits=16, channels=30, planes=3, count=2),
    dict(word_bits=32, channels=64, chunk=8, count=1),
    dict(word_bits=8, channels=8, count=8, idle=0.0, stall=0.0),
    dict(word_bits=8, channels=12, planes=2, taps=3),
    dict(word_bits=64, channels=72, tokens=10),          # wide words: handed over in 16-bit slices
    dict(word_bits=48, channels=40, taps=2),
])
def test_encoder_matches_golden(config):
    got, expected = run_encoder(**config)
    assert got == expected


def test_encoder_work_is_proportional_to_spikes():
    """No stalls: cycles = sum over words of max(1, ceil(items / count)) (+ pipeline fill)."""
    rng = random.Random(3)
    word_bits, channels, count = 16, 64, 2
    dut = SpikeEncoder(word_bits=word_bits, channels=channels, count=count)
    words = random_words(rng, word_bits=word_bits, channels=channels, planes=1, tokens=30)
    expected = spike_events(words, word_bits=word_bits, channels=channels, count=count)
    cycles = {}

    async def producer(ctx):
        await put_stream(ctx, dut.i, [dut.i.payload.shape().const({"data": w, "last": l})
                                      for w, l in words], rng=rng)

    async def consumer(ctx):
        start = 0
        n = 0
        ctx.set(dut.o.ready, 1)
        while n < len(expected):
            _, _, valid = await ctx.tick().sample(dut.o.valid)
            start += 1
            n += int(valid)
        cycles["total"] = start

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    run_bounded(sim, max_cycles=20 * len(words) + 1000)
    bound = sum(max(1, ceil_div(bin(w).count("1"), count)) for w, _ in words)
    assert cycles["total"] <= bound + 2


@pytest.mark.parametrize("name, value, kwargs", [
    ("word_bits", 0, {}),
    ("word_bits", 12, {"chunk": 8}),
    ("count", 17, {}),
    ("channels", "8", {}),
])
def test_encoder_bad_parameters(name, value, kwargs):
    args = dict(word_bits=16, channels=16, **kwargs)
    args[name] = value
    with pytest.raises((TypeError, ValueError), match=name):
        SpikeEncoder(**args)


@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
def test_encoder_cocotb(simulator):
    result = simulate("encoder", simulator=simulator, seed=5)
    assert result.mismatches == 0 and result.checked > 0


# Takes a word while the one before is still being encoded.
BrokenEncoder = ignoring_back_pressure(SpikeEncoder, "i")


def test_broken_design_fails():
    with broken_variant("encoder", f"{__name__}:BrokenEncoder", tokens=40) as name, \
            pytest.raises(SimulationFailed, match="mismatches"):
        simulate(name, simulator="icarus", seed=7)
