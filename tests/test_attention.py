"""SDSA units: Amaranth-simulator unit tests (KVPopcount alone, every variant end to end), cocotb
on both simulators for every variant with randomly drawn N, D, heads, parameter checks, and a
deliberately broken unit that the same checks must reject."""

import random

import pytest
import torch
from amaranth.back import rtlil
from amaranth.sim import Simulator

from spikeforge.golden.attention import sdsa_int, kv_int
from spikeforge.hdl.popcount import KVPopcount
from spikeforge.hdl.sdsa import SDSA, VARIANTS
from spikeforge.verif.bench_sdsa import model_cycles
from spikeforge.verif.runner import simulate, SIMULATORS
from spikeforge.verif.sim_streams import put_stream, stream_through
from spikeforge.verif.tb_sdsa import make_samples
from spikeforge.verif.units import UNITS


def _word(bits):
    return sum(int(b) << i for i, b in enumerate(bits))


def _spikes(shape, rate, gen):
    return (torch.rand(shape, generator=gen) < rate).to(torch.int64)


def _run_sdsa(variant, *, tokens, channels, heads, steps, shift, samples, seed, unit=None):
    """Drive ``unit`` (default SDSA) in amaranth.sim with stalls on every stream; return
    (got, want) words."""
    dut = (unit or SDSA)(variant=variant, tokens=tokens, channels=channels, heads=heads,
                         steps=steps, shift=shift)
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    rates = [(0, 0, 0), (1, 1, 1)] + [tuple(rng.random() for _ in range(3))
                                      for _ in range(samples - 2)]
    kv_beats, q_words, want = [], [], []
    for q_rate, k_rate, v_rate in rates:
        q, k, v = (_spikes((steps, tokens, channels), r, gen) for r in (q_rate, k_rate, v_rate))
        out = sdsa_int(q, k, v, variant=variant, heads=heads, shift=shift)
        for t in range(steps):
            for n in range(tokens):
                kv_beats.append({"k": _word(k[t, n]), "v": _word(v[t, n])})
                q_words.append({"data": _word(q[t, n]), "last": 1})
                want.append(_word(out[t, n]))
    run = stream_through(dut, feeds=[(dut.kv, kv_beats), (dut.q, q_words)], drain=dut.o,
                         count=len(want), rng=rng, idle=0.3, stall=0.3,
                         max_cycles=20 * len(want) * (tokens + heads + 2) + 100)
    return [(int(w.data), int(w.last)) for w in run.payloads], [(w, 1) for w in want]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("tokens,channels,heads,steps,shift", [
    (5, 8, 2, 3, 3), (1, 6, 3, 2, 2), (4, 4, 1, 4, 1)])
def test_amaranth_sim(variant, tokens, channels, heads, steps, shift):
    got, want = _run_sdsa(variant, tokens=tokens, channels=channels, heads=heads, steps=steps,
                          shift=shift, samples=4, seed=tokens * 31 + channels)
    assert got == want


