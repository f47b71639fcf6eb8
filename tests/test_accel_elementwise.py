"""ElementwiseExecutor (ADD, SUM_TOKENS, READOUT) against the accelerator's golden model: every
such layer of the shipped models on ``sim-small`` and of the default model on ``ulx3s-85f``,
plus synthetic cases (random memories, edited descriptors) that saturate, broadcast, stall for
wide outputs and read out several tokens."""

import dataclasses
from functools import cache

import numpy as np
import pytest
from spikeforge.contract.configs import get_config
from spikeforge.contract.program import Memory, Op, pack
from spikeforge.golden.accelerator import Accelerator
from spikeforge.golden.fixed import saturate, saturate_unsigned
from spikeforge.hdl.accelerator.elementwise import (SETUP_CYCLES, WRITE_DELAY,
                                                    ElementwiseExecutor)
from spikeforge.verif.accel_cases import layer_cases
from spikeforge.verif.accel_harness import run_case

OPS = {Op.ADD, Op.SUM_TOKENS, Op.READOUT}
STATE = ("spikes", "values", "scores")


@cache
def _cases(model, config):
    return tuple(layer_cases(model, get_config(config), ops=OPS))


def _case(model, config, name):
    return next(c for c in _cases(model, config) if c.name == name)


def _reads(d):
    """Reads the op needs (one memory access each), from the descriptor alone."""
    spikes = d["src_mem"] == Memory.SPIKES
    op = Op(d["op"])
    steps = d["in_steps"]
    if d["a_step"] == 0 and (op != Op.ADD or d["b_step"] == 0):
        steps = 1
    inner = d["in_plane_words"] if spikes else d["lane_groups"]
    n = d["in_tokens"]
    if op == Op.ADD:
        return steps * n * inner * ((d["in_bits"] + d["b_bits"]) if spikes else 2)
    if op == Op.SUM_TOKENS:
        return steps * inner * n * (d["in_bits"] if spikes else 1)
    return steps * (d["lane_groups"] if n == 1 else d["in_channels"] * n)


def _writes(d):
    op, spikes = Op(d["op"]), d["src_mem"] == Memory.SPIKES
    steps = 1 if d["a_step"] == 0 and (op != Op.ADD or d["b_step"] == 0) else d["in_steps"]
    inner = d["in_plane_words"] if spikes else d["lane_groups"]
    if op == Op.READOUT:
        return d["lane_groups"]
    tokens = d["in_tokens"] if op == Op.ADD else 1
    return steps * tokens * inner * (d["out_bits"] if spikes else 1)


def _trimmed(case, before):
    """``case`` with ``before`` (trailing all-zero rows dropped: the memories start at 0 anyway,
    and loading fewer rows keeps the simulation set-up short)."""
    short = {}
    for name, rows in before.items():
        flat = rows.reshape(len(rows), -1)
        used = np.flatnonzero(flat.any(axis=1))
        short[name] = rows[:used[-1] + 1 if len(used) else 0]
    return dataclasses.replace(case, before=short)


def _run(case, *, desc=None, before=None, after=None, label=""):
    """Run the executor on ``case`` (optionally another descriptor / memories); check every
    memory against ``after`` and the cycles against the executor's own count and the reads."""
    desc = dict(case.desc if desc is None else desc)
    before = case.before if before is None else before
    after = case.after if after is None else after
    executor = ElementwiseExecutor(case.config)
    got, cycles = run_case(executor, _trimmed(dataclasses.replace(case, desc=desc), before))
    for name in STATE:
        bad = np.argwhere(got[name] != after[name])
        assert not len(bad), (f"{case.model} {case.config.name} {case.name}{label}: {name} "
                              f"differs at {len(bad)} places, first {tuple(bad[0])}: got "
                              f"{got[name][tuple(bad[0])]}, want {after[name][tuple(bad[0])]}")
    reads, writes = _reads(desc), _writes(desc)
    rows = desc["in_steps"] * desc["in_tokens"] * desc["lane_groups"]   # the cost model's
    print(f"{case.model:10} {case.config.name:9} {case.name + label:24} "
          f"{Op(desc['op']).name:10} cycles {cycles:5}  reads {reads:5}  writes {writes:5}  "
          f"cost-model rows {rows:5}")
    assert cycles == executor.cycles(desc)
    # one access per cycle: reads (or the planes written, if more) + a small constant
    planes = desc["out_bits"] if desc["src_mem"] == Memory.SPIKES else 1
    assert cycles <= max(reads, writes) + SETUP_CYCLES + WRITE_DELAY + planes
    return cycles


