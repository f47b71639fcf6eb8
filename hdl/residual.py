"""Residual add: the residual stream plus a branch output, lane beat by lane beat, saturating."""

from amaranth.hdl import Module, Mux, signed, unsigned
from amaranth.lib import wiring, stream
from amaranth.lib.wiring import In, Out

from .layouts import lane_beat
from .arith import saturate_signed, saturate_unsigned
from .params import check_int, check_choice

__all__ = ["ResidualAdd", "MODES"]

MODES = ("membrane", "sew")


class ResidualAdd(wiring.Component):
    """Adds two lane-beat streams value by value, saturating, one beat per cycle.

    ``mode="membrane"`` (membrane shortcut, SDT-V1/V2): signed residual values plus signed branch
    values (the branch's last layer quantized onto the residual stream's scale), clamped to
    ``signed(out_width)``. ``mode="sew"`` (Spikformer): unsigned spike counts plus unsigned spike
    counts (``branch_width=1`` for a spike map), clamped to ``unsigned(out_width)``. Never wraps.
    Golden: :func:`spikeforge.golden.residual.residual_add_int` with ``bits=out_width``.

    A beat is taken from both inputs together (the beats must belong to the same token and channel
    group; ``group``/``first``/``last`` of the output are the residual beat's) and the sum leaves
    one cycle later; the join waits for both and tolerates any stall on either side.

    Parameters
    ----------
    lanes : int
        Values per beat (P).
    channels : int
        Channels per token; sizes the ``group`` field (``ceil(channels / lanes)`` groups).
    mode : "membrane" or "sew"
    residual_width, branch_width, out_width : int
        Widths of the residual stream, of the branch output and of the sum.

    Members
    -------
    residual : In(stream.Signature(lane_beat(lanes, shape(residual_width), groups)))
    branch : In(stream.Signature(lane_beat(lanes, shape(branch_width), groups)))
    o : Out(stream.Signature(lane_beat(lanes, shape(out_width), groups)))
        ``shape`` is ``signed`` in membrane mode and ``unsigned`` in SEW mode.
    """

    def __init__(self, *, lanes, channels, mode="membrane", residual_width=16, branch_width=16,
                 out_width=16):
        self._lanes = check_int("lanes", lanes, min=1)
        self._channels = check_int("channels", channels, min=1)
        self._mode = check_choice("mode", mode, MODES)
        low = 2 if mode == "membrane" else 1
        self._residual_width = check_int("residual_width", residual_width, min=low, max=64)
        self._branch_width = check_int("branch_width", branch_width, min=low, max=64)
        self._out_width = check_int("out_width", out_width, min=low, max=64)
        shape = signed if mode == "membrane" else unsigned
        groups = -(-channels // lanes)

        def beat(width):
            return stream.Signature(lane_beat(lanes=lanes, shape=shape(width), groups=groups))

        super().__init__({
            "residual": In(beat(residual_width)),
            "branch": In(beat(branch_width)),
            "o": Out(beat(out_width)),
        })

    lanes = property(lambda self: self._lanes)
    channels = property(lambda self: self._channels)
    mode = property(lambda self: self._mode)
    residual_width = property(lambda self: self._residual_width)
    branch_width = property(lambda self: self._branch_width)
    out_width = property(lambda self: self._out_width)

    def _saturate(self, total):
        if self._mode == "membrane":
            return saturate_signed(total, self._out_width)
        return saturate_unsigned(total, self._out_width)

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
