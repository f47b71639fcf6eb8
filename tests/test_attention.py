"""The ``sdsa`` unit (:class:`spikeforge.hdl.attention.SDSA`), every variant end to end: the
Amaranth simulator with stalls on every stream, cocotb on both simulators with randomly drawn
N, D, heads, parameter checks, no multiplier, the benchmark's bound worked by hand, and a
deliberately broken unit that the same checks must reject. ``KVPopcount`` alone:
``test_attention_popcount.py``; the ``qk_first`` cost model: ``test_attention_qk_first.py``."""

import random

import pytest
import torch
from amaranth.back import rtlil

from spikeforge.contract.attention import VARIANTS
from spikeforge.golden.attention import sdsa_int
from spikeforge.hdl.attention import SDSA
from spikeforge.verif.bench_sdsa import bound_cycles, model_cycles
from spikeforge.verif.runner import simulate, SIMULATORS
from spikeforge.verif.sim_streams import stream_through
from spikeforge.verif.tb_sdsa import pack_word
from spikeforge.verif.units import UNITS

V1, KV_FIRST, QK_FIRST = VARIANTS


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
                kv_beats.append({"k": pack_word(k[t, n]), "v": pack_word(v[t, n])})
                q_words.append({"data": pack_word(q[t, n]), "last": 1})
                want.append(pack_word(out[t, n]))
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


def _draw(variant):
    """Random elaboration parameters for one variant (seeded: the test id shows them)."""
    rng = random.Random(f"sdsa-{variant}")
    heads = rng.choice([1, 2, 3, 4])
    return {"variant": variant, "tokens": rng.randint(3, 12), "heads": heads,
            "channels": heads * rng.choice([2, 3, 4, 5]), "steps": rng.choice([2, 3, 4]),
            "shift": 2 if variant == QK_FIRST else 3}


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
    args = {"variant": KV_FIRST, "tokens": 4, "channels": 8, "heads": 2, "steps": 2, "shift": 3}
    with pytest.raises((TypeError, ValueError), match=name):
        SDSA(**{**args, **kwargs})


@pytest.mark.parametrize("variant", VARIANTS)
def test_multiplier_free(variant):
    text = rtlil.convert(SDSA(variant=variant, tokens=16, channels=16, heads=2, steps=4))
    assert "$mul" not in text and "$div" not in text and "$mod" not in text


class BrokenSDSA(SDSA):
    """Scales the scores by ``2**-(shift - 1)`` instead of ``2**-shift`` (an off-by-one shift)."""

    def __init__(self, *, shift, **kwargs):
        super().__init__(shift=shift - 1, **kwargs)


def test_broken_design_fails():
    # The same harness as test_amaranth_sim, on a unit with the wrong scale: it must disagree.
    got, want = _run_sdsa(KV_FIRST, tokens=6, channels=8, heads=2, steps=3, shift=3, samples=4,
                          seed=2, unit=BrokenSDSA)
    assert len(got) == len(want) and got != want


def test_bench_bound_by_hand():
    sample = [(0b0011, 0b0001, 0b1111), (0b0100, 0b1001, 0b0000)]
    shape = {"tokens": 2, "channels": 4, "heads": 2, "steps": 1}
    assert bound_cycles(V1, [sample], **shape) == 4
    assert bound_cycles(KV_FIRST, [sample], **shape) == 3 + 4      # max(2, 3) + max(4, 3)
    assert bound_cycles(QK_FIRST, [sample], **shape) == 2 + 2      # pairs (0,0) and (0,1)
    # K/V: one spike per head and token (1 + 1); Q: token 0 walks the 2 entries of channel 0,
    # token 1's channel 2 has no key (1 cycle).
    assert model_cycles([sample], **shape) == 2 + 3
