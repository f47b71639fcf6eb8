"""Window addressing for convolutions: stores one input frame of spike words and replays, for
every output position, the words of its k×k receptive field."""

from amaranth.hdl import Module, Signal, Mux
from amaranth.lib import wiring, stream
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .encoder import encoder_input
from .layouts import spike_word
from .params import check_int, check_choice
from .accumulators import RAM_STYLES

__all__ = ["WindowWalker"]


class WindowWalker(wiring.Component):
    """Frame buffer and k×k window walker (the gather side of an event-driven convolution).

    Phase *load* takes one frame: ``height * width`` tokens in raster order, each
    ``words`` spike words (``planes`` planes of ``ceil(channels / word_width)`` words; the
    token's ``last`` is not needed and ignored). Phase *walk* then emits, for every output
    position ``(oy, ox)`` in raster order and every tap ``(ky, kx)`` in raster order, the
    token's ``words`` words of input pixel ``(oy * stride - padding + ky, ox * stride - padding +
    kx)``, or zero words where that pixel is padding, each tagged with ``tap * tag_step``; the
    position's final word carries ``last``. Then it loads the next frame. Every address is kept
    by running sums (constant adds), so there is no multiplier.

    Parameters
    ----------
    word_width, words : int
        Bits per spike word, words per input token.
    height, width : int
        Input frame size.
    kernel, stride, padding : int
    tag_step, tag_width : int
        Tag increment per tap and its width.
    ram_style : {"distributed", "block"}
        Frame memory: LUT RAM (read asynchronously from a registered address) or block RAM
        (see :data:`~.accumulators.RAM_STYLES`).

    Members
    -------
    i : In(stream.Signature(spike_word(word_width)))
    o : Out(stream.Signature(encoder_input(word_width, tag_width)))
    """

    def __init__(self, *, word_width, words, height, width, kernel, stride, padding, tag_step,
                 tag_width, ram_style="block"):
        self._ram_style = check_choice("ram_style", ram_style, RAM_STYLES)
        self._word_width = check_int("word_width", word_width, min=1)
        self._words = check_int("words", words, min=1)
        self._height = check_int("height", height, min=1)
        self._width = check_int("width", width, min=1)
        self._kernel = check_int("kernel", kernel, min=1)
        self._stride = check_int("stride", stride, min=1)
        self._padding = check_int("padding", padding, min=0, max=kernel - 1)
        if kernel > min(height, width) + 2 * padding:
            raise ValueError(f"kernel must fit the padded input ({height}x{width}, padding "
                             f"{padding}), not {kernel!r}")
        self._tag_step = check_int("tag_step", tag_step, min=0)
        self._tag_width = check_int("tag_width", tag_width, min=1)
        self.out_height = (height + 2 * padding - kernel) // stride + 1
        self.out_width = (width + 2 * padding - kernel) // stride + 1
        super().__init__({
            "i": In(stream.Signature(spike_word(width=word_width))),
            "o": Out(stream.Signature(encoder_input(width=word_width, tag_width=tag_width))),
        })

    def elaborate(self, platform):
        m = Module()
        h, w, k, s, p = self._height, self._width, self._kernel, self._stride, self._padding
        words = self._words
        row = w * words                          # words per input row
        depth = h * row
        m.submodules.frame = frame = Memory(shape=self._word_width, depth=depth, init=[],
                                            attrs={"ram_style": self._ram_style})
        write = frame.write_port()
        distributed = self._ram_style == "distributed"
        read = frame.read_port(domain="comb" if distributed else "sync")

        walking = Signal()
        # --- load phase: write the frame in arrival order
        load_addr = Signal(range(depth))
        m.d.comb += [
            self.i.ready.eq(~walking),
            write.addr.eq(load_addr),
            write.data.eq(self.i.payload.data),
            write.en.eq(self.i.valid & ~walking),
        ]
        with m.If(self.i.valid & ~walking):
            m.d.sync += load_addr.eq(load_addr + 1)
            with m.If(load_addr == depth - 1):
                m.d.sync += [load_addr.eq(0), walking.eq(1)]

        # --- walk phase: counters and the running sums that replace index arithmetic
        oy = Signal(range(self.out_height))
        ox = Signal(range(self.out_width))
        ky = Signal(range(k))
        kx = Signal(range(k))
        j = Signal(range(words))
        y0 = Signal(range(-p, h + s), init=-p)                  # oy * s - p
        x0 = Signal(range(-p, w + s), init=-p)                  # ox * s - p
        y0_addr = Signal(range(-p * row, depth + s * row), init=-p * row)
        x0_addr = Signal(range(-p * words, row + s * words), init=-p * words)
        # row_addr = y0_addr + ky * row, col_addr = x0_addr + kx * words, and their sum pixel,
        # all kept as registers so that the memory address is one add (pixel + j) away.
        row_addr = Signal(range(-p * row, depth + (s + k) * row), init=-p * row)
        col_addr = Signal(range(-p * words, row + (s + k) * words), init=-p * words)
        pixel = Signal(range(-p * (row + words), depth + (s + k) * (row + words)),
                       init=-p * (row + words))
        tag = Signal(self._tag_width)
        iy, ix = y0 + ky, x0 + kx
        inside = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < w)
        end_word = j == words - 1
        end_tap = end_word & (kx == k - 1)
        end_window = end_tap & (ky == k - 1)
        end_row = end_window & (ox == self.out_width - 1)
        end_frame = end_row & (oy == self.out_height - 1)

        # Two register stages after the counters: f (the memory read in flight, with its
        # context) and the output register, which takes the memory's data as it is (no logic
        # after the block RAM's clock-to-output delay); padding words are zeroed after it,
        # by an AND the next unit's input logic absorbs.
        f_valid = Signal()
        f_inside = Signal()
        f_last = Signal()
        f_tag = Signal(self._tag_width)
        o_valid = Signal()
        o_inside = Signal()
        o_data = Signal(self._word_width, reset_less=True)
        emit = f_valid & (~o_valid | self.o.ready)
        issue = walking & (~f_valid | emit)
        m.d.comb += [self.o.valid.eq(o_valid),
                     self.o.payload.data.eq(o_data & o_inside.replicate(self._word_width))]
        if distributed:
            # LUT RAM: register the address at issue, read during stage f
            f_addr = Signal.like(read.addr)
            m.d.comb += read.addr.eq(f_addr)
            with m.If(issue):
                m.d.sync += f_addr.eq(pixel + j)
        else:
            m.d.comb += [read.addr.eq(pixel + j), read.en.eq(issue)]
        with m.If(emit):
            m.d.sync += [o_valid.eq(1), o_data.eq(read.data), o_inside.eq(f_inside),
                         self.o.payload.last.eq(f_last),
                         self.o.payload.tag.eq(f_tag)]
        with m.Elif(self.o.ready):
            m.d.sync += o_valid.eq(0)

        next_row = Signal.like(row_addr)
        next_col = Signal.like(col_addr)
        m.d.comb += [next_row.eq(row_addr), next_col.eq(col_addr)]
        with m.If(issue):
            m.d.sync += [f_valid.eq(1), f_inside.eq(inside), f_last.eq(end_window),
                         f_tag.eq(tag)]
            m.d.sync += j.eq(Mux(end_word, 0, j + 1))
            with m.If(end_word):
                m.d.sync += [kx.eq(kx + 1), tag.eq(tag + self._tag_step)]
                m.d.comb += next_col.eq(col_addr + words)
            with m.If(end_tap):
                m.d.sync += [kx.eq(0), ky.eq(ky + 1)]
                m.d.comb += [next_col.eq(x0_addr), next_row.eq(row_addr + row)]
            with m.If(end_window):
                m.d.sync += [ky.eq(0), tag.eq(0),
                             ox.eq(ox + 1), x0.eq(x0 + s), x0_addr.eq(x0_addr + s * words)]
                m.d.comb += [next_col.eq(x0_addr + s * words), next_row.eq(y0_addr)]
            with m.If(end_row):
                m.d.sync += [ox.eq(0), x0.eq(-p), x0_addr.eq(-p * words),
                             oy.eq(oy + 1), y0.eq(y0 + s), y0_addr.eq(y0_addr + s * row)]
                m.d.comb += [next_col.eq(-p * words), next_row.eq(y0_addr + s * row)]
            with m.If(end_frame):
                m.d.sync += [oy.eq(0), y0.eq(-p), y0_addr.eq(-p * row), walking.eq(0)]
                m.d.comb += next_row.eq(-p * row)
            m.d.sync += [row_addr.eq(next_row), col_addr.eq(next_col),
                         pixel.eq(next_row + next_col)]
        with m.Elif(emit):
            m.d.sync += f_valid.eq(0)
        return m
