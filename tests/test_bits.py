"""hdl/bits.py: every bit helper in the Amaranth simulator against a Python model, exhaustively
for small widths and on random values for wide ones."""

import random

import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from spikeforge.hdl.bits import (count_bits, lowest_set, one_hot_index, prefix_counts, popcount,
                                 block_any, select_block, lowest_set_blocked, count_to_three)


def _evaluate(build, width, values):
    """Drive ``values`` into a ``width``-bit input of the combinational outputs ``build(m, x)``
    returns (a dict of name -> value); return, per input, the dict of their integer values."""
    m = Module()
    x = Signal(width)
    outputs = {}
    for name, value in build(m, x).items():
        sig = Signal(len(value), name=name)
        m.d.comb += sig.eq(value)
        outputs[name] = sig
    seen = []

    async def bench(ctx):
        for v in values:
            ctx.set(x, v)
            seen.append({name: ctx.get(sig) for name, sig in outputs.items()})

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    return seen


def _values(width, count=300, seed=0):
    if width <= 10:
        return list(range(1 << width))
    rng = random.Random(seed + width)
    sparse = []
    for _ in range(count // 2):
        value = 0
        for _ in range(rng.randrange(4)):
            value |= 1 << rng.randrange(width)
        sparse.append(value)
    return [0, (1 << width) - 1] + sparse + [rng.getrandbits(width) for _ in range(count // 2)]


def _lowest(v):
    return v & -v


@pytest.mark.parametrize("width", [1, 5, 8, 33])
def test_lowest_set_and_index(width):
    values = _values(width)
    seen = _evaluate(lambda m, x: {"hot": lowest_set(x), "index": one_hot_index(lowest_set(x))},
                     width, values)
    for v, got in zip(values, seen):
        assert got["hot"] == _lowest(v)
        assert got["index"] == (_lowest(v).bit_length() - 1 if v else 0)


@pytest.mark.parametrize("width, limit", [(1, 1), (7, 3), (16, 3), (20, 25)])
def test_prefix_counts(width, limit):
    values = _values(width)

    def build(m, x):
        below, total = prefix_counts(m, x, limit=limit, name="t")
        return {"total": total, **{f"below{i}": b for i, b in enumerate(below)}}

    for v, got in zip(values, _evaluate(build, width, values)):
        assert got["total"] == min(limit, bin(v).count("1"))
        for i in range(width):
            assert got[f"below{i}"] == min(limit, bin(v & ((1 << i) - 1)).count("1"))


@pytest.mark.parametrize("width", [1, 6, 31])
def test_popcounts(width):
    values = _values(width)
    seen = _evaluate(lambda m, x: {"count": popcount(x), "three": count_to_three(m, x)},
                     width, values)
    for v, got in zip(values, seen):
        assert got["count"] == bin(v).count("1")
        assert got["three"] == min(3, bin(v).count("1"))


@pytest.mark.parametrize("width, block", [(8, 1), (8, 4), (12, 3), (32, 8)])
def test_blocks(width, block):
    blocks = width // block
    values = _values(width)

    def build(m, x):
        hot, block_hot = lowest_set_blocked(m, x, block)
        return {"any": block_any(x, block), "hot": hot, "block_hot": block_hot,
                "picked": select_block(block_hot, x, block)}

    for v, got in zip(values, _evaluate(build, width, values)):
        mask = (1 << block) - 1
        parts = [(v >> (b * block)) & mask for b in range(blocks)]
        first = next((b for b, part in enumerate(parts) if part), None)
        assert got["any"] == sum(1 << b for b, part in enumerate(parts) if part)
        assert got["hot"] == _lowest(v)
        assert got["block_hot"] == (0 if first is None else 1 << first)
        assert got["picked"] == (0 if first is None else parts[first])


def test_count_bits():
    assert [count_bits(n) for n in (0, 1, 2, 3, 4, 255, 256)] == [1, 1, 2, 2, 3, 8, 9]
