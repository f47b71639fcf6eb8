"""The LIF executor in Amaranth's simulator: every LIF descriptor of the three shipped models on
``sim-small`` and of one on ``ulx3s-85f`` (the spikes written equal the accelerator's golden
model's), descriptors the models do not use (soft reset, saturating membranes, other
``tau_log2`` / ``frac_bits``, negative and huge thresholds, one- and two-row steps that hit the
membrane read-after-write hazard), the cycle count (one row per cycle), and a LIF that writes
after its ownership ended, which the harness refuses."""

import copy
import dataclasses
import functools
import types

import numpy as np
import pytest
import torch
from amaranth.hdl import Signal

from spikeforge.contract.configs import get_config
from spikeforge.contract.program import DESCRIPTOR_WORDS, Op, Reset
from spikeforge.golden.accelerator import Accelerator
from spikeforge.hdl.accelerator.lif import OVERHEAD, ROW_INTERVAL, LifExecutor
from spikeforge.verif.accel_cases import layer_cases
from spikeforge.verif.accel_harness import OwnershipError, run_case

SIM = get_config("sim-small")
ULX3S = get_config("ulx3s-85f")


@functools.cache
def _cases(model, config_name):
    return layer_cases(model, get_config(config_name), ops={Op.LIF})


def _rows(d):
    return d["steps"] * d["out_tokens"] * d["lane_groups"]


def _check(case):
    """Run ``case``: ``(spike words that differ from case.after, cycles, cycle problem)``."""
    lif = LifExecutor(case.config)
    got, cycles = run_case(lif, case, read=["spikes"])
    d = case.desc
    want = lif.cycles(d["steps"], d["out_tokens"], d["lane_groups"])
    problem = None
    if cycles != want:
        problem = f"{case.name}: {cycles} cycles, expected {want}"
    elif d["out_tokens"] * d["lane_groups"] >= ROW_INTERVAL and cycles != _rows(d) + OVERHEAD:
        # The cost model's LIF term is one row per cycle: rows + a fixed overhead.
        problem = f"{case.name}: {cycles} cycles for {_rows(d)} rows"
    bad = np.flatnonzero(got["spikes"] != case.after["spikes"])
    return bad, cycles, problem


def _run_all(cases):
    failures = []
    for case in cases:
        bad, cycles, problem = _check(case)
        # The cost model: bound 0, cycles one row per cycle plus the descriptor fetch.
        cost = _rows(case.desc) + DESCRIPTOR_WORDS
        print(f"{case.model} {case.config.name} {case.name}: {cycles} cycles for "
              f"{_rows(case.desc)} rows, cost model {cost} (bound 0)")
        if cycles > cost and case.desc["out_tokens"] * case.desc["lane_groups"] >= ROW_INTERVAL:
            failures.append(f"{case.name}: {cycles} cycles, cost model {cost}")
        if len(bad):
            failures.append(f"{case.name}: {len(bad)} spike words differ, first at {bad[0]}")
        if problem:
            failures.append(problem)
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("model", ["default", "sdt-v1", "spikformer"])
def test_shipped_models_sim_small(model):
    cases = _cases(model, SIM.name)
    assert cases
    _run_all(cases)


def test_shipped_model_ulx3s():
    cases = _cases("spikformer", ULX3S.name)
    assert cases
    _run_all(cases)


def test_default_model_ulx3s_two_groups_per_word():
    """Two lane groups per 32-bit spike word (spikformer's 16 channels fill half a word)."""
    names = ("s1.b0.attn.q.lif", "head.lif")
    cases = [c for c in _cases("default", ULX3S.name) if c.name in names]
    assert len(cases) == 2 and all(c.desc["lane_groups"] == 2 for c in cases)
    _run_all(cases)


# -- descriptors the shipped models do not use --------------------------------------------------

# The golden model computes in int64: exact while |X| << F and |theta| << F stay below 2**62.
GOLDEN_FRAC_BITS = 62 - max(SIM.value_bits, SIM.threshold_bits)


