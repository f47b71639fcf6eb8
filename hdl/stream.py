"""Stream primitives shared by the units: a register slice, a skid buffer and a queue, each a
``wiring.Component`` with an ``i`` and an ``o`` port of ``stream.Signature(shape)``.

All follow the stream rules on both sides (``o.valid`` never depends on ``o.ready``; a payload
on offer holds until it is taken), keep the order of the beats and never drop or repeat one,
whatever the stall pattern.
"""

from amaranth.hdl import Module, Mux, Shape, Signal
from amaranth.lib import wiring, stream
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from .params import check_bool, check_int

__all__ = ["StreamBuffer", "SkidBuffer", "Queue"]


def _ports(shape):
    return {"i": In(stream.Signature(shape)), "o": Out(stream.Signature(shape))}


class StreamBuffer(wiring.Component):
    """A register slice: one register on ``o.valid`` and ``o.payload``.

    Takes a beat whenever its register is empty or being emptied (``i.ready = ~o.valid |
    o.ready``, combinational), so it runs at full throughput with one cycle of latency; it cuts
    the path from ``i`` to ``o``, not the ready path back.

    Parameters
    ----------
    shape : shape-like
        Payload shape.

    Members
    -------
    i : In(stream.Signature(shape))
    o : Out(stream.Signature(shape))
    """

    def __init__(self, shape):
        self._shape = shape
        super().__init__(_ports(shape))

    shape = property(lambda self: self._shape)

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.i.ready.eq(~self.o.valid | self.o.ready)
        with m.If(self.i.ready):
            m.d.sync += [self.o.valid.eq(self.i.valid), self.o.payload.eq(self.i.payload)]
        return m


class SkidBuffer(wiring.Component):
    """A skid buffer: ``i.ready`` is a register, so ``o.ready`` reaches nothing upstream.

    One spare entry. While it is empty, beats pass from ``i`` to ``o`` in the same cycle and
    ``i.ready`` is high; a beat on offer that ``o`` does not take goes into the spare, which then
    leaves first, and ``i`` waits until it has. Full throughput, no latency.

    With ``registered=True`` a :class:`StreamBuffer` follows the skid: both the ready path and
    the output are registered (one cycle of latency, a two-entry buffer).

    The spare register copies ``i.payload`` whenever it is empty (its contents matter only once
    it holds a beat), so its wide enable is a register, not the downstream ready path.

    Parameters
    ----------
    shape : shape-like
        Payload shape.
    registered : bool
        Register the output as well.

    Members
    -------
    i : In(stream.Signature(shape))
    o : Out(stream.Signature(shape))
    """

    def __init__(self, shape, *, registered=False):
        self._shape = shape
        self._registered = check_bool("registered", registered)
        super().__init__(_ports(shape))

    shape = property(lambda self: self._shape)
    registered = property(lambda self: self._registered)

    def elaborate(self, platform):
        m = Module()
        out = self.o
        if self._registered:
            m.submodules.output = output = StreamBuffer(self._shape)
            wiring.connect(m, output.o, wiring.flipped(self.o))
            out = output.i
        spare = Signal(self._shape, reset_less=True)
        full = Signal()
        m.d.comb += [
            self.i.ready.eq(~full),
            out.valid.eq(self.i.valid | full),
            out.payload.eq(Mux(full, spare, self.i.payload)),
        ]
        with m.If(~full):
            m.d.sync += spare.eq(self.i.payload)
        with m.If(full):
            with m.If(out.ready):
                m.d.sync += full.eq(0)
        with m.Elif(self.i.valid & ~out.ready):
            m.d.sync += full.eq(1)
        return m


class Queue(wiring.Component):
    """A first-in first-out queue of ``depth`` beats (``lib.fifo.SyncFIFOBuffered``: the output
    is registered, so a beat written into an empty queue is offered one cycle later).

    Parameters
    ----------
    shape : shape-like
        Payload shape.
    depth : int
        Beats held.

    Members
    -------
    i : In(stream.Signature(shape))
        ``i.ready``: the queue has room.
    o : Out(stream.Signature(shape))
    level : Out(range(depth + 1))
        Beats held.
    """

    def __init__(self, *, shape, depth):
        self._shape = shape
        self._depth = check_int("depth", depth, min=1)
        super().__init__({**_ports(shape), "level": Out(range(depth + 1))})

    shape = property(lambda self: self._shape)
    depth = property(lambda self: self._depth)

    def elaborate(self, platform):
        m = Module()
        m.submodules.fifo = fifo = SyncFIFOBuffered(width=Shape.cast(self._shape).width,
                                                    depth=self._depth)
        m.d.comb += [
            fifo.w_data.eq(self.i.payload),
            fifo.w_en.eq(self.i.valid),
            self.i.ready.eq(fifo.w_rdy),
            self.o.payload.eq(fifo.r_data),
            self.o.valid.eq(fifo.r_rdy),
            fifo.r_en.eq(self.o.ready),
            self.level.eq(fifo.level),
        ]
        return m
