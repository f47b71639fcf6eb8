"""Window addressing for convolutions: stores one input frame of spike words and replays, for
every output position, the words of the occupied (not all-zero) taps of its k×k receptive
field."""

from types import SimpleNamespace

from amaranth.hdl import Array, Module, Signal, Mux, Cat, Const
from amaranth.lib import wiring, stream
from amaranth.lib.wiring import In, Out

from spikeforge.contract.sizes import conv_output_size

from ..layouts import encoder_input, spike_word
from ..memory import RegisteredReadMemory, RAM_STYLES
from ..params import check_int, check_choice
from ..stream import SkidBuffer

__all__ = ["WindowWalker"]


class WindowWalker(wiring.Component):
    """Frame buffer and k×k window walker (the gather side of an event-driven convolution).

    Phase *load* takes one frame: ``in_height * in_width`` tokens in raster order, each
    ``words`` spike words (``planes`` planes of ``ceil(channels / word_bits)`` words; the
    token's ``last`` is not needed and ignored), and sets one occupancy flag per pixel (any of
    its words nonzero). Phase *walk* then emits, for every output position ``(oy, ox)`` in
    raster order and every *occupied* tap ``(ky, kx)`` in raster order, the token's ``words``
    words of input pixel ``(oy * stride - padding + ky, ox * stride - padding + kx)``, each
    tagged with ``tap * tag_step`` (modulo ``2**tag_bits``); the window's final word carries
    ``last``. Taps whose pixel is all zero or padding are skipped without a cycle; a window with
    no occupied tap emits one zero word with ``last``. So a window takes
    ``max(1, occupied taps * words)`` cycles. Then it loads the next frame. Addresses are
    running sums plus constant tables (no multiplier).

    The walk has four parts, one method each: the *load* (frame memory and occupancy flags),
    the window *ahead* (the position and occupied taps of the window after the next one), the
    *window* being walked (its taps, one after the other) and the *read* pipeline (memory read,
    output register, skid buffer).

    Parameters
    ----------
    word_bits, words : int
        Bits per spike word, words per input token.
    in_height, in_width : int
        Input frame size.
    kernel, stride, padding : int
    tag_step, tag_bits : int
        Tag increment per tap and the tag's bits.
    ram_style : {"distributed", "block"}
        Frame memory: LUT RAM (read asynchronously from a registered address) or block RAM
        (:data:`~spikeforge.hdl.memory.RAM_STYLES`).

    Members
    -------
    i : In(stream.Signature(spike_word(word_bits)))
    o : Out(stream.Signature(encoder_input(word_bits, tag_bits)))
    """

    def __init__(self, *, word_bits, words, in_height, in_width, kernel, stride, padding,
                 tag_step, tag_bits, ram_style="block"):
        self._ram_style = check_choice("ram_style", ram_style, RAM_STYLES)
        self._word_bits = check_int("word_bits", word_bits, min=1)
        self._words = check_int("words", words, min=1)
        self._in_height = check_int("in_height", in_height, min=1)
        self._in_width = check_int("in_width", in_width, min=1)
        self._kernel = check_int("kernel", kernel, min=1)
        self._stride = check_int("stride", stride, min=1)
        self._padding = check_int("padding", padding, min=0, max=kernel - 1)
        if kernel > min(in_height, in_width) + 2 * padding:
            raise ValueError(f"kernel must fit the padded input ({in_height}x{in_width}, "
                             f"padding {padding}), not {kernel!r}")
        self._tag_step = check_int("tag_step", tag_step, min=0)
        self._tag_bits = check_int("tag_bits", tag_bits, min=1)
        size = dict(kernel=kernel, stride=stride, padding=padding)
        self._out_height = conv_output_size(in_height, **size)
        self._out_width = conv_output_size(in_width, **size)
        super().__init__({
            "i": In(stream.Signature(spike_word(word_bits=word_bits))),
            "o": Out(stream.Signature(encoder_input(word_bits=word_bits, tag_bits=tag_bits))),
        })

    out_height = property(lambda self: self._out_height)
    out_width = property(lambda self: self._out_width)
    words = property(lambda self: self._words)

    def elaborate(self, platform):
        m = Module()
        depth = self._in_height * self._in_width * self._words
        # the read and the output register in one component (on ECP5 block RAM the register is
        # the EBR's output register)
        m.submodules.frame = frame = RegisteredReadMemory(
            shape=self._word_bits, depth=depth, style=self._ram_style,
            attrs={"ram_style": self._ram_style})
        walking = Signal()
        # LUT RAM only: the next frame may be written (see _read)
        may_load = None if self._ram_style == "block" else Signal()
        occupied = self._load(m, frame, walking, may_load)
        ahead = self._ahead(m, occupied)
        window = self._window(m, ahead)
        self._read(m, frame, walking, may_load, ahead, window)
        return m

    def _load(self, m, frame, walking, may_load):
        """Load phase: write the frame in arrival order, and one occupancy flag per pixel (any
        of its words nonzero) as it loads (with LUT RAM only while ``may_load``, from
        :meth:`_read`, is high); then start the walk. Returns the flags."""
        pixels = self._in_height * self._in_width
        words = self._words
        depth = pixels * words
        load_addr = Signal(range(depth))
        ready = ~walking if may_load is None else ~walking & may_load
        loading = self.i.valid & ready
        m.d.comb += [
            self.i.ready.eq(ready),
            frame.w_addr.eq(load_addr),
            frame.w_data.eq(self.i.payload.data),
            frame.w_en.eq(loading),
        ]
        with m.If(loading):
            m.d.sync += load_addr.eq(load_addr + 1)
            with m.If(load_addr == depth - 1):
                m.d.sync += [load_addr.eq(0), walking.eq(1)]

        load_j = Signal(range(words))
        load_px = Signal(range(pixels))
        load_nz = Signal()                       # OR of the pixel's words so far
        occupied = Signal(pixels)
        with m.If(loading):
            nz = load_nz | self.i.payload.data.any()
            with m.If(load_j == words - 1):
                m.d.sync += [load_j.eq(0), load_nz.eq(0), occupied.bit_select(load_px, 1).eq(nz),
                             load_px.eq(Mux(load_px == pixels - 1, 0, load_px + 1))]
            with m.Else():
                m.d.sync += [load_j.eq(load_j + 1), load_nz.eq(nz)]
        return occupied

    def _ahead(self, m, occupied):
        """The window after the next one (``n``): its position, kept by running sums, from
        which one shifter reads its occupied taps (0 for padding) through constant tables of
        the rows and columns inside the frame (no index arithmetic, no comparator between the
        counters and the flags). ``advance`` moves it on by one window; ``restart`` (statements)
        puts it back at window 0."""
        h, w, k, s, p = (self._in_height, self._in_width, self._kernel, self._stride,
                         self._padding)
        words = self._words
        row = w * words                          # words per input row
        depth = h * row
        low = p * w + p
        occ_ext = Cat(Const(0, low), occupied, Const(0, (p + s + k) * w + k))
        base0 = -p * (row + words)
        base_shape = range(base0, depth + s * (row + words))

        n_ox = Signal(range(self._out_width))
        n_oy = Signal(range(self._out_height))
        # (below, x0 = n_ox * s - p and y0 = n_oy * s - p: the window's top left input pixel)
        n_at = Signal(range(len(occ_ext)))                   # y0 * w + x0 + low
        n_row_at = Signal.like(n_at)                         # y0 * w - p + low
        n_base = Signal(base_shape, init=base0)              # y0 * row + x0 * words
        n_row_base = Signal(base_shape, init=base0)          # y0 * row - p * words

        def inside(first, size):
            """Mask of the offsets d < k with ``first + d`` in ``[0, size)``."""
            return Const(sum(1 << d for d in range(k) if 0 <= first + d < size), k)

        x_in = Signal(k)
        y_in = Signal(k)
        m.d.comb += [
            x_in.eq(Array(inside(x * s - p, w) for x in range(self._out_width))[n_ox]),
            y_in.eq(Array(inside(y * s - p, h) for y in range(self._out_height))[n_oy]),
        ]
        cut = occ_ext.bit_select(n_at, (k - 1) * w + k)
        flags = Signal(k * k)
        m.d.comb += flags.eq(Cat(*[cut[r * w:r * w + k] & x_in & y_in[r].replicate(k)
                                   for r in range(k)]))

        restart = [n_ox.eq(0), n_oy.eq(0), n_at.eq(0), n_row_at.eq(0), n_base.eq(base0),
                   n_row_base.eq(base0)]
        advance = Signal()
        with m.If(advance):
            with m.If(n_ox == self._out_width - 1):
                m.d.sync += n_ox.eq(0)
                with m.If(n_oy == self._out_height - 1):
                    m.d.sync += restart[1:]
                with m.Else():
                    m.d.sync += [n_oy.eq(n_oy + 1),
                                 n_row_at.eq(n_row_at + s * w), n_at.eq(n_row_at + s * w),
                                 n_row_base.eq(n_row_base + s * row),
                                 n_base.eq(n_row_base + s * row)]
            with m.Else():
                m.d.sync += [n_ox.eq(n_ox + 1), n_at.eq(n_at + s),
                             n_base.eq(n_base + s * words)]
        return SimpleNamespace(flags=flags, base=n_base, base0=base0, base_shape=base_shape,
                               advance=advance, restart=restart)

    def _window(self, m, ahead):
        """The next window (``nwin``: its occupied taps and base address, registered) and the
        current one: its base address, the tap walked (``have``: there is one; its offset and
        tag from constant tables) and ``rest``, its occupied taps after that one.
        ``next_tap`` / ``next_window`` (statements) move on to the next occupied tap / window."""
        k, words = self._kernel, self._words
        row = self._in_width * words
        taps = k * k
        nwin = Signal(taps)
        nwin_base = Signal(ahead.base_shape, init=ahead.base0)
        base = Signal(ahead.base_shape, init=ahead.base0)
        have = Signal()
        offset = Signal(range((k - 1) * (row + words) + 1))
        tag = Signal(self._tag_bits)
        rest = Signal(taps)

        offsets = [(t // k) * row + (t % k) * words for t in range(taps)]
        tags = [(t * self._tag_step) % (1 << self._tag_bits) for t in range(taps)]

        def first_tap(flags, name):
            """Statements making the lowest tap of ``flags`` the current one."""
            pick = Signal(taps, name=f"{name}_pick")
            # a parallel priority select (no carry chain): tap t if no lower tap is set
            m.d.comb += pick.eq(Cat(*[flags[t] & ~flags[:t].any() if t else flags[0]
                                      for t in range(taps)]))

            def table(values, bits):      # AND-OR with the one-hot pick
                return Cat(*[Cat(*[pick[t] & ((v >> b) & 1) for t, v in enumerate(values)])
                             .any() for b in range(bits)])
            return [offset.eq(table(offsets, len(offset))),
                    tag.eq(table(tags, self._tag_bits)), rest.eq(flags & ~pick)]

        next_tap = first_tap(rest, "rest")
        next_window = first_tap(nwin, "nwin") + [have.eq(nwin.any()), base.eq(nwin_base),
                                                 nwin.eq(ahead.flags),
                                                 nwin_base.eq(ahead.base)]
        with m.If(ahead.advance):
            m.d.sync += next_window
        return SimpleNamespace(base=base, have=have, offset=offset, tag=tag, more=rest.any(),
                               next_tap=next_tap)

    def _read(self, m, frame, walking, may_load, ahead, window):
        """The walk counters and the read pipeline (and, with LUT RAM, ``may_load``: whether
        the next frame may be written).

        Two register stages after the counters: ``f`` (the memory read in flight, with its
        context) and the memory's output register, which takes the memory's data as it is (no
        logic after the block RAM's clock-to-output delay); the closing zero word is zeroed
        after it, by an AND the next unit's input logic absorbs. Then a skid buffer: it takes
        the output word when the next unit does not, so the pipeline advances on registered
        state only (``o.ready``, combinational in the next unit, reaches no counter).

        The next frame loads once a frame's last read is issued. Block RAM captures the row
        at the read. LUT RAM holds only the address in ``f`` and the output register takes
        the row at ``emit``, so there the load waits until ``f`` is empty or being emitted
        (``may_load``; no cycle lost unless the output stalls): else a stall would let the
        new frame overwrite the word before it is taken."""
        words = self._words
        oy = Signal(range(self._out_height))
        ox = Signal(range(self._out_width))
        j = Signal(range(words))
        primed = Signal(range(3))
        end_word = (j == words - 1) | ~window.have
        end_window = ~window.have | (end_word & ~window.more)
        end_row = end_window & (ox == self._out_width - 1)
        end_frame = end_row & (oy == self._out_height - 1)

        f_valid = Signal()
        f_inside = Signal()
        f_last = Signal()
        f_tag = Signal(self._tag_bits)
        o_valid = Signal()
        o_inside = Signal()
        o_last = Signal()
        o_tag = Signal(self._tag_bits)
        m.submodules.skid = skid = SkidBuffer(self.o.payload.shape())
        wiring.connect(m, skid.o, wiring.flipped(self.o))
        m.d.comb += [
            skid.i.valid.eq(o_valid),
            skid.i.payload.data.eq(frame.r_data & o_inside.replicate(self._word_bits)),
            skid.i.payload.last.eq(o_last),
            skid.i.payload.tag.eq(o_tag),
        ]
        emit = f_valid & (~o_valid | skid.i.ready)
        if may_load is not None:
            m.d.comb += may_load.eq(~f_valid | emit)
        issue = walking & (primed == 2) & (~f_valid | emit)
        addr = Signal(ahead.base_shape)
        m.d.comb += [addr.eq(window.base + window.offset + j),
                     frame.r_addr.eq(addr), frame.r_en.eq(issue), frame.o_en.eq(emit)]
        with m.If(emit):
            m.d.sync += [o_valid.eq(1), o_inside.eq(f_inside), o_last.eq(f_last),
                         o_tag.eq(f_tag)]
        with m.Elif(skid.i.ready):
            # the word went to the next unit or into the skid buffer
            m.d.sync += o_valid.eq(0)

        # A frame's walk starts with two priming steps (windows 0 and 1 into the pipeline).
        with m.If(walking & (primed != 2)):
            m.d.sync += primed.eq(primed + 1)
            m.d.comb += ahead.advance.eq(1)
        with m.If(issue):
            m.d.sync += [f_valid.eq(1), f_inside.eq(window.have), f_last.eq(end_window),
                         f_tag.eq(window.tag)]
            m.d.sync += j.eq(Mux(end_word, 0, j + 1))
            with m.If(end_word & window.more):
                m.d.sync += window.next_tap
            with m.If(end_window & ~end_frame):
                m.d.comb += ahead.advance.eq(1)
            with m.If(end_window):
                m.d.sync += ox.eq(ox + 1)
            with m.If(end_row):
                m.d.sync += [ox.eq(0), oy.eq(oy + 1)]
            with m.If(end_frame):
                # the next frame starts from window 0 again
                m.d.sync += [oy.eq(0), walking.eq(0), primed.eq(0), *ahead.restart]
        with m.Elif(emit):
            m.d.sync += f_valid.eq(0)
