"""Residual adds: float forms as the seeds compute them and saturating integer forms, the bit-exact
specification of :class:`spikeforge.hdl.residual.ResidualAdd`.

* Membrane shortcut (SDT-V1/V2, Meta-SpikeFormer): ``x = x + branch(x)`` on the real-valued
  residual stream. Integer form: the residual stream and the branch output are signed integers on
  one scale (the quantizer puts the branch's last layer on the residual stream's scale), and their
  sum saturates to a signed ``bits``-wide value.
* SEW (Spikformer): ``x = x + branch(x)`` where both terms are spike counts (the first block adds
  two spike maps, later blocks add a spike map to the multi-bit sum so far). Integer form: an
  unsigned sum saturating to ``bits`` unsigned bits.

The integer forms equal the float forms exactly when the float inputs are integers on the same
scale and the sum fits ``bits`` (the test checks it); otherwise they clamp, never wrap.
"""

import torch

from .fixed import check_bits, saturate, saturate_unsigned

__all__ = ["MODES", "membrane_add_float", "membrane_add_int", "sew_add_float", "sew_add_int",
           "residual_add_int", "saturate_unsigned"]

MODES = ("membrane", "sew")


# Sums are formed in int64: one carry bit above ``bits`` must still fit.
MAX_BITS = 62


def _check_int(name, x):
    if not torch.is_tensor(x) or x.is_floating_point() or x.dtype == torch.bool:
        raise TypeError(f"{name} must be an integer tensor, not {x!r:.60}")
    return x.to(torch.int64)


def membrane_add_float(residual, branch):
    """Membrane shortcut on real values: ``residual + branch``."""
    return residual + branch


def membrane_add_int(residual, branch, *, bits):
    """Membrane shortcut on integers: ``sat_signed(residual + branch, bits)`` (int64)."""
    check_bits(bits, maximum=MAX_BITS)
    return saturate(_check_int("residual", residual) + _check_int("branch", branch), bits)


def sew_add_float(a, b):
    """SEW add of spike maps (or a multi-bit sum and a spike map): ``a + b``."""
    return a + b


def sew_add_int(a, b, *, bits):
    """SEW add on non-negative integers: ``sat_unsigned(a + b, bits)`` (int64)."""
    check_bits(bits, maximum=MAX_BITS)
    a, b = _check_int("a", a), _check_int("b", b)
    if bool((a < 0).any()) or bool((b < 0).any()):
        raise ValueError("SEW inputs must be non-negative spike counts")
    return saturate_unsigned(a + b, bits)


def residual_add_int(residual, branch, *, mode, bits):
    """Golden of :class:`spikeforge.hdl.residual.ResidualAdd`: the integer add of ``mode``."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    if mode == "membrane":
        return membrane_add_int(residual, branch, bits=bits)
    return sew_add_int(residual, branch, bits=bits)
