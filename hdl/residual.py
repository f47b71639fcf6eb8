"""Residual add: the residual stream plus a branch output, lane beat by lane beat, saturating."""

from amaranth.hdl import Module, signed, unsigned
from amaranth.lib import wiring, stream
from amaranth.lib.wiring import In, Out

from spikeforge.contract.sizes import ceil_div

from .layouts import lane_beat
from .arith import saturate_signed, saturate_unsigned
from .params import check_int, check_choice

__all__ = ["ResidualAdd", "MODES"]

MODES = ("membrane", "sew")


class ResidualAdd(wiring.Component):
    """Adds two lane-beat streams value by value, saturating, one beat per cycle.

    ``mode="membrane"`` (membrane shortcut, SDT-V1/V2): signed residual values plus signed branch
    values (the branch's last layer quantized onto the residual stream's scale), clamped to
    ``signed(out_bits)``. ``mode="sew"`` (Spikformer): unsigned spike counts plus unsigned spike
    counts (``branch_bits=1`` for a spike map), clamped to ``unsigned(out_bits)``. Never wraps.
    Golden: :func:`spikeforge.golden.residual.residual_add_int` with ``bits=out_bits``.

    A beat is taken from both inputs together (the beats must belong to the same token and lane
    group; ``group``/``first``/``last`` of the output are the residual beat's) and the sum leaves
    one cycle later; the join waits for both and tolerates any stall on either side.

    Parameters
    ----------
    lanes : int
        Values per beat (P).
    channels : int
        Channels per token; sizes the ``group`` field (``ceil(channels / lanes)`` lane groups).
    mode : "membrane" or "sew"
    residual_bits, branch_bits, out_bits : int
        Bits of a value of the residual stream, of the branch output and of the sum.

    Members
    -------
    residual : In(stream.Signature(lane_beat(lanes, shape(residual_bits), lane_groups)))
    branch : In(stream.Signature(lane_beat(lanes, shape(branch_bits), lane_groups)))
    o : Out(stream.Signature(lane_beat(lanes, shape(out_bits), lane_groups)))
        ``shape`` is ``signed`` in membrane mode and ``unsigned`` in SEW mode.
    """

    def __init__(self, *, lanes, channels, mode="membrane", residual_bits=16, branch_bits=16,
                 out_bits=16):
        self._lanes = check_int("lanes", lanes, min=1)
        self._channels = check_int("channels", channels, min=1)
        self._mode = check_choice("mode", mode, MODES)
        low = 2 if mode == "membrane" else 1
        self._residual_bits = check_int("residual_bits", residual_bits, min=low, max=64)
        self._branch_bits = check_int("branch_bits", branch_bits, min=low, max=64)
        self._out_bits = check_int("out_bits", out_bits, min=low, max=64)
        shape = signed if mode == "membrane" else unsigned
        lane_groups = ceil_div(channels, lanes)

        def beat(bits):
            return stream.Signature(lane_beat(lanes=lanes, shape=shape(bits),
                                              lane_groups=lane_groups))

        super().__init__({
            "residual": In(beat(residual_bits)),
            "branch": In(beat(branch_bits)),
            "o": Out(beat(out_bits)),
        })

    lanes = property(lambda self: self._lanes)
    channels = property(lambda self: self._channels)
    mode = property(lambda self: self._mode)
    residual_bits = property(lambda self: self._residual_bits)
    branch_bits = property(lambda self: self._branch_bits)
    out_bits = property(lambda self: self._out_bits)

    def _saturate(self, total):
        if self._mode == "membrane":
            return saturate_signed(total, self._out_bits)
        return saturate_unsigned(total, self._out_bits)

    def elaborate(self, platform):
        m = Module()
        r, b = self.residual, self.branch
        take = r.valid & b.valid & (~self.o.valid | self.o.ready)
        m.d.comb += [r.ready.eq(take), b.ready.eq(take)]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(take):
            m.d.sync += [
                self.o.valid.eq(1),
                self.o.payload.group.eq(r.payload.group),
                self.o.payload.first.eq(r.payload.first),
                self.o.payload.last.eq(r.payload.last),
            ]
            for lane in range(self._lanes):
                total = r.payload.data[lane] + b.payload.data[lane]
                m.d.sync += self.o.payload.data[lane].eq(self._saturate(total))
        return m