def _lif_exact(acc, d):
    """``Accelerator._lif``'s spikes with Python integers (no int64 overflow at any F)."""
    x = acc._operand(d, "a").numpy().astype(object)                 # (T, B, C, H, W)
    x = np.broadcast_to(x, (d["steps"], *x.shape[1:]))
    theta = acc._lane_values("thresholds", d["threshold_base"], d["lane_groups"],
                             d["out_channels"]).numpy().astype(object)
    frac, k, bits = d["frac_bits"], d["tau_log2"], d["membrane_bits"]
    lo, hi = -(1 << bits - 1), (1 << bits - 1) - 1
    theta_f = theta[:, None, None] * (1 << frac)

    def sat(v):
        return np.minimum(np.maximum(v, lo), hi)

    v = np.zeros(x.shape[1:], dtype=object)
    spikes = []
    for x_t in x:
        h = sat(v + (x_t * (1 << frac) - v) // (1 << k))
        s = h >= theta_f
        after = 0 * h if d["reset"] == Reset.HARD else sat(h - theta_f)
        v = np.where(s, after, h)
        spikes.append(s.astype(np.int64))
    return torch.from_numpy(np.stack(spikes))


def _golden_after(case):
    """``case`` with ``after`` recomputed by the golden ``Accelerator._lif`` and ``write`` on
    a copy of the memories before the layer (past :data:`GOLDEN_FRAC_BITS`, the spikes of
    :func:`_lif_exact`; below, both are computed and must agree)."""
    acc = Accelerator.__new__(Accelerator)
    acc.config, acc.lanes, acc.word_bits = case.config, case.config.lanes, case.config.word_bits
    acc.params = case.params
    acc.spikes = case.before["spikes"][None].copy()
    acc.values = case.before["values"][None].copy()
    acc.scores = case.before["scores"][None].copy()
    exact = _lif_exact(acc, case.desc)
    if case.desc["frac_bits"] <= GOLDEN_FRAC_BITS:
        y, _, _ = acc._lif(case.desc)
        assert torch.equal(y, exact), case.name
    acc.write(case.desc, exact)
    after = dict(case.before, spikes=acc.spikes[0])
    return dataclasses.replace(case, after=after)


def _variant(case, name, *, values=None, thresholds=None, **fields):
    """A copy of ``case`` with descriptor ``fields`` changed, the input rows of the layer
    replaced by ``values(rng, shape)`` and the thresholds by ``thresholds(rng, shape)``."""
    rng = np.random.default_rng(len(name))
    d = dict(case.desc, **fields)
    before = copy.deepcopy(case.before)
    params = dict(case.params)
    lanes = case.config.lanes
    if values is not None:
        steps = d["in_steps"] if d["a_step"] else 1
        for t in range(steps):
            for n in range(d["in_tokens"]):
                row = d["a_base"] + t * d["a_step"] + n * d["a_token"]
                before["values"][row:row + d["lane_groups"]] = values(
                    rng, (d["lane_groups"], lanes))
    if thresholds is not None:
        params["thresholds"] = params["thresholds"].copy()
        base = d["threshold_base"]
        params["thresholds"][base:base + d["lane_groups"]] = thresholds(
            rng, (d["lane_groups"], lanes))
    case = dataclasses.replace(case, name=name, desc=d, before=before, params=params)
    return _golden_after(case)


def _full_range(bits):
    return lambda rng, shape: rng.integers(-(1 << bits - 1), 1 << bits - 1, shape)


def _small_range(low, high):
    return lambda rng, shape: rng.integers(low, high, shape)


def _tiny(case, name, *, tokens, channels, **fields):
    """``case`` reshaped to ``tokens`` tokens of ``channels`` channels (a step of
    ``tokens * ceil(channels / lanes)`` rows), its input at fresh rows of ``values``."""
    lanes, word_bits = case.config.lanes, case.config.word_bits
    groups = -(-channels // lanes)
    words = -(-channels // word_bits)
    steps = case.desc["steps"]
    shape = dict(in_height=1, in_width=tokens, out_height=1, out_width=tokens,
                 in_tokens=tokens, out_tokens=tokens, in_channels=channels,
                 out_channels=channels, lane_groups=groups,
                 group_bits=(groups - 1).bit_length(), in_plane_words=words,
                 out_plane_words=words, in_steps=steps, a_token=groups,
                 a_step=tokens * groups, a_base=case.config.values_depth - steps * tokens * groups,
                 dst_token=words, dst_step=tokens * words, dst_base=case.desc["dst_base"])
    return _variant(case, name, **shape, **fields)


@functools.cache
def _synthetic():
    base = next(c for c in _cases("spikformer", SIM.name) if c.name == "s0.b0.attn.q.lif")
    soft = int(Reset.SOFT)
    x24, t24 = _full_range(SIM.value_bits), _full_range(SIM.threshold_bits)
    return [
        # soft reset, tau 4, 3 fractional bits, the model's inputs and thresholds
        _variant(base, "soft k2 F3", reset=soft, tau_log2=2, frac_bits=3),
        # a 6-bit membrane that saturates both ways, soft and hard
        _variant(base, "soft M6", reset=soft, membrane_bits=6, frac_bits=2,
                 values=_small_range(-40, 40), thresholds=_small_range(0, 12)),
        _variant(base, "hard M6", membrane_bits=6, frac_bits=2,
                 values=_small_range(-40, 40), thresholds=_small_range(0, 12)),
        # no fractional bits: the floor of negative leaks
        _variant(base, "k3 F0", tau_log2=3, frac_bits=0, values=_small_range(-20, 60),
                 thresholds=_small_range(1, 8)),
        # full-range inputs and signed thresholds: X << F and theta << F past 40 / 33 bits
        *(_variant(base, f"{r} k{k} F{f}", reset=int(Reset[r.upper()]), tau_log2=k,
                   frac_bits=f, membrane_bits=32, values=x24, thresholds=t24)
          for r, k, f in (("soft", 7, 9), ("soft", 1, 16), ("hard", 3, 17), ("soft", 5, 30),
                          ("soft", 2, 40), ("hard", 7, 63))),
        # X = -1 with F past 40 bits: every bit of X << F in range is 0, yet it overflows
        _variant(base, "hard k7 F50 X=-1", tau_log2=7, frac_bits=50, membrane_bits=32,
                 values=_small_range(-1, 2), thresholds=_small_range(0, 2)),
        # steps of 1, 2 and 3 rows: every row is read again before a 10-deep pipeline writes it
        _tiny(base, "1 row", tokens=1, channels=5, reset=soft, frac_bits=2,
              values=_small_range(-8, 30), thresholds=_small_range(0, 10)),
        _tiny(base, "2 rows", tokens=2, channels=SIM.lanes, frac_bits=2,
              values=_small_range(-8, 30), thresholds=_small_range(0, 10)),
        _tiny(base, "3 rows", tokens=1, channels=3 * SIM.lanes - 1, reset=soft, frac_bits=4,
              tau_log2=2, values=_small_range(-8, 30), thresholds=_small_range(0, 10)),
    ]


@pytest.mark.parametrize("index", range(14))
def test_synthetic(index):
    case = _synthetic()[index]
    bad, cycles, problem = _check(case)
    print(f"{case.name}: {cycles} cycles for {_rows(case.desc)} rows")
    assert not len(bad), f"{case.name}: {len(bad)} spike words differ, first at {bad[0]}"
    assert problem is None, problem


def test_synthetic_cases_spike():
    """The synthetic cases exercise the executor: each spikes somewhere, and not always."""
    for case in _synthetic():
        d = case.desc
        steps, words = d["steps"], d["out_tokens"] * d["dst_token"]
        spikes = [case.after["spikes"][d["dst_base"] + t * d["dst_step"]:][:words]
                  for t in range(steps)]
        bits = sum(bin(int(w)).count("1") for s in spikes for w in s)
        assert 0 < bits < steps * d["out_tokens"] * d["out_channels"], case.name
    assert len(_synthetic()) == 14


def test_word_bits_must_be_a_multiple_of_lanes():
    config = types.SimpleNamespace(**{f.name: getattr(SIM, f.name)
                                      for f in dataclasses.fields(SIM)})
    config.word_bits = 12
    with pytest.raises(ValueError, match="word_bits"):
        LifExecutor(config)


def test_cycles_formula():
    lif = LifExecutor(SIM)
    assert lif.cycles(4, 64, 2) == 4 * 128 + OVERHEAD
    assert lif.cycles(4, 1, 2) == 3 * ROW_INTERVAL + 2 + OVERHEAD
    assert lif.cycles(0, 64, 2) == 1


class _LateWrite(LifExecutor):
    """Enables its spikes write once more in the cycle after its first with ``busy`` low:
    a write the accelerator gates off (the executor no longer owns the memories), which the
    harness's own memory would take."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        was_busy, fell = Signal(), Signal()
        m.d.sync += [was_busy.eq(self.busy), fell.eq(was_busy & ~self.busy)]
        with m.If(fell):
            m.d.comb += self.spikes.w_en.eq(1)
        return m


def test_write_after_ownership_refused():
    case = min(_cases("spikformer", SIM.name), key=lambda c: _rows(c.desc))
    with pytest.raises(OwnershipError, match=r"spikes\.w_en 1 cycle\(s\) after busy fell"):
        run_case(_LateWrite(SIM), case, read=["spikes"])