def _golden(case, desc, before, clamp=None):
    """The memories after ``desc`` runs on ``before`` in the golden model: exactly what
    :meth:`Accelerator.run` does for one layer (its op, then ``write``), with ``clamp``
    applied to the op's result first if given."""
    program = np.asarray(pack({"op": Op.INPUT}) + pack({"op": Op.END}), dtype=np.int64)
    acc = Accelerator(case.config, {"program": program})
    for name in STATE:
        setattr(acc, name, before[name][None].astype(np.int64).copy())
    op = Op(desc["op"])
    y, _, _ = getattr(acc, "_" + op.name.lower())(desc)
    if clamp is not None:
        y = clamp(y)
    acc.write(desc, y if op != Op.READOUT else y[None, :, :, None, None])
    return {name: getattr(acc, name)[0] for name in STATE}


def _random(case, seed, *, value_bits=None):
    """``case.before`` with the operand memory filled with random data: values over their full
    signed range (or ``value_bits``), spike words with every bit random (past the channels too)."""
    rng = np.random.default_rng(seed)
    before = {name: case.before[name].copy() for name in STATE}
    vb = value_bits or case.config.value_bits
    before["values"] = rng.integers(-(1 << (vb - 1)), 1 << (vb - 1),
                                    size=before["values"].shape)
    before["spikes"] = rng.integers(0, 1 << case.config.word_bits, size=before["spikes"].shape)
    return before


# -- the shipped models' layers ---------------------------------------------------------------

@pytest.mark.parametrize("model", ["default", "sdt-v1", "spikformer"])
def test_shipped_sim_small(model):
    cases = _cases(model, "sim-small")
    assert {c.op for c in cases} == OPS
    for case in cases:
        _run(case)


def test_shipped_ulx3s():
    cases = _cases("default", "ulx3s-85f")
    assert {c.op for c in cases} == OPS
    for case in cases:
        _run(case)


def test_spikformer_planes_ulx3s():
    # 32-bit words of 16 channels: the bits past the channels are read (and come out 0)
    cases = [c for c in _cases("spikformer", "ulx3s-85f") if c.desc["src_mem"] == Memory.SPIKES]
    assert {c.op for c in cases} == {Op.ADD, Op.SUM_TOKENS}
    for case in cases:
        _run(case)


# -- synthetic cases ----------------------------------------------------------------------

def test_golden_helper_matches_cases():
    # the helper that computes the synthetic cases' expectations reproduces real layers
    for model, config in (("default", "sim-small"), ("spikformer", "ulx3s-85f")):
        for case in _cases(model, config):
            want = _golden(case, case.desc, case.before)
            for name in STATE:
                np.testing.assert_array_equal(want[name], case.after[name])


def test_add_membrane_saturates():
    case = _case("default", "sim-small", "s0.b0.sep.add")      # a broadcast over the steps
    before = _random(case, 1)
    after = _golden(case, case.desc, before)
    _run(case, before=before, after=after, label=" random")
    d = case.desc
    lo, hi = -(1 << (d["out_bits"] - 1)), (1 << (d["out_bits"] - 1)) - 1
    out = after["values"][d["dst_base"]:d["dst_base"] + d["steps"] * d["dst_step"]]
    assert (out == lo).any() and (out == hi).any()


