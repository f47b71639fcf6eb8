"""Sparse spike-accumulate engine: spike words in, P-lane accumulator beats out, additions only.

The engine is three units on streams::

    spikes ─▶ [WindowWalker] ─▶ SpikeEncoder ─▶ op FIFO ─▶ SpikeAccumulator ─▶ o
    (linear: no walker)          zero skipping              P adder lanes, ping-pong drain

and :func:`memory_image` / :func:`load_beats`, the host-side layout of the weight memory.
"""

from amaranth.hdl import Module, Const, signed
from amaranth.lib import wiring, stream, data
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from .accumulators import SpikeAccumulator, accumulate_op, group_bits, weight_load, RAM_STYLES
from .addressing import WindowWalker
from .encoder import SpikeEncoder
from .layouts import spike_word, lane_beat
from .params import check_int, check_choice

__all__ = ["SpikeEngine", "KINDS", "memory_image", "load_beats"]

KINDS = ("linear", "conv", "depthwise")


def _accumulator_bits(**kwargs):
    # Imported here: the golden package is the specification the RTL sizes itself from.
    from spikeforge.golden.conv import accumulator_bits
    return accumulator_bits(**kwargs)


class SpikeEngine(wiring.Component):
    """Event-driven linear / k×k convolution / depthwise layer with ``lanes`` adder lanes.

    Input
        ``linear``: tokens of ``input_bits * ceil(c_in / word_width)`` spike words (bit-planes
        ``0 .. input_bits-1`` in order, each packed like :func:`~spikeforge.golden.spikes.
        pack_words`; ``last`` on the token's final word), any number of tokens.
        ``conv`` / ``depthwise``: frames of ``in_height * in_width`` such tokens in raster order.
    Output
        One token per input token (linear) or per output position ``(oy, ox)`` in raster order
        (conv, depthwise): ``ceil(c_out / lanes)`` :func:`~.layouts.lane_beat` beats of
        ``signed(acc_bits)`` values, equal to :func:`spikeforge.golden.conv.linear_int` /
        :func:`~spikeforge.golden.conv.conv2d_int` (``groups = c_in`` for depthwise) with the
        same bias, ``acc_bits``, ``input_bits`` and ``input_signed``.
    Work
        ``linear`` / ``conv``: one cycle per (event, lane group), where an event is a set input bit
        in an output's receptive field; ``depthwise``: one cycle per nonzero ``lanes``-bit slice
        of a tap's word (the slice is one lane group, added under its spike mask). A token's
        drain overlaps the next token's accumulation.

    Parameters
    ----------
    kind : {"linear", "conv", "depthwise"}
    c_in, c_out : int
        Channels; ``depthwise`` needs ``c_out == c_in``.
    lanes : int
        Adder lanes P.
    in_height, in_width, kernel, stride, padding : int
        Frame and kernel geometry (``conv``, ``depthwise``; must stay 1, 1, 1, 1, 0 for
        ``linear``).
    input_bits : int
        Bits per input value; 1 for spikes.
    input_signed : bool
        Two's-complement inputs (the top bit-plane is subtracted).
    weight_bits, bias_bits, acc_bits : int
        Signed widths of weights, biases and output values.
    word_width : int
        Bits per spike word; a multiple of ``lanes`` for ``depthwise``.
    weights : nested list or None
        Initial weights shaped as the golden op's weight: (c_out, c_in), (c_out, c_in, k, k) or
        (c_out, 1, k, k). Zero if not given (load them through ``load``).
    bias : list or None
        Initial bias, ``c_out`` values.
    ram_style : {"distributed", "block"}
        Weight and frame memories: block RAM (default) or LUT RAM (on ECP5 the EBR
        clock-to-output delay, 5.83 ns without its output register, which Yosys does not use,
        caps Fmax near 140 MHz; LUT RAM measured worse: see docs/engine.md).

    Members
    -------
    spikes : In(stream.Signature(spike_word(word_width)))
    load : In(stream.Signature(weight_load(...)))
        Weight and bias rows (:func:`load_beats`); load only while the engine is idle.
    o : Out(stream.Signature(lane_beat(lanes, signed(acc_bits), ceil(c_out / lanes))))
    """

    def __init__(self, *, kind, c_in, c_out, lanes, in_height=1, in_width=1, kernel=1, stride=1,
                 padding=0, input_bits=1, input_signed=False, weight_bits=8, bias_bits=16,
                 acc_bits=16, word_width=32, weights=None, bias=None, ram_style="block"):
        self.ram_style = check_choice("ram_style", ram_style, RAM_STYLES)
        self.kind = check_choice("kind", kind, KINDS)
        self.c_in = check_int("c_in", c_in, min=1)
        self.c_out = check_int("c_out", c_out, min=1)
        self.lanes = check_int("lanes", lanes, min=1)
        self.input_bits = check_int("input_bits", input_bits, min=1, max=16)
        if not isinstance(input_signed, bool):
            raise TypeError(f"input_signed must be a bool, not {input_signed!r}")
        if input_signed and input_bits < 2:
            raise ValueError("input_bits must be at least 2 for input_signed=True, not 1")
        self.input_signed = input_signed
        self.word_width = check_int("word_width", word_width, min=1)
        self.weight_bits = check_int("weight_bits", weight_bits, min=2, max=32)
        self.bias_bits = check_int("bias_bits", bias_bits, min=2, max=48)
        self.acc_bits = check_int("acc_bits", acc_bits, min=2, max=64)
        self.in_height = check_int("in_height", in_height, min=1)
        self.in_width = check_int("in_width", in_width, min=1)
        self.kernel = check_int("kernel", kernel, min=1)
        self.stride = check_int("stride", stride, min=1)
        self.padding = check_int("padding", padding, min=0)
        if kind == "linear":
            for name, value, want in (("in_height", in_height, 1), ("in_width", in_width, 1),
                                      ("kernel", kernel, 1), ("stride", stride, 1),
                                      ("padding", padding, 0)):
                if value != want:
                    raise ValueError(f"{name} must be {want} for kind='linear', not {value!r}")
        else:
            if padding >= kernel:
                raise ValueError(f"padding must be less than kernel ({kernel}), not {padding!r}")
            if kernel > min(in_height, in_width) + 2 * padding:
                raise ValueError(f"kernel must fit the padded input ({in_height}x{in_width}, "
                                 f"padding {padding}), not {kernel!r}")
        if kind == "depthwise":
            if c_out != c_in:
                raise ValueError(f"c_out must equal c_in ({c_in}) for kind='depthwise', "
                                 f"not {c_out!r}")
            if word_width % lanes:
                raise ValueError(f"word_width must be a multiple of lanes ({lanes}) for "
                                 f"kind='depthwise', not {word_width!r}")
        self.groups = -(-c_out // lanes)
        taps = kernel * kernel
        self.rows = taps if kind == "depthwise" else taps * c_in
        fan_in = taps if kind == "depthwise" else taps * c_in
        self.sum_bits = _accumulator_bits(fan_in=fan_in, weight_bits=weight_bits,
                                          input_bits=input_bits, bias_bits=bias_bits)
        self.words = input_bits * -(-c_in // word_width)
        self.out_height = (in_height + 2 * padding - kernel) // stride + 1
        self.out_width = (in_width + 2 * padding - kernel) // stride + 1
        self._image = memory_image(self, weights) if weights is not None else None
        self._bias = _bias_rows(self, bias) if bias is not None else None
        super().__init__({
            "spikes": In(stream.Signature(spike_word(width=word_width))),
            "load": In(stream.Signature(weight_load(
                rows=self.rows, groups=self.groups, lanes=lanes,
                value_bits=max(weight_bits, bias_bits)))),
            "o": Out(stream.Signature(lane_beat(lanes=lanes, shape=signed(acc_bits),
                                                groups=self.groups))),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.accumulator = acc = SpikeAccumulator(
            lanes=self.lanes, channels=self.c_out, rows=self.rows, planes=self.input_bits,
            input_signed=self.input_signed, weight_bits=self.weight_bits,
            bias_bits=self.bias_bits, sum_bits=self.sum_bits, acc_bits=self.acc_bits,
            weights=self._image, bias=self._bias, ram_style=self.ram_style)
        depthwise = self.kind == "depthwise"
        tag_width = max(1, (self.rows - 1).bit_length())
        m.submodules.encoder = encoder = SpikeEncoder(
            width=self.word_width, channels=self.c_in, planes=self.input_bits,
            chunk=self.lanes if depthwise else 1,
            tag_width=0 if self.kind == "linear" else tag_width)
        if self.kind == "linear":
            wiring.connect(m, wiring.flipped(self.spikes), encoder.i)
        else:
            m.submodules.walker = walker = WindowWalker(
                word_width=self.word_width, words=self.words, height=self.in_height,
                width=self.in_width, kernel=self.kernel, stride=self.stride,
                padding=self.padding, tag_step=1 if depthwise else self.c_in,
                tag_width=tag_width, ram_style=self.ram_style)
            wiring.connect(m, wiring.flipped(self.spikes), walker.i)
            wiring.connect(m, walker.o, encoder.i)

        # Encoder event -> accumulate op, decoupled by a small FIFO so the encoder runs ahead
        # over zero words while the lanes are busy.
        layout = accumulate_op(rows=self.rows, groups=self.groups, lanes=self.lanes,
                               planes=self.input_bits)
        event = encoder.o.payload
        m.submodules.fifo = fifo = SyncFIFOBuffered(width=layout.size, depth=4)
        op = data.View(layout, fifo.w_data)
        m.d.comb += [
            op.plane.eq(event.plane),
            op.last.eq(event.last),
            op.null.eq(~event.valid[0]),
        ]
        if depthwise:
            m.d.comb += [op.row.eq(event.tag), op.group.eq(event.addr[0]),
                         op.mask.eq(event.mask[0]), op.expand.eq(0)]
        else:
            row = event.addr[0] if self.kind == "linear" else event.tag + event.addr[0]
            m.d.comb += [op.row.eq(row), op.expand.eq(1),
                         op.mask.eq(Const((1 << self.lanes) - 1, self.lanes))]
        m.d.comb += [
            fifo.w_en.eq(encoder.o.valid),
            encoder.o.ready.eq(fifo.w_rdy),
            acc.ops.valid.eq(fifo.r_rdy),
            acc.ops.payload.eq(fifo.r_data),
            fifo.r_en.eq(acc.ops.ready),
        ]
        wiring.connect(m, wiring.flipped(self.load), acc.load)
        wiring.connect(m, acc.o, wiring.flipped(self.o))
        return m


def _weight_array(engine, weights):
    import numpy as np
    w = np.asarray(weights, dtype=np.int64)
    k = engine.kernel
    if engine.kind == "linear":
        shape = (engine.c_out, engine.c_in)
    elif engine.kind == "conv":
        shape = (engine.c_out, engine.c_in, k, k)
    else:
        shape = (engine.c_out, 1, k, k)
    if w.shape != shape:
        raise ValueError(f"weights must have shape {shape}, not {w.shape}")
    lo, hi = -(1 << (engine.weight_bits - 1)), (1 << (engine.weight_bits - 1)) - 1
    if w.size and (w.min() < lo or w.max() > hi):
        raise ValueError(f"weights must lie in [{lo}, {hi}] (weight_bits={engine.weight_bits})")
    return w.reshape(engine.c_out, -1, k * k) if engine.kind != "linear" else w[:, :, None]


def memory_image(engine, weights):
    """Weight memory contents ``{address: [lanes values]}`` of ``engine`` for golden-shaped
    ``weights``: logical row ``r`` (linear: input channel; conv: ``tap * c_in + c`` with
    ``tap = ky * k + kx``; depthwise: ``tap``) of lane group ``g`` is at address
    ``r << group_bits | g`` and holds output channels ``g * lanes .. g * lanes + lanes - 1``
    (0 past ``c_out``)."""
    w = _weight_array(engine, weights)              # (c_out, c_in or 1, taps)
    gbits = group_bits(engine.groups)
    image = {}
    for row in range(engine.rows):
        if engine.kind == "depthwise":
            column = w[:, 0, row]
        else:
            tap, c = divmod(row, engine.c_in)
            column = w[:, c, tap]
        for g in range(engine.groups):
            lane_values = [int(column[g * engine.lanes + j])
                           if g * engine.lanes + j < engine.c_out else 0
                           for j in range(engine.lanes)]
            image[row << gbits | g] = lane_values
    return image


def _bias_rows(engine, bias):
    import numpy as np
    b = np.asarray(bias, dtype=np.int64).reshape(-1)
    if b.shape != (engine.c_out,):
        raise ValueError(f"bias must have {engine.c_out} values, not shape {b.shape}")
    lo, hi = -(1 << (engine.bias_bits - 1)), (1 << (engine.bias_bits - 1)) - 1
    if b.size and (b.min() < lo or b.max() > hi):
        raise ValueError(f"bias must lie in [{lo}, {hi}] (bias_bits={engine.bias_bits})")
    padded = list(b) + [0] * (engine.groups * engine.lanes - engine.c_out)
    return [[int(v) for v in padded[g * engine.lanes:(g + 1) * engine.lanes]]
            for g in range(engine.groups)]


def load_beats(engine, weights, bias=None):
    """The ``load`` port's beats (dicts for the load layout) that write ``weights`` and ``bias``."""
    beats = [{"addr": addr, "bias": 0, "data": row}
             for addr, row in sorted(memory_image(engine, weights).items())]
    if bias is not None:
        beats += [{"addr": g, "bias": 1, "data": row}
                  for g, row in enumerate(_bias_rows(engine, bias))]
    return beats