def test_kv_popcount_amaranth_sim():
    tokens, channels, heads = 6, 8, 2
    dut = KVPopcount(tokens=tokens, channels=channels, heads=heads)
    dh = channels // heads
    gen = torch.Generator().manual_seed(4)
    rng = random.Random(4)
    products = [(_spikes((1, tokens, channels), r, gen), _spikes((1, tokens, channels), r, gen))
                for r in (0.5, 1.0, 0.0, 0.3)]

    async def bench(ctx):
        for k, v in products:
            beats = [{"k": _word(k[0, n]), "v": _word(v[0, n])} for n in range(tokens)]
            await put_stream(ctx, dut.i, beats, rng=rng, idle=0.3)
            await ctx.tick().until(dut.done)
            want = kv_int(k, v, heads=heads)[0]
            for row in range(channels):
                ctx.set(dut.rd_addr, row)
                ctx.set(dut.rd_en, 1)
                await ctx.tick()
                ctx.set(dut.rd_en, 0)
                got = [ctx.get(dut.rd_data[j]) for j in range(dh)]
                assert got == want[row // dh, row % dh].tolist(), f"row {row}"
            ctx.set(dut.release, 1)
            await ctx.tick()
            ctx.set(dut.release, 0)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def _draw(variant):
    """Random elaboration parameters for one variant (seeded: the test id shows them)."""
    rng = random.Random(f"sdsa-{variant}")
    heads = rng.choice([1, 2, 3, 4])
    return {"variant": variant, "tokens": rng.randint(3, 12), "heads": heads,
            "channels": heads * rng.choice([2, 3, 4, 5]), "steps": rng.choice([2, 3, 4]),
            "shift": 2 if variant == "qk_first" else 3}


@pytest.mark.parametrize("simulator", SIMULATORS)
@pytest.mark.parametrize("params", [_draw(v) for v in VARIANTS],
                         ids=lambda p: "-".join(f"{k}{v}" for k, v in p.items()))
def test_cocotb(simulator, params):
    result = simulate("sdsa", params=params, simulator=simulator, seed=11)
    stim = UNITS["sdsa"].stimulus
    assert result.mismatches == 0
    assert result.checked == stim["samples"] * params["steps"] * params["tokens"]


@pytest.mark.parametrize("kwargs,name", [
    ({"variant": "v2"}, "variant"),
    ({"tokens": 0}, "tokens"),
    ({"channels": 12, "heads": 5}, "heads"),
    ({"channels": "8"}, "channels"),
    ({"steps": 0}, "steps"),
    ({"shift": 0}, "shift"),
    ({"heads": 2.0}, "heads"),
])
def test_bad_parameters(kwargs, name):
    args = {"variant": "ssa", "tokens": 4, "channels": 8, "heads": 2, "steps": 2, "shift": 3}
    with pytest.raises((TypeError, ValueError), match=name):
        SDSA(**{**args, **kwargs})


@pytest.mark.parametrize("variant", VARIANTS)
def test_multiplier_free(variant):
    text = rtlil.convert(SDSA(variant=variant, tokens=16, channels=16, heads=2, steps=4))
    assert "$mul" not in text and "$div" not in text and "$mod" not in text


def test_kv_popcount_bad_parameters():
    with pytest.raises(ValueError, match="heads"):
        KVPopcount(tokens=4, channels=6, heads=4)


class BrokenSDSA(SDSA):
    """Scales the scores by ``2**-(shift - 1)`` instead of ``2**-shift`` (an off-by-one shift)."""

    def __init__(self, *, shift, **kwargs):
        super().__init__(shift=shift - 1, **kwargs)


def test_broken_design_fails():
    # The same harness as test_amaranth_sim, on a unit with the wrong scale: it must disagree.
    got, want = _run_sdsa("ssa", tokens=6, channels=8, heads=2, steps=3, shift=3, samples=4,
                          seed=2, unit=BrokenSDSA)
    assert len(got) == len(want) and got != want


def test_bench_bound_by_hand():
    from spikeforge.verif.bench_sdsa import bound_cycles
    sample = [(0b0011, 0b0001, 0b1111), (0b0100, 0b1001, 0b0000)]
    shape = {"tokens": 2, "channels": 4, "heads": 2, "steps": 1}
    assert bound_cycles("v1", [sample], **shape) == 4
    assert bound_cycles("ssa", [sample], **shape) == 3 + 4         # max(2, 3) + max(4, 3)
    assert bound_cycles("qk_first", [sample], **shape) == 2 + 2    # pairs (0,0) and (0,1)
    # K/V: one spike per head and token (1 + 1); Q: token 0 walks the 2 entries of channel 0,
    # token 1's channel 2 has no key (1 cycle).
    assert model_cycles([sample], **shape) == 2 + 3


def test_qk_first_cycles_follow_model():
    # No idle, no stalls: the qk_first unit visits only the overlapping keys, so its cycles are
    # the cost model plus a few cycles of pipeline latency per step (a sweep of every stored key
    # per Q token would take about twice as long here).
    shape = {"tokens": 12, "channels": 16, "heads": 4, "steps": 3}
    steps, tokens, channels = shape["steps"], shape["tokens"], shape["channels"]
    samples = make_samples(random.Random(5), count=1, tokens=tokens, channels=channels,
                           steps=steps, rates=(0.3, 0.08, 0.3))
    dut = SDSA(variant="qk_first", shift=3, **shape)

    def tensor(values):
        return torch.tensor([[(x >> c) & 1 for c in range(channels)] for x in values]).view(
            steps, tokens, channels)

    q, k, v = (tensor(triple[i] for triple in samples[0]) for i in range(3))
    want = [_word(row) for row in sdsa_int(q, k, v, variant="qk_first", heads=shape["heads"],
                                           shift=3).view(-1, channels)]
    run = stream_through(dut, feeds=[(dut.kv, [{"k": k, "v": v} for _, k, v in samples[0]]),
                                     (dut.q, [{"data": q, "last": 1} for q, _, _ in samples[0]])],
                         drain=dut.o, count=len(want), rng=random.Random(5), max_cycles=5000)
    assert [int(w.data) for w in run.payloads] == want
    model = model_cycles(samples, **shape)
    stored = [sum(1 for _, kk, _ in samples[0][t * tokens:(t + 1) * tokens] if kk)
              for t in range(steps)]
    sweep = sum(tokens * (1 + max(1, m)) for m in stored)      # the previous design's cost
    assert model < run.delivered[-1] <= model + 10 * steps + 12 < sweep
