"""Window addressing for convolutions: stores one input frame of spike words and replays, for
every output position, the words of the occupied (not all-zero) taps of its k×k receptive
field."""

from types import SimpleNamespace

from amaranth.hdl import Array, Module, Signal, Mux, Cat, Const
from amaranth.lib import wiring, stream
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .encoder import encoder_input
from .layouts import spike_word
from .params import check_int, check_choice
from .accumulators import RAM_STYLES
from .bram import RegisteredReadMemory

__all__ = ["WindowWalker"]


class WindowWalker(wiring.Component):
    """Frame buffer and k×k window walker (the gather side of an event-driven convolution).

    Phase *load* takes one frame: ``height * width`` tokens in raster order, each
    ``words`` spike words (``planes`` planes of ``ceil(channels / word_width)`` words; the
    token's ``last`` is not needed and ignored), and sets one occupancy flag per pixel (any of
    its words nonzero). Phase *walk* then emits, for every output position ``(oy, ox)`` in
    raster order and every *occupied* tap ``(ky, kx)`` in raster order, the token's ``words``
    words of input pixel ``(oy * stride - padding + ky, ox * stride - padding + kx)``, each
    tagged with ``tap * tag_step``; the window's final word carries ``last``. Taps whose pixel
    is all zero or padding are skipped without a cycle; a window with no occupied tap emits one
    zero word with ``last``. So a window takes ``max(1, occupied taps * words)`` cycles. Then
    it loads the next frame. Addresses are running sums plus constant tables (no multiplier).

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
        distributed = self._ram_style == "distributed"
        attrs = {"ram_style": self._ram_style}
        if distributed:
            m.submodules.frame = frame = Memory(shape=self._word_width, depth=depth, init=[],
                                                attrs=attrs)
            write = frame.write_port()
            read = frame.read_port(domain="comb")
        else:
            # block RAM: the read and the output register `o_data` in one component (on ECP5
            # the register is the EBR's output register)
            m.submodules.frame = frame = RegisteredReadMemory(shape=self._word_width,
                                                              depth=depth, attrs=attrs)
            write = SimpleNamespace(addr=frame.w_addr, data=frame.w_data, en=frame.w_en)

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

        # --- occupancy: one flag per pixel (any of its words nonzero), written as the frame loads
        pixels = h * w
        load_j = Signal(range(words))
        load_px = Signal(range(pixels))
        load_nz = Signal()                       # OR of the pixel's words so far
        occ = Signal(pixels)
        with m.If(self.i.valid & ~walking):
            nz = load_nz | self.i.payload.data.any()
            with m.If(load_j == words - 1):
                m.d.sync += [load_j.eq(0), load_nz.eq(0), occ.bit_select(load_px, 1).eq(nz),
                             load_px.eq(Mux(load_px == pixels - 1, 0, load_px + 1))]
            with m.Else():
                m.d.sync += [load_j.eq(load_j + 1), load_nz.eq(nz)]

        # --- walk phase. Three windows are in flight: the current one (its counters, the tap
        # being walked and the occupied taps after it), window `nwin` (the next one: its flags
        # and base address, registered) and window `n` (the one after: its position, kept by
        # running sums, from which one shifter reads its flags). No index arithmetic.
        oy = Signal(range(self.out_height))
        ox = Signal(range(self.out_width))
        j = Signal(range(words))
        end_col = ox == self.out_width - 1
        end_line = oy == self.out_height - 1

        taps = k * k
        low = p * w + p
        occ_ext = Cat(Const(0, low), occ, Const(0, (p + s + k) * w + k))
        base_shape = range(-p * (row + words), depth + s * (row + words))
        base0 = -p * (row + words)

        n_ox = Signal(range(self.out_width))
        n_oy = Signal(range(self.out_height))
        # (below, x0 = n_ox * s - p and y0 = n_oy * s - p: the window's top left input pixel)
        n_at = Signal(range(len(occ_ext)))                   # y0 * w + x0 + low
        n_row_at = Signal.like(n_at)                         # y0 * w - p + low
        n_base = Signal(base_shape, init=base0)              # y0 * row + x0 * words
        n_row_base = Signal(base_shape, init=base0)          # y0 * row - p * words

        def inside(first, size):
            """Mask of the offsets d < k with ``first + d`` in ``[0, size)``."""
            return Const(sum(1 << d for d in range(k) if 0 <= first + d < size), k)
        # which columns and rows of window n are inside the frame: constant tables indexed by
        # its position (no comparator between the counters and the flags)
        x_in = Signal(k)
        y_in = Signal(k)
        m.d.comb += [
            x_in.eq(Array(inside(x * s - p, w) for x in range(self.out_width))[n_ox]),
            y_in.eq(Array(inside(y * s - p, h) for y in range(self.out_height))[n_oy]),
        ]
        cut = occ_ext.bit_select(n_at, (k - 1) * w + k)
        n_flags = Signal(taps)                               # occupied taps (0: padding)
        m.d.comb += n_flags.eq(Cat(*[
            cut[r * w:r * w + k] & x_in & y_in[r].replicate(k)
            for r in range(k)]))

        nwin = Signal(taps)
        nwin_base = Signal(base_shape, init=base0)

        # current window: base address, the tap walked (`have`: there is one; its offset and
        # tag from constant tables) and `rest`, its occupied taps after that one
        w_base = Signal(base_shape, init=base0)
        have = Signal()
        c_off = Signal(range((k - 1) * (row + words) + 1))
        c_tag = Signal(self._tag_width)
        rest = Signal(taps)
        primed = Signal(range(3))

        offsets = [(t // k) * row + (t % k) * words for t in range(taps)]
        tags = [(t * self._tag_step) % (1 << self._tag_width) for t in range(taps)]

        def first_tap(flags, name):
            """Statements making the lowest tap of ``flags`` the current one."""
            pick = Signal(taps, name=f"{name}_pick")
            # a parallel priority select (no carry chain): tap t if no lower tap is set
            m.d.comb += pick.eq(Cat(*[flags[t] & ~flags[:t].any() if t else flags[0]
                                      for t in range(taps)]))

            def table(values, width):     # AND-OR with the one-hot pick
                return Cat(*[Cat(*[pick[t] & ((v >> b) & 1) for t, v in enumerate(values)])
                             .any() for b in range(width)])
            return [c_off.eq(table(offsets, len(c_off))),
                    c_tag.eq(table(tags, self._tag_width)), rest.eq(flags & ~pick)]

        to_next_tap = first_tap(rest, "rest")
        to_next_window = first_tap(nwin, "nwin") + [have.eq(nwin.any()), w_base.eq(nwin_base),
                                                    nwin.eq(n_flags), nwin_base.eq(n_base)]
        more = rest.any()
        end_word = (j == words - 1) | ~have
        end_window = ~have | (end_word & ~more)
        end_row = end_window & end_col
        end_frame = end_row & end_line

        advance = Signal()
        with m.If(advance):
            m.d.sync += to_next_window
            with m.If(n_ox == self.out_width - 1):
                m.d.sync += n_ox.eq(0)
                with m.If(n_oy == self.out_height - 1):
                    m.d.sync += [n_oy.eq(0), n_row_at.eq(0), n_at.eq(0),
                                 n_row_base.eq(base0), n_base.eq(base0)]
                with m.Else():
                    m.d.sync += [n_oy.eq(n_oy + 1),
                                 n_row_at.eq(n_row_at + s * w), n_at.eq(n_row_at + s * w),
                                 n_row_base.eq(n_row_base + s * row),
                                 n_base.eq(n_row_base + s * row)]
            with m.Else():
                m.d.sync += [n_ox.eq(n_ox + 1), n_at.eq(n_at + s),
                             n_base.eq(n_base + s * words)]

        # Two register stages after the counters: f (the memory read in flight, with its
        # context) and the output register, which takes the memory's data as it is (no logic
        # after the block RAM's clock-to-output delay); the closing zero word is zeroed after
        # it, by an AND the next unit's input logic absorbs. Then a skid register `k`: it takes
        # the output word when the next unit does not, so the pipeline advances on registered
        # state only (`o.ready`, combinational in the next unit, reaches no counter).
        f_valid = Signal()
        f_inside = Signal()
        f_last = Signal()
        f_tag = Signal(self._tag_width)
        o_valid = Signal()
        o_inside = Signal()
        o_last = Signal()
        o_tag = Signal(self._tag_width)
        if distributed:
            o_data = Signal(self._word_width, reset_less=True)
        else:
            o_data = frame.r_data
        k_valid = Signal()
        k_data = Signal(self._word_width, reset_less=True)
        k_last = Signal(reset_less=True)
        k_tag = Signal(self._tag_width, reset_less=True)
        o_word = o_data & o_inside.replicate(self._word_width)
        emit = f_valid & (~o_valid | ~k_valid)
        issue = walking & (primed == 2) & (~f_valid | emit)
        addr = Signal(base_shape)
        m.d.comb += [addr.eq(w_base + c_off + j),
                     self.o.valid.eq(o_valid | k_valid),
                     self.o.payload.data.eq(Mux(k_valid, k_data, o_word)),
                     self.o.payload.last.eq(Mux(k_valid, k_last, o_last)),
                     self.o.payload.tag.eq(Mux(k_valid, k_tag, o_tag))]
        with m.If(k_valid):
            with m.If(self.o.ready):
                m.d.sync += k_valid.eq(0)
        with m.Elif(o_valid & ~self.o.ready):
            m.d.sync += [k_valid.eq(1), k_data.eq(o_word), k_last.eq(o_last), k_tag.eq(o_tag)]
        if distributed:
            # LUT RAM: register the address at issue, read during stage f
            f_addr = Signal.like(read.addr)
            m.d.comb += read.addr.eq(f_addr)
            with m.If(issue):
                m.d.sync += f_addr.eq(addr)
            with m.If(emit):
                m.d.sync += o_data.eq(read.data)
        else:
            m.d.comb += [frame.r_addr.eq(addr), frame.r_en.eq(issue), frame.o_en.eq(emit)]
        with m.If(emit):
            m.d.sync += [o_valid.eq(1), o_inside.eq(f_inside), o_last.eq(f_last),
                         o_tag.eq(f_tag)]
        with m.Elif(~k_valid):
            # the word went to the next unit or into `k`
            m.d.sync += o_valid.eq(0)

        # A frame's walk starts with two priming steps (windows 0 and 1 into the pipeline).
        with m.If(walking & (primed != 2)):
            m.d.sync += primed.eq(primed + 1)
            m.d.comb += advance.eq(1)
        with m.If(issue):
            m.d.sync += [f_valid.eq(1), f_inside.eq(have), f_last.eq(end_window),
                         f_tag.eq(c_tag)]
            m.d.sync += j.eq(Mux(end_word, 0, j + 1))
            with m.If(end_word & more):
                m.d.sync += to_next_tap
            with m.If(end_window & ~end_frame):
                m.d.comb += advance.eq(1)
            with m.If(end_window):
                m.d.sync += ox.eq(ox + 1)
            with m.If(end_row):
                m.d.sync += [ox.eq(0), oy.eq(oy + 1)]
            with m.If(end_frame):
                # the next frame starts from window 0 again
                m.d.sync += [oy.eq(0), walking.eq(0), primed.eq(0),
                             n_ox.eq(0), n_oy.eq(0), n_at.eq(0),
                             n_row_at.eq(0), n_base.eq(base0), n_row_base.eq(base0)]
        with m.Elif(emit):
            m.d.sync += f_valid.eq(0)
        return m
