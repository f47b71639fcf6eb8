"""The spike-accumulate engine: its three units wired on streams."""

from amaranth.hdl import Module, Const
from amaranth.lib import wiring, stream
from amaranth.lib.wiring import In, Out

from ..layouts import accumulate_op
from ..stream import Queue
from .accumulator import SpikeAccumulator
from .config import EngineConfig
from .encoder import SpikeEncoder
from .image import memory_image, bias_rows
from .walker import WindowWalker

__all__ = ["SpikeEngine"]

# Accumulate ops queued between the encoder and the adder lanes.
OP_QUEUE_DEPTH = 4


class SpikeEngine(wiring.Component):
    """Event-driven linear / k×k convolution / depthwise layer with ``lanes`` adder lanes.

    Input
        ``linear``: tokens of ``input_bits * ceil(c_in / word_bits)`` spike words (bit-planes
        ``0 .. input_bits-1`` in order, each packed like
        :func:`~spikeforge.golden.spikes.pack_words`; ``last`` on the token's final word), any
        number of tokens. ``conv`` / ``depthwise``: frames of ``in_height * in_width`` such
        tokens in raster order.
    Output
        One token per input token (linear) or per output position ``(oy, ox)`` in raster order
        (conv, depthwise): ``lane_groups = ceil(c_out / lanes)``
        :func:`~spikeforge.hdl.layouts.lane_beat` beats of ``signed(acc_bits)`` values, equal to
        :func:`spikeforge.golden.conv.linear_int` / :func:`~spikeforge.golden.conv.conv2d_int`
        (``groups = c_in`` for depthwise) with the same bias, ``acc_bits``, ``input_bits`` and
        ``input_signed``.
    Work
        ``linear`` / ``conv``: one cycle per (event, lane group), where an event is a set input
        bit in an output's receptive field; ``depthwise``: one cycle per nonzero
        ``lanes``-bit slice of a tap's word (the slice is one lane group, added under its spike
        mask). A token's drain overlaps the next token's accumulation.

    The units, on streams::

        spikes ─▶ [WindowWalker] ─▶ SpikeEncoder ─▶ Queue ─▶ SpikeAccumulator ─▶ o
        (linear: no walker)          zero skipping   ops      P adder lanes, ping-pong drain

    Parameters
    ----------
    weights : nested list or None
        Initial weights shaped as the golden op's weight
        (:attr:`~.config.EngineConfig.weight_shape`). Zero if not given (load them through
        ``load``).
    bias : list or None
        Initial bias, ``c_out`` values.
    **params
        The geometry: the fields of :class:`~.config.EngineConfig` (``kind``, ``c_in``,
        ``c_out``, ``lanes``, ...), checked there. ``ram_style="block"`` (the default) builds
        the weight and frame memories as block RAM read through a second register, on ECP5
        the EBR's own output register (:class:`~spikeforge.hdl.memory.RegisteredReadMemory`);
        ``"distributed"`` as LUT RAM, measured slower (``docs/engine.md``).

    Attributes
    ----------
    config : EngineConfig
        The geometry, read-only (a frozen dataclass).

    Members
    -------
    spikes : In(stream.Signature(config.spike_layout))
    load : In(stream.Signature(config.load_layout))
        Weight and bias rows (:func:`~.image.load_beats`); load only while the engine is idle.
    o : Out(stream.Signature(config.output_layout))
    """

    def __init__(self, *, weights=None, bias=None, **params):
        self._config = config = EngineConfig(**params)
        self._image = memory_image(config, weights) if weights is not None else None
        self._bias = bias_rows(config, bias) if bias is not None else None
        super().__init__({
            "spikes": In(stream.Signature(config.spike_layout)),
            "load": In(stream.Signature(config.load_layout)),
            "o": Out(stream.Signature(config.output_layout)),
        })

    config = property(lambda self: self._config)

    def elaborate(self, platform):
        m = Module()
        c = self._config
        m.submodules.accumulator = acc = SpikeAccumulator(
            lanes=c.lanes, channels=c.c_out, rows=c.rows, planes=c.input_bits,
            input_signed=c.input_signed, weight_bits=c.weight_bits, bias_bits=c.bias_bits,
            sum_bits=c.sum_bits, acc_bits=c.acc_bits, weights=self._image, bias=self._bias,
            ram_style=c.ram_style)
        depthwise = c.kind == "depthwise"
        m.submodules.encoder = encoder = SpikeEncoder(
            word_bits=c.word_bits, channels=c.c_in, planes=c.input_bits,
            chunk=c.lanes if depthwise else 1, tag_bits=c.tag_bits)
        if c.kind == "linear":
            wiring.connect(m, wiring.flipped(self.spikes), encoder.i)
        else:
            m.submodules.walker = walker = WindowWalker(
                word_bits=c.word_bits, words=c.words, in_height=c.in_height,
                in_width=c.in_width, kernel=c.kernel, stride=c.stride, padding=c.padding,
                tag_step=1 if depthwise else c.c_in, tag_bits=c.tag_bits,
                ram_style=c.ram_style)
            wiring.connect(m, wiring.flipped(self.spikes), walker.i)
            wiring.connect(m, walker.o, encoder.i)

        # Encoder event -> accumulate op, decoupled by a small queue so the encoder runs ahead
        # over zero words while the lanes are busy.
        m.submodules.ops = ops = Queue(
            shape=accumulate_op(rows=c.rows, lane_groups=c.lane_groups, lanes=c.lanes,
                                planes=c.input_bits),
            depth=OP_QUEUE_DEPTH)
        event, op = encoder.o.payload, ops.i.payload
        m.d.comb += [
            op.plane.eq(event.plane),
            op.last.eq(event.last),
            op.null.eq(~event.valid[0]),
        ]
        if depthwise:
            m.d.comb += [op.row.eq(event.tag), op.group.eq(event.addr[0]),
                         op.mask.eq(event.mask[0]), op.expand.eq(0)]
        else:
            row = event.addr[0] if c.kind == "linear" else event.tag + event.addr[0]
            m.d.comb += [op.row.eq(row), op.expand.eq(1),
                         op.mask.eq(Const((1 << c.lanes) - 1, c.lanes))]
        m.d.comb += [ops.i.valid.eq(encoder.o.valid), encoder.o.ready.eq(ops.i.ready)]
        wiring.connect(m, ops.o, acc.ops)
        wiring.connect(m, wiring.flipped(self.load), acc.load)
        wiring.connect(m, acc.o, wiring.flipped(self.o))
        return m
