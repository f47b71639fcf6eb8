"""hdl/arith.py: saturating narrowing in the Amaranth simulator against a Python clamp, over
every input of small signed and unsigned widths."""

import pytest
from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.sim import Simulator

from spikeforge.contract.sizes import signed_range, unsigned_range
from spikeforge.hdl.arith import saturate_signed, saturate_unsigned


def _outputs(shape, narrow, bits):
    """Every value of ``shape`` through ``narrow(x, bits)``: list of (input, output)."""
    m = Module()
    x = Signal(shape)
    y = Signal.like(narrow(x, bits), name="y")
    m.d.comb += y.eq(narrow(x, bits))
    lo, hi = signed_range(shape.width) if shape.signed else unsigned_range(shape.width)
    seen = []

    async def bench(ctx):
        for value in range(lo, hi + 1):
            ctx.set(x, value)
            seen.append((value, ctx.get(y)))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    return seen


@pytest.mark.parametrize("shape, bits", [(signed(8), 4), (signed(5), 5), (signed(3), 6),
                                         (unsigned(6), 4), (unsigned(3), 3), (signed(9), 2)])
def test_saturate_signed(shape, bits):
    lo, hi = signed_range(bits)
    for value, got in _outputs(shape, saturate_signed, bits):
        assert got == min(hi, max(lo, value)), value


@pytest.mark.parametrize("shape, bits", [(unsigned(8), 3), (unsigned(4), 4), (unsigned(2), 5)])
def test_saturate_unsigned(shape, bits):
    for value, got in _outputs(shape, saturate_unsigned, bits):
        assert got == min((1 << bits) - 1, value), value


def test_result_shapes():
    x = Signal(signed(10))
    assert saturate_signed(x, 6).shape() == signed(6)
    assert saturate_signed(Signal(unsigned(4)), 6).shape().signed
    assert saturate_unsigned(Signal(unsigned(9)), 5).shape() == unsigned(5)
