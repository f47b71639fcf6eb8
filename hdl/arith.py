"""Saturating narrowing shared by the units: clamp, never wrap."""

from amaranth.hdl import Cat, Const, Mux, Value, signed, unsigned

from spikeforge.contract.sizes import signed_range, unsigned_range

__all__ = ["saturate_signed", "saturate_unsigned"]


def saturate_signed(value, bits):
    """``value`` clamped to the range of ``signed(bits)``, as a ``signed(bits)`` expression.

    In range exactly when the bits from the result's sign bit up are all equal: a LUT tree, not
    a pair of magnitude comparisons on carry chains.
    """
    value = Value.cast(value)
    if not value.shape().signed:
        value = Cat(value, Const(0, 1)).as_signed()
    if len(value) <= bits:
        return value.as_signed() if len(value) == bits else value
    top = value[bits - 1:]
    in_range = (top == 0) | (top == (1 << len(top)) - 1)
    low, high = signed_range(bits)
    return Mux(in_range, value[:bits].as_signed(),
               Mux(value[-1], Const(low, signed(bits)), Const(high, signed(bits))))


def saturate_unsigned(value, bits):
    """Non-negative ``value`` clamped to ``unsigned(bits)`` (negative values are not expected)."""
    value = Value.cast(value)
    if len(value) <= bits:
        return value
    high = Const(unsigned_range(bits)[1], unsigned(bits))
    return Mux(value[bits:].any(), high, value[:bits])