def test_add_membrane_at_value_bits_both_broadcast():
    # out_bits = value_bits: the sum of two full-range values clamps at the memory's limit;
    # both operands time-invariant: one step is written
    case = _case("default", "ulx3s-85f", "s0.b0.sep.add")
    desc = {**case.desc, "out_bits": case.config.value_bits, "b_step": 0}
    before = _random(case, 2)
    after = _golden(case, desc, before)
    step = slice(desc["dst_base"] + desc["dst_step"], desc["dst_base"] + 2 * desc["dst_step"])
    np.testing.assert_array_equal(after["values"][step], before["values"][step])
    _run(case, desc=desc, before=before, after=after, label=" T=1 vb")


def test_add_sew_saturates():
    case = _case("spikformer", "ulx3s-85f", "s0.b0.mlp.add")    # 2-bit a + 1-bit b -> 2 bits
    before = _random(case, 3)
    _run(case, before=before, after=_golden(case, case.desc, before), label=" random")


def test_add_sew_wide_output_stalls():
    # 1 + 1 planes read, 4 planes written per word: the next word's reads wait for the writes
    case = _case("spikformer", "sim-small", "s0.b0.attn.add")
    d = case.desc
    words = d["out_plane_words"]
    desc = {**d, "out_bits": 4, "dst_token": 4 * words, "dst_step": 4 * words * d["in_tokens"],
            "dst_base": 2048}
    before = _random(case, 4)
    _run(case, desc=desc, before=before, after=_golden(case, desc, before), label=" 4 planes")


def test_sum_tokens_values_saturates():
    # full-range values: the sums exceed out_bits (the golden op does not clamp; the executor
    # saturates to out_bits, which the compiler sizes so that real sums never reach it)
    case = _case("default", "sim-small", "head.sum")
    bits = case.desc["out_bits"]
    before = _random(case, 5)
    after = _golden(case, case.desc, before, clamp=lambda y: saturate(y, bits))
    _run(case, before=before, after=after, label=" random")


def test_sum_tokens_spikes_saturates():
    case = _case("spikformer", "ulx3s-85f", "head.sum")
    desc = {**case.desc, "out_bits": 4}                            # 16 tokens of 0..3 > 15
    before = _random(case, 6)
    after = _golden(case, desc, before, clamp=lambda y: saturate_unsigned(y, 4))
    _run(case, desc=desc, before=before, after=after, label=" 4 planes")


def test_readout_saturates():
    case = _case("sdt-v1", "sim-small", "logits")
    desc = {**case.desc, "out_bits": case.config.value_bits}
    before = _random(case, 7)
    after = _golden(case, desc, before, clamp=lambda y: saturate(y, desc["out_bits"]))
    _run(case, desc=desc, before=before, after=after, label=" random")


@pytest.mark.parametrize("config", ["sim-small", "ulx3s-85f"])
def test_readout_over_tokens(config):
    # a readout of C channels x N tokens: score k = c * N + n (the golden flattening)
    case = _case("default", config, "logits")
    c, n, lanes = case.desc["in_channels"], 3, case.config.lanes
    groups = -(-c // lanes)
    out_groups = -(-(c * n) // lanes)
    desc = {**case.desc, "in_height": n, "in_width": 1, "in_tokens": n, "a_token": groups,
            "a_step": n * groups, "out_channels": c * n, "lane_groups": out_groups,
            "group_bits": (out_groups - 1).bit_length(), "out_bits": 25}
    before = _random(case, 8)
    after = _golden(case, desc, before, clamp=lambda y: saturate(y, 25))
    _run(case, desc=desc, before=before, after=after, label=f" N={n}")


def test_constructor_checks():
    config = get_config("sim-small")
    with pytest.raises(ValueError, match="lanes"):
        ElementwiseExecutor(dataclasses.replace(config, lanes=6))
    with pytest.raises(ValueError, match="word_bits"):
        ElementwiseExecutor(dataclasses.replace(config, word_bits=24))
