"""SDT-V1 SDSA, the ``v1`` variant: ``Q AND OR_n (K AND V)``."""

from amaranth.hdl import Module, Signal, Mux

from .base import AttentionUnit

__all__ = ["SDSAv1"]


class SDSAv1(AttentionUnit):
    """SDT-V1 SDSA: ``out = Q AND m`` with ``m = OR_n (K AND V)`` over the step's tokens.

    ``m`` is the attention LIF (tau 2, Vth 0.5) of the column sums ``sum_n K AND V``: those are
    non-negative integers, so the LIF is stateless and fires exactly when a sum is at least 1,
    which is the 1-bit saturating column sum, an OR (golden:
    :func:`spikeforge.golden.attention.sdsa_v1_int`). ``heads``, ``steps`` and ``shift`` do not
    change the result. One K/V beat and one Q word per cycle: ``2 * tokens`` cycles per step.
    Parameters and ports: :class:`~.base.AttentionUnit`.
    """

    def elaborate(self, platform):
        m = Module()
        mask = Signal(self._channels)
        loaded = Signal(range(self._tokens + 1))     # K/V beats of this step taken so far
        served = Signal(range(self._tokens))         # Q words of this step taken so far

        m.d.comb += self.kv.ready.eq(loaded != self._tokens)
        with m.If(self.kv.valid & self.kv.ready):
            both = self.kv.payload.k & self.kv.payload.v
            m.d.sync += [mask.eq(Mux(loaded == 0, 0, mask) | both), loaded.eq(loaded + 1)]

        m.d.comb += self.q.ready.eq((loaded == self._tokens) & (~self.o.valid | self.o.ready))
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(self.q.valid & self.q.ready):
            m.d.sync += [
                self.o.valid.eq(1),
                self.o.payload.data.eq(self.q.payload.data & mask),
                self.o.payload.last.eq(1),
            ]
            with m.If(served == self._tokens - 1):
                m.d.sync += [served.eq(0), loaded.eq(0)]
            with m.Else():
                m.d.sync += served.eq(served + 1)
        return m
