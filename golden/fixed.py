"""Saturating fixed-point helpers shared by the golden integer ops (conv, LIF, residual adds).

Saturate, never wrap: every integer op of the golden model clamps its result to the width the
hardware holds it in. These functions take a torch tensor, a NumPy array or a Python int and
return the same kind; torch is never imported here (the cocotb testbenches use these with NumPy
alone).
"""

import numpy as np

from spikeforge.contract import sizes

__all__ = ["check_bits", "signed_range", "unsigned_range", "saturate", "saturate_unsigned"]


def check_bits(bits, *, maximum=None):
    """Refuse a width ``bits`` that is not an integer in ``[1, maximum]`` (no upper limit when
    ``maximum`` is ``None``), naming it; return it."""
    if (isinstance(bits, bool) or not isinstance(bits, int) or bits < 1
            or (maximum is not None and bits > maximum)):
        span = "a positive integer" if maximum is None else f"an integer in [1, {maximum}]"
        raise ValueError(f"bits must be {span}, not {bits!r}")
    return bits


def signed_range(bits):
    """``(lo, hi)`` of a ``bits``-bit two's-complement integer
    (:func:`spikeforge.contract.sizes.signed_range` after :func:`check_bits`)."""
    return sizes.signed_range(check_bits(bits))


def unsigned_range(bits):
    """``(0, 2**bits - 1)`` (:func:`spikeforge.contract.sizes.unsigned_range` after
    :func:`check_bits`)."""
    return sizes.unsigned_range(check_bits(bits))


def _clamp(x, lo, hi):
    if type(x).__module__.split(".")[0] == "torch":
        return x.clamp(lo, hi)
    if isinstance(x, np.ndarray):
        return np.clip(x, lo, hi)
    return min(max(int(x), lo), hi)


def saturate(x, bits):
    """Clamp ``x`` to the ``bits``-bit signed range ``[-2**(bits-1), 2**(bits-1)-1]``.

    ``bits=None`` means an unbounded width: ``x`` is returned unchanged.
    """
    if bits is None:
        return x
    return _clamp(x, *signed_range(bits))


def saturate_unsigned(x, bits):
    """Clamp ``x`` to the ``bits``-bit unsigned range ``[0, 2**bits - 1]``."""
    return _clamp(x, *unsigned_range(bits))
