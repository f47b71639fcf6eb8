"""Copies of a register that synthesis keeps apart: :func:`kept_register`.

A register copied to split a large fan-out (a block RAM address to many blocks, a reset to
many flip-flops) is undone by Yosys, which merges identical cells (``opt_merge``); a ``keep``
on the register's wire does not stop it, a ``keep`` on the cell does. Amaranth puts attributes
on wires only, so on ECP5 the copies are ``TRELLIS_FF`` instances with ``keep``
(``verif/models/trellis_ff.v`` simulates them); elsewhere (simulation, iCE40) they are plain
registers and may be merged.
"""

from amaranth.hdl import ClockSignal, Const, Instance, ResetSignal, Signal

from .target import family_of

__all__ = ["kept_register"]


def kept_register(m, value, *, name, platform, init=0, reset_less=True):
    """``value`` registered in domain ``sync`` of ``m`` (a ``Module``), as ``Signal(len(value),
    init=init, reset_less=reset_less, name=name)`` would be, in flip-flops that synthesis for
    ``platform`` keeps as a copy of their own; returns the register."""
    q = Signal(len(value), name=name, init=init, reset_less=reset_less)
    if family_of(platform) != "ecp5":
        m.d.sync += q.eq(value)
        return q
    lsr = Const(0, 1) if reset_less else ResetSignal("sync")
    for j in range(len(value)):
        m.submodules[f"{name}_{j}"] = Instance(
            "TRELLIS_FF", a_keep=1,
            p_GSR="DISABLED", p_CEMUX="1", p_CLKMUX="CLK", p_LSRMUX="LSR",
            p_REGSET="SET" if (init >> j) & 1 else "RESET", p_SRMODE="LSR_OVER_CE",
            i_CLK=ClockSignal("sync"), i_LSR=lsr, i_DI=value[j], o_Q=q[j])
    return q
