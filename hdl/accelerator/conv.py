"""The CONV executor: a programmable, event-driven convolution (dense or depthwise) from the
``spikes`` memory to the ``values`` memory, every shape a runtime field of the descriptor."""

from dataclasses import dataclass

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory as LibMemory

from spikeforge.contract.program import memory_map
from spikeforge.contract.sizes import accumulator_bits

from ..engine.encoder import SpikeEncoder
from ..params import check_int, check_power_of_two
from ..memory import lut_ram_attrs
from ..stream import Queue, SkidBuffer
from .ports import READ_LATENCY, address_bits, executor_signature

__all__ = ["ConvExecutor"]

#: Entries of the ring buffer between the window scanner and the spike encoder.
RING_DEPTH = 128
#: Records (runs of ring entries) the scanner may have queued ahead of the reader.
RECORD_DEPTH = 16
#: Most entries of one record when the window is not replayed.
CHUNK = 16
#: Most words of a window (``kernel ** 2 * a_token``) for the window to be replayed.
REPLAY_WORDS = RING_DEPTH - 8
#: Cycles of the setup phase (the products of descriptor fields, by shift and add).
SETUP_CYCLES = 9


class _Product:
    """``x * y`` of a wide ``x`` and a narrow ``y`` (both signals), by shift and add, two bits
    of ``y`` per cycle: :meth:`load` sets it up, each :meth:`step` consumes two bits; after
    ``ceil(bits of y / 2)`` steps, ``value`` holds the product modulo ``2**width``."""

    def __init__(self, width, y_bits, name):
        self.value = Signal(width, name=f"{name}")
        self._x = Signal(width, name=f"{name}_x")
        self._y = Signal(y_bits + (y_bits & 1), name=f"{name}_y")

    def load(self, x, y):
        return [self.value.eq(0), self._x.eq(x), self._y.eq(y)]

    def step(self):
        return [self.value.eq(self.value + Mux(self._y[0], self._x, 0) +
                              Mux(self._y[1], self._x << 1, 0)),
                self._x.eq(self._x << 2), self._y.eq(self._y >> 2)]


@dataclass(frozen=True)
class _Ring:
    """The scanner's ring of nonzero words: its ``memory``, ``wr`` (the next entry written, with
    one wrap bit) and ``base`` (the oldest entry kept, driven by the reader)."""
    memory: object
    wr: object
    base: object


class ConvExecutor(wiring.Component):
    """Executes one CONV descriptor, bit-exact to ``Accelerator._conv`` of
    :mod:`spikeforge.golden.accelerator` (with its ``read`` and ``write``).

    Semantics
        For every output step ``t`` (``in_steps`` of them, or 1 when ``a_step`` is 0: a
        time-invariant input), every output token ``(oy, ox)`` in raster order and every lane
        group ``g``: ``acc = biases[bias_base + g]`` plus, over the in-bounds taps ``(ky, kx)``
        (``iy = oy * stride - padding + ky``, likewise ``ix``), the planes ``b`` and the words
        ``w`` of the input token, word ``spikes[a_base + t * a_step + (iy * in_width + ix) *
        a_token + b * in_plane_words + w]``: each set bit (channel ``c = w * word_bits + bit``,
        ``c < in_channels``) adds ``weights[weight_base + ((tap * in_channels + c) <<
        group_bits | g)] << b`` to every lane. Depthwise (``depthwise``: ``groups == C_in ==
        C_out``): the weight row is the tap, only the ``lanes``-bit slice of channels ``g *
        lanes ..`` is used and lane ``l`` adds its weight iff its channel's bit is set. The sum
        (exact: the lanes are :func:`~spikeforge.contract.sizes.accumulator_bits` wide for the
        configuration's largest fan-in, input bits and widths) is saturated to signed
        ``out_bits`` (a runtime width) and written as row ``dst_base + t * dst_step + n *
        dst_token + g`` of ``values``; lanes past ``out_channels`` are 0. The input is unsigned
        bit-planes in ``spikes`` (``src_mem``), the output goes to ``values`` (``dst_mem``).

    Structure (every address by counters and adds; the products of descriptor fields the walk
    needs, such as ``in_width * a_token`` or ``stride * (kernel * in_channels << group_bits)``,
    are formed by shift and add in a setup phase of :data:`SETUP_CYCLES` cycles)
        * *token generator*: a three-stage pipeline producing, one per cycle, each output
          token's window: the address of its first in-bounds word, its first weight row, and its
          in-bounds rows and columns (taps off the input are never visited);
        * *scanner*: reads the window's words one per cycle, as long as the ring and the
          record queue have room for every read in flight. A window is *replayed* when the
          layer is not depthwise and ``kernel ** 2 * a_token <= ``:data:`REPLAY_WORDS` (a table
          per kernel, so a whole window fits in the ring): it is read once for all its lane
          groups; otherwise the group loop is inside the token and the window is read again
          for each group. Each word comes back masked (channels past ``in_channels``;
          depthwise: the group's slice) and the nonzero ones are written into the *ring*
          (:data:`RING_DEPTH` entries in LUT RAM: the word, its first weight row and plane);
          a *record* (its first and last entry, or empty) goes into a queue of
          :data:`RECORD_DEPTH` at every group's end (replay: the window's end) and, without
          replay, after :data:`CHUNK` entries;
        * the *reader* plays each record, one entry per cycle with no gap between records:
          once, or (replay) once per lane group ``g``, adding ``g`` to the weight rows; the end
          of each pass (without replay: of a record closing a group) marks the group's last
          entry, and an empty record plays one empty entry. A record's entries are freed once
          its last pass is read;
        * a registered skid buffer, then the spike encoder
          (:class:`~spikeforge.hdl.engine.encoder.SpikeEncoder`) emitting one set bit per cycle
          (an empty entry: one empty event);
        * the *adder pipeline* (never stalls): weight address ``wptr + g + (bit <<
          group_bits)`` (shift, then the two adds, in separate stages), weight-row and bias
          reads, the addend (masked, shifted by the plane) registered, ``lanes`` adders that
          start from the bias at a group's first event, and at its last event the sum goes to
          a saturation stage (the in-range test against the runtime width, then the clamp)
          and is written, while the next group accumulates: no bubble between groups.

    Cycles
        About ``max(words read, events + empty groups)`` per layer, where the scanner reads
        ``in-bounds taps * in_bits * in_plane_words`` words (depthwise ``* 1`` instead of
        ``* in_plane_words``) per token, once per token when replayed and once per token and
        group otherwise, and the events are the set input bits of every window and group
        (depthwise: the nonzero slices), plus a constant of about 40 cycles (setup and
        pipeline fill). That is the cost model's bound ``max(events, tokens) * lane_groups``
        per step whenever the words read do not dominate: they do on inputs with few set bits
        per word, such as the multi-bit stem or an almost silent input.

    Parameters
    ----------
    config : :class:`spikeforge.contract.configs.Config`
        ``lanes`` and ``word_bits`` must be powers of two with ``word_bits >= lanes``.

    Members
    -------
    desc, start, busy, spikes, weights, biases, values
        :func:`~spikeforge.hdl.accelerator.ports.executor_signature` with the memories
        ``spikes``, ``weights``, ``biases`` (read) and ``values`` (write).
    """

    MEMORIES = ("spikes", "weights", "biases", "values")

    def __init__(self, config):
        self._config = config
        lanes = check_power_of_two("lanes", config.lanes)
        word_bits = check_power_of_two("word_bits", config.word_bits)
        if word_bits < lanes:
            raise ValueError(f"word_bits ({word_bits}) must be at least lanes ({lanes})")
        check_int("max_kernel", config.max_kernel, min=1, max=15)
        super().__init__(executor_signature(config, self.MEMORIES))

    config = property(lambda self: self._config)

    @property
    def sum_bits(self):
        """Width of a lane's partial sum: exact for every layer the configuration holds."""
        c = self._config
        return max(c.value_bits, accumulator_bits(
            fan_in=c.max_kernel ** 2 * c.max_channels, weight_bits=c.weight_bits,
            input_bits=c.max_input_bits, bias_bits=c.bias_bits))

    def elaborate(self, platform):
        m = Module()
        c = self._config
        specs = memory_map(c)
        self._lanes, self._word_bits = c.lanes, c.word_bits
        self._sa = address_bits(specs["spikes"].depth)
        self._wa = address_bits(specs["weights"].depth)
        self._ba = address_bits(specs["biases"].depth)
        self._va = address_bits(specs["values"].depth)
        self._plane_bits = max(1, (c.max_input_bits - 1).bit_length())
        self._stored = data.StructLayout({
            "data": unsigned(c.word_bits), "wptr": unsigned(self._wa),
            "plane": unsigned(self._plane_bits)})
        self._entry = data.StructLayout({
            "data": unsigned(c.word_bits), "wptr": unsigned(self._wa),
            "plane": unsigned(self._plane_bits), "glast": 1, "mask": unsigned(c.lanes),
            "g": unsigned(8)})
        self._tag = data.StructLayout({
            "wptr": unsigned(self._wa), "plane": unsigned(self._plane_bits), "glast": 1,
            "mask": unsigned(c.lanes), "g": unsigned(8)})
        s = self._setup(m)
        tokens = self._tokens(m, s)
        ring, records = self._scanner(m, s, tokens, platform)
        entries = self._reader(m, s, ring, records)
        events = self._encoder(m, entries)
        self._adders(m, s, events)
        return m

    # -- setup: control and the descriptor's derived values ------------------------------------
    def _setup(self, m):
        """``busy``, the setup phase and the per-descriptor constants (a namespace ``s``)."""
        c, d = self._config, self.desc
        lanes, word_bits = self._lanes, self._word_bits
        sa, wa = self._sa, self._wa

        class S:
            pass
        s = S()
        s.phase = Signal(range(SETUP_CYCLES + 1))       # setup cycle; SETUP_CYCLES: running
        s.go = Signal()                                  # one-cycle pulse: start the walk
        s.running = Signal()
        m.d.sync += s.go.eq(self.busy & (s.phase == SETUP_CYCLES - 2))
        with m.If(self.start & ~self.busy):
            m.d.sync += [self.busy.eq(1), s.phase.eq(0), s.running.eq(0)]
        with m.Elif(self.busy & (s.phase != SETUP_CYCLES)):
            m.d.sync += s.phase.eq(s.phase + 1)
        with m.If(s.go):
            m.d.sync += s.running.eq(1)

        # Plain derived values (registered once, during setup).
        s.dw = Signal()
        s.gb = Signal(4)
        s.last_step = Signal(5)             # output steps - 1
        s.last_g = Signal(8)
        s.last_b = Signal(5)
        s.last_w = Signal(6)
        s.last_ox = Signal(7)
        s.last_oy = Signal(7)
        s.last_n = Signal(14)
        s.w_single = Signal()               # one word per plane (or depthwise)
        s.b_single = Signal()               # one plane
        s.g_single = Signal()               # one lane group
        s.replay = Signal()                 # scan each window once, replay it per lane group
        s.scan_single = Signal()            # the scanner's group loop has one pass
        s.wlast_in = Signal(7)              # in_width - 1
        s.hlast_in = Signal(7)
        s.dstep = Signal(sa)                # spike word step inside a tap: 1, depthwise ipw
        s.wc = Signal(wa)                   # weight offset of one tap: C_in << gb (dw 1 << gb)
        s.wbw = Signal(wa)                  # weight offset of one word: word_bits << gb
        s.tail = Signal(word_bits)          # channel mask of a plane's last word
        s.lane_tail = Signal(lanes)         # lane mask of the last lane group
        s.top = Signal(self.sum_bits)       # bits out_bits - 1 .. of a sum
        s.hi = Signal(signed(c.value_bits))
        tail = d.in_channels[:(word_bits - 1).bit_length()]
        lane_tail = d.out_channels[:(lanes - 1).bit_length()]
        top = Cat(*[d.out_bits <= i + 1 for i in range(self.sum_bits)])
        # replay iff not depthwise and kernel ** 2 * a_token <= REPLAY_WORDS (a table per kernel)
        a_limit = Signal(range(REPLAY_WORDS + 1))
        with m.Switch(d.kernel):
            for k in range(1, 16):
                with m.Case(k):
                    m.d.comb += a_limit.eq(REPLAY_WORDS // (k * k))
        replay = ~d.depthwise & (d.a_token <= a_limit)
        wc = Signal(wa)
        m.d.comb += wc.eq(Mux(d.depthwise, Const(1, 1) << d.group_bits,
                              d.in_channels << d.group_bits))
        with m.If(self.busy & (s.phase == 0)):
            m.d.sync += [
                s.dw.eq(d.depthwise), s.gb.eq(d.group_bits),
                s.last_step.eq(Mux(d.a_step == 0, 0, d.in_steps - 1)),
                s.last_g.eq(d.lane_groups - 1), s.last_b.eq(d.in_bits - 1),
                s.last_w.eq(d.in_plane_words - 1),
                s.last_ox.eq(d.out_width - 1), s.last_oy.eq(d.out_height - 1),
                s.last_n.eq(d.out_tokens - 1),
                s.w_single.eq(d.depthwise | (d.in_plane_words == 1)),
                s.b_single.eq(d.in_bits == 1), s.g_single.eq(d.lane_groups == 1),
                s.replay.eq(replay), s.scan_single.eq(replay | (d.lane_groups == 1)),
                s.wlast_in.eq(d.in_width - 1), s.hlast_in.eq(d.in_height - 1),
                s.dstep.eq(Mux(d.depthwise, d.in_plane_words, 1)),
                s.wc.eq(wc),
                s.wbw.eq(Const(word_bits) << d.group_bits),
                s.tail.eq(Cat(*[(tail == 0) | (tail > i) for i in range(word_bits)])),
                s.lane_tail.eq(Cat(*[(lane_tail == 0) | (lane_tail > i)
                                     for i in range(lanes)])),
                s.top.eq(top),
                s.hi.eq(Cat(*[d.out_bits > i + 1 for i in range(c.value_bits)])),
            ]

        # Products: phase 1 (loaded in setup cycle 0, 4 steps in 1..4), phase 2 (loaded in 5,
        # 2 steps in 6..7); the walk starts in cycle 8 (``go``).
        s.rs = _Product(sa, 7, "rs")        # in_width * a_token: a row of input tokens
        s.wk = _Product(wa, 4, "wk")        # kernel * wc: a row of taps
        s.sat = _Product(sa, 3, "sat")      # stride * a_token
        s.pat = _Product(sa, 3, "pat")      # padding * a_token
        s.swc = _Product(wa, 3, "swc")      # stride * wc
        s.pwc = _Product(wa, 3, "pwc")      # padding * wc
        s.srs = _Product(sa, 3, "srs")      # stride * rs
        s.prs = _Product(sa, 3, "prs")      # padding * rs
        s.swk = _Product(wa, 3, "swk")      # stride * wk
        s.pwk = _Product(wa, 3, "pwk")      # padding * wk
        first = (s.rs, s.wk, s.sat, s.pat, s.swc, s.pwc)
        second = (s.srs, s.prs, s.swk, s.pwk)
        with m.If(self.busy):
            with m.Switch(s.phase):
                with m.Case(0):
                    m.d.sync += [*s.rs.load(d.a_token, d.in_width), *s.wk.load(wc, d.kernel),
                                 *s.sat.load(d.a_token, d.stride),
                                 *s.pat.load(d.a_token, d.padding),
                                 *s.swc.load(wc, d.stride), *s.pwc.load(wc, d.padding)]
                with m.Case(1, 2, 3, 4):
                    m.d.sync += [stmt for p in first for stmt in p.step()]
                with m.Case(5):
                    m.d.sync += [*s.srs.load(s.rs.value, d.stride),
                                 *s.prs.load(s.rs.value, d.padding),
                                 *s.swk.load(s.wk.value, d.stride),
                                 *s.pwk.load(s.wk.value, d.padding)]
                with m.Case(6, 7):
                    m.d.sync += [stmt for p in second for stmt in p.step()]
        return s

    # -- token generator -----------------------------------------------------------------------
    def _tokens(self, m, s):
        """The windows of the output tokens in order (steps, rows, columns), one per cycle
        through three registered stages into a small queue of windows (so the scanner's
        decision never reaches the generator's registers). Returns a namespace: ``valid``,
        ``take`` (driven by the scanner), ``pending`` (windows still to come), the window."""
        d = self.desc
        sa, wa = self._sa, self._wa
        coord = signed(12)

        class T:
            pass
        out = T()
        # Stage 0: the position and the running (unclamped) offsets of the next token.
        active = Signal()
        t = Signal(5)
        oy = Signal(7)
        ox = Signal(7)
        f_t, f_oy, f_ox = Signal(), Signal(), Signal()
        ix0, ixe, iy0, iye = (Signal(coord, name=n) for n in ("ix0", "ixe", "iy0", "iye"))
        u_col = Signal(sa)                  # ix0 * a_token
        u_wcol = Signal(wa)                 # -ix0 * wc
        u_row = Signal(sa)                  # iy0 * rs
        u_wrow = Signal(wa)                 # -iy0 * wk
        step_ptr = Signal(sa)               # a_base + t * a_step
        # Stage 1: clamped to the input.
        v1 = Signal()
        col_off = Signal(sa)
        wcol_off = Signal(wa)
        row_ptr = Signal(sa)
        wrow_ptr = Signal(wa)
        ix_lo, ix_hi, iy_lo, iy_hi = (Signal(coord, name=n)
                                      for n in ("ix_lo", "ix_hi", "iy_lo", "iy_hi"))
        # Stage 2: the window (columns and rows in bounds - 1; void: none).
        window = data.StructLayout({"first_sp": unsigned(sa), "first_w": unsigned(wa),
                                    "ncols": 4, "nrows": 4, "void": 1})
        v2 = Signal()
        w2 = Signal(window)
        m.submodules.windows = windows = Queue(shape=window, depth=4)

        neg_p = -d.padding
        k1 = d.kernel - 1
        col_start = [ix0.eq(neg_p), ixe.eq(k1 - d.padding), u_col.eq(-s.pat.value),
                     u_wcol.eq(s.pwc.value)]
        row_start = [iy0.eq(neg_p), iye.eq(k1 - d.padding), u_row.eq(-s.prs.value),
                     u_wrow.eq(s.pwk.value)]
        # (ox, oy, t count down to 0; f_*: at the last one)
        ox_start = [ox.eq(s.last_ox), f_ox.eq(s.last_ox == 0)]
        oy_start = [oy.eq(s.last_oy), f_oy.eq(s.last_oy == 0)]
        with m.If(s.go):
            m.d.sync += [active.eq(1), t.eq(s.last_step), f_t.eq(s.last_step == 0),
                         *oy_start, *ox_start, step_ptr.eq(d.a_base),
                         *col_start, *row_start, v1.eq(0), v2.eq(0)]

        # The stages move together whenever the queue has room (a registered condition).
        move = Signal()
        m.d.comb += [move.eq(s.running & windows.i.ready),
                     windows.i.valid.eq(move & v2), windows.i.payload.eq(w2)]
        with m.If(move):
            with m.If(active):
                with m.If(~f_ox):
                    m.d.sync += [ox.eq(ox - 1), f_ox.eq(ox == 1),
                                 ix0.eq(ix0 + d.stride), ixe.eq(ixe + d.stride),
                                 u_col.eq(u_col + s.sat.value),
                                 u_wcol.eq(u_wcol - s.swc.value)]
                with m.Else():
                    m.d.sync += [*ox_start, *col_start]
                    with m.If(~f_oy):
                        m.d.sync += [oy.eq(oy - 1), f_oy.eq(oy == 1),
                                     iy0.eq(iy0 + d.stride),
                                     iye.eq(iye + d.stride), u_row.eq(u_row + s.srs.value),
                                     u_wrow.eq(u_wrow - s.swk.value)]
                    with m.Else():
                        m.d.sync += [*oy_start, *row_start]
                        with m.If(~f_t):
                            m.d.sync += [t.eq(t - 1), f_t.eq(t == 1),
                                         step_ptr.eq(step_ptr + d.a_step)]
                        with m.Else():
                            m.d.sync += active.eq(0)
            wlast = Cat(s.wlast_in, Const(0, 1)).as_signed()
            hlast = Cat(s.hlast_in, Const(0, 1)).as_signed()
            m.d.sync += [
                v1.eq(active),
                col_off.eq(Mux(ix0[-1], 0, u_col)),
                wcol_off.eq(Mux(ix0[-1], u_wcol, 0)),
                row_ptr.eq(step_ptr + Mux(iy0[-1], 0, u_row)),
                wrow_ptr.eq(d.weight_base + Mux(iy0[-1], u_wrow, 0)),
                ix_lo.eq(Mux(ix0[-1], 0, ix0)), ix_hi.eq(Mux(ixe > wlast, wlast, ixe)),
                iy_lo.eq(Mux(iy0[-1], 0, iy0)), iy_hi.eq(Mux(iye > hlast, hlast, iye)),
            ]
            ncols = ix_hi - ix_lo
            nrows = iy_hi - iy_lo
            void = ncols[-1] | nrows[-1]
            m.d.sync += [
                v2.eq(v1),
                w2.first_sp.eq(row_ptr + col_off),
                w2.first_w.eq(wrow_ptr + wcol_off),
                w2.ncols.eq(Mux(void, 0, ncols)), w2.nrows.eq(Mux(void, 0, nrows)),
                w2.void.eq(void),
            ]
        out.valid = windows.o.valid
        out.take = windows.o.ready
        out.window = windows.o.payload
        out.pending = Signal()
        m.d.comb += out.pending.eq(active | v1 | v2 | windows.level.any())
        return out

    # -- scanner -------------------------------------------------------------------------------
    def _scanner(self, m, s, tok, platform):
        """Reads every window's words, one per cycle while there is room, writes the nonzero
        ones into the ring and queues the records (see the class docstring). Returns the ring
        (a :class:`_Ring`) and the record queue.

        Every decision is taken from registered flags: ``room`` (the ring and the record queue
        have room for one more read, from the previous cycle's levels and reads in flight,
        with one entry of margin), and per loop counter a flag "this is its last value"."""
        d = self.desc
        lanes, word_bits = self._lanes, self._word_bits
        sa, wa = self._sa, self._wa
        slices = word_bits // lanes
        slice_bits = max(1, (slices - 1).bit_length())
        win = tok.window

        cur = Signal()                      # a token is being scanned
        # loop counters (down) and their "last" flags
        g_left, r_left, c_left, b_left, w_left = (
            Signal(n, name=name) for n, name in ((8, "g_left"), (4, "r_left"), (4, "c_left"),
                                                 (5, "b_left"), (6, "w_left")))
        f_g, f_r, f_c, f_b, f_w = (Signal(name=n) for n in ("f_g", "f_r", "f_c", "f_b", "f_w"))
        nrows = Signal(4)
        ncols = Signal(4)
        void = Signal()
        slc = Signal(slice_bits)            # depthwise: the group's slice of its word
        grp_sp, row_sp, col_sp, word_sp = (Signal(sa, name=f"{n}_sp")
                                           for n in ("grp", "row", "col", "word"))
        grp_w, row_w, col_w, word_w = (Signal(wa, name=f"{n}_w")
                                       for n in ("grp", "row", "col", "word"))

        pb = (RING_DEPTH - 1).bit_length()
        m.submodules.ring = memory = LibMemory(shape=self._stored, depth=RING_DEPTH, init=[],
                                               attrs=lut_ram_attrs(platform))
        ring = _Ring(memory, wr=Signal(pb + 1, name="wr"), base=Signal(pb + 1, name="base"))
        record = data.StructLayout({"start": unsigned(pb + 1), "last": unsigned(pb + 1),
                                    "empty": 1, "single": 1, "glast": 1})
        m.submodules.records = records = Queue(shape=record, depth=RECORD_DEPTH)

        # Reads in flight, by cycles since the issue: the read (1 .. READ_LATENCY), the raw
        # word registered (READ_LATENCY + 1), masked (+ 2), flagged (+ 3).
        meta = data.StructLayout({"wptr": unsigned(wa), "plane": unsigned(self._plane_bits),
                                  "tail": 1, "slice": unsigned(slice_bits), "gl": 1,
                                  "void": 1})
        flight = READ_LATENCY + 3
        v = [Signal(name=f"v{i}") for i in range(1, flight + 1)]
        mt = [Signal(meta, name=f"m{i}") for i in range(1, flight + 1)]
        # room: the ring's entries and the reads in flight (each may become an entry and close
        # a record), from registers one cycle old, leave space for the reads issued while
        # room is that old (two) and the next one.
        room = Signal()
        used = Signal(pb + 1)
        flying = Signal(range(flight + 1))
        levels = Signal.like(records.level)
        m.d.sync += [used.eq(ring.wr - ring.base), flying.eq(sum(v)), levels.eq(records.level)]
        m.d.sync += room.eq((used + flying <= RING_DEPTH - 4) &
                            (levels + flying <= RECORD_DEPTH - 4))
        issue = Signal()
        m.d.comb += issue.eq(cur & room)

        last_j = void | (f_b & f_w)
        gend = last_j & f_c & f_r
        slice_wrap = s.dw & (slc == slices - 1)

        m.d.comb += [self.spikes.r_addr.eq(word_sp), self.spikes.r_en.eq(issue)]
        m.d.sync += [
            v[0].eq(issue),
            mt[0].wptr.eq(word_w), mt[0].plane.eq(s.last_b - b_left),
            mt[0].tail.eq(~s.dw & f_w), mt[0].slice.eq(slc),
            mt[0].gl.eq(gend), mt[0].void.eq(void),
        ]
        m.d.sync += [v[i].eq(v[i - 1]) for i in range(1, flight)]
        m.d.sync += [mt[i].eq(mt[i - 1]) for i in range(1, flight)]

        load = Signal()
        m.d.comb += tok.take.eq(load)
        # (re)starting a loop level: its counter and flag from the registered counts
        w_start = [w_left.eq(s.last_w), f_w.eq(s.w_single)]
        b_start = [b_left.eq(s.last_b), f_b.eq(s.b_single), *w_start]
        c_start = [c_left.eq(ncols), f_c.eq(ncols == 0), *b_start]
        r_start = [r_left.eq(nrows), f_r.eq(nrows == 0), *c_start]

        with m.If(issue):
            with m.If(~last_j):
                m.d.sync += word_sp.eq(word_sp + s.dstep)
                with m.If(f_w):
                    m.d.sync += [*w_start, b_left.eq(b_left - 1), f_b.eq(b_left == 1),
                                 word_w.eq(col_w)]
                with m.Else():
                    m.d.sync += [w_left.eq(w_left - 1), f_w.eq(w_left == 1),
                                 word_w.eq(word_w + s.wbw)]
            with m.Elif(~f_c):
                nsp = col_sp + d.a_token
                nw = col_w + s.wc
                m.d.sync += [col_sp.eq(nsp), word_sp.eq(nsp), col_w.eq(nw), word_w.eq(nw),
                             c_left.eq(c_left - 1), f_c.eq(c_left == 1), *b_start]
            with m.Elif(~f_r):
                nsp = row_sp + s.rs.value
                nw = row_w + s.wk.value
                m.d.sync += [row_sp.eq(nsp), col_sp.eq(nsp), word_sp.eq(nsp),
                             row_w.eq(nw), col_w.eq(nw), word_w.eq(nw),
                             r_left.eq(r_left - 1), f_r.eq(r_left == 1), *c_start]
            with m.Elif(~f_g):
                nsp = grp_sp + slice_wrap
                nw = grp_w + 1
                m.d.sync += [grp_sp.eq(nsp), row_sp.eq(nsp), col_sp.eq(nsp), word_sp.eq(nsp),
                             grp_w.eq(nw), row_w.eq(nw), col_w.eq(nw), word_w.eq(nw),
                             g_left.eq(g_left - 1), f_g.eq(g_left == 1), *r_start,
                             slc.eq(Mux(slice_wrap, 0, slc + 1))]
            with m.Else():
                m.d.comb += load.eq(tok.valid)
                m.d.sync += cur.eq(tok.valid)
        with m.Elif(~cur):
            m.d.comb += load.eq(tok.valid)
            m.d.sync += cur.eq(tok.valid)
        with m.If(load):
            m.d.sync += [grp_sp.eq(win.first_sp), row_sp.eq(win.first_sp),
                         col_sp.eq(win.first_sp), word_sp.eq(win.first_sp),
                         grp_w.eq(win.first_w), row_w.eq(win.first_w),
                         col_w.eq(win.first_w), word_w.eq(win.first_w),
                         nrows.eq(win.nrows), ncols.eq(win.ncols), void.eq(win.void),
                         r_left.eq(win.nrows), f_r.eq(win.nrows == 0),
                         c_left.eq(win.ncols), f_c.eq(win.ncols == 0),
                         b_left.eq(s.last_b), f_b.eq(s.b_single),
                         w_left.eq(s.last_w), f_w.eq(s.w_single),
                         g_left.eq(s.last_g), f_g.eq(s.scan_single), slc.eq(0)]

        # The word arrives READ_LATENCY cycles after its read: registered as it is, masked
        # (channels past in_channels; depthwise: the group's slice), its nonzero flag.
        r3 = Signal(word_bits)
        r4 = Signal(word_bits)
        r5 = Signal(word_bits)
        nz5 = Signal()
        m.d.sync += r3.eq(self.spikes.r_data)
        m3 = mt[READ_LATENCY]
        if slices > 1:
            part = Signal(lanes)
            with m.Switch(m3.slice):
                for i in range(slices):
                    with m.Case(i):
                        m.d.comb += part.eq(r3[i * lanes:(i + 1) * lanes])
        else:
            part = r3[:lanes]
        masked = Mux(s.dw, part, r3 & Mux(m3.tail, s.tail, Const(-1, word_bits)))
        m.d.sync += r4.eq(Mux(m3.void, 0, masked))
        m.d.sync += [r5.eq(r4), nz5.eq(r4.any())]
        m5 = mt[READ_LATENCY + 2]
        v5 = v[READ_LATENCY + 2]

        # The nonzero words go into the ring; a record closes at each group's end (replay: the
        # window's end) and, without replay, after CHUNK entries.
        keep = v5 & nz5
        wr_last = Signal(pb + 1)            # the last entry written
        c_start = Signal(pb + 1)            # the open record's first entry
        c_has = Signal()                    # the open record has an entry
        c_two = Signal()                    # ... two or more
        c_full = Signal()                   # ... CHUNK - 1 of them, without replay
        c_cnt = Signal(range(CHUNK))
        close = v5 & (m5.gl | (keep & c_full))
        write = ring.memory.write_port()
        m.d.comb += [write.addr.eq(ring.wr[:pb]), write.en.eq(keep),
                     write.data.data.eq(r5), write.data.wptr.eq(m5.wptr),
                     write.data.plane.eq(m5.plane)]
        m.d.comb += [records.i.valid.eq(close),
                     records.i.payload.start.eq(c_start),
                     records.i.payload.last.eq(Mux(keep, ring.wr, wr_last)),
                     records.i.payload.empty.eq(~c_has & ~keep),
                     records.i.payload.single.eq(Mux(keep, ~c_has, ~c_two)),
                     records.i.payload.glast.eq(m5.gl)]
        with m.If(keep):
            m.d.sync += [ring.wr.eq(ring.wr + 1), wr_last.eq(ring.wr)]
        with m.If(close):
            m.d.sync += [c_start.eq(ring.wr + keep), c_has.eq(0), c_two.eq(0), c_cnt.eq(0),
                         c_full.eq(0)]
        with m.Elif(keep):
            m.d.sync += [c_has.eq(1), c_two.eq(c_has), c_cnt.eq(c_cnt + 1),
                         c_full.eq(~s.replay & (c_cnt == CHUNK - 2))]
        with m.If(s.go):
            m.d.sync += [cur.eq(0), ring.wr.eq(0), c_start.eq(0), c_has.eq(0), c_two.eq(0),
                         c_cnt.eq(0), c_full.eq(0)]
        return ring, records

    # -- reader --------------------------------------------------------------------------------
    def _reader(self, m, s, ring, records):
        """Plays the ring's records to the encoder, one entry per cycle: each record once,
        or (replay) once per lane group, the group index ``g`` in the entry and every pass
        closing a group. Returns the stream of entries (a registered output)."""
        pb = (RING_DEPTH - 1).bit_length()
        rec = records.o.payload
        act = Signal()                      # a record is being played
        rd = Signal(pb + 1)
        r_start, r_last = Signal(pb + 1), Signal(pb + 1)
        r_empty, r_single, r_glast = Signal(), Signal(), Signal()
        f_e = Signal()                      # rd is the record's last entry
        p_left = Signal(8)                  # passes left after this one
        f_p = Signal()                      # this is the last pass
        r_g = Signal(8)
        # output stage: the ring's entry (LUT RAM read at rd, registered) and its context
        read = ring.memory.read_port(domain="comb")
        stored = Signal(self._stored)
        ov, o_empty, o_glast = Signal(), Signal(), Signal()
        o_g = Signal(8)
        out = Signal(self._entry)
        adv = Signal()
        take = Signal()
        m.submodules.skid = skid = SkidBuffer(self._entry, registered=True)
        m.d.comb += [adv.eq(~ov | skid.i.ready), read.addr.eq(rd[:pb]),
                     take.eq(adv & records.o.valid & (~act | (f_e & f_p))),
                     records.o.ready.eq(take)]
        m.d.comb += [out.data.eq(Mux(o_empty, 0, Mux(s.dw, 1, stored.data))),
                     out.mask.eq(Mux(o_empty, 0, stored.data[:self._lanes])),
                     out.wptr.eq(stored.wptr), out.plane.eq(Mux(o_empty, 0, stored.plane)),
                     out.glast.eq(o_glast), out.g.eq(o_g),
                     skid.i.valid.eq(ov), skid.i.payload.eq(out)]
        with m.If(adv):
            m.d.sync += [stored.eq(read.data), ov.eq(act), o_empty.eq(r_empty), o_glast.eq(f_e & (s.replay | r_glast)),
                         o_g.eq(r_g)]
            with m.If(act):
                with m.If(~f_e):
                    m.d.sync += [rd.eq(rd + 1), f_e.eq((rd + 1)[:pb] == r_last[:pb])]
                with m.Elif(~f_p):
                    m.d.sync += [rd.eq(r_start), f_e.eq(r_single), p_left.eq(p_left - 1),
                                 f_p.eq(p_left == 1), r_g.eq(r_g + 1)]
                with m.Else():
                    m.d.sync += act.eq(0)
                    with m.If(~r_empty):
                        m.d.sync += ring.base.eq(r_last + 1)
        with m.If(take):
            m.d.sync += [act.eq(1), rd.eq(rec.start), r_start.eq(rec.start),
                         r_last.eq(rec.last), r_empty.eq(rec.empty), r_single.eq(rec.single),
                         r_glast.eq(rec.glast), f_e.eq(rec.single), r_g.eq(0),
                         p_left.eq(Mux(s.replay, s.last_g, 0)),
                         f_p.eq(~s.replay | s.g_single)]
        with m.If(s.go):
            m.d.sync += [act.eq(0), ov.eq(0), ring.base.eq(0)]
        return skid

    # -- encoder -------------------------------------------------------------------------------
    def _encoder(self, m, skid):
        """The spike encoder on the reader's entries: one event per cycle (set bit), or one
        empty event for an empty entry. The reader's registered skid buffer keeps the
        encoder's ready (combinational) out of the reader's counters. Returns the encoder."""
        tag_bits = self._tag.size
        m.submodules.encoder = enc = SpikeEncoder(word_bits=self._word_bits,
                                                  channels=self._word_bits, planes=1, count=1,
                                                  chunk=1, tag_bits=tag_bits)
        entry = skid.o.payload
        tag = Signal(self._tag)
        m.d.comb += [tag.wptr.eq(entry.wptr), tag.plane.eq(entry.plane),
                     tag.glast.eq(entry.glast), tag.mask.eq(entry.mask), tag.g.eq(entry.g)]
        m.d.comb += [enc.i.valid.eq(skid.o.valid), skid.o.ready.eq(enc.i.ready),
                     enc.i.payload.data.eq(entry.data), enc.i.payload.last.eq(1),
                     enc.i.payload.tag.eq(tag), enc.o.ready.eq(1)]
        return enc

    # -- adder pipeline ------------------------------------------------------------------------
    def _adders(self, m, s, enc):
        """Events → weight reads → lane sums → saturation → ``values`` rows (never stalls)."""
        c, d = self._config, self.desc
        lanes, wa = self._lanes, self._wa
        sum_shape = signed(self.sum_bits)
        out = enc.o.payload
        tag = self._tag(out.tag)
        ctl = data.StructLayout({"valid": 1, "null": 1, "first": 1, "glast": 1,
                                 "plane": unsigned(self._plane_bits), "mask": unsigned(lanes)})

        # E1: the encoder's event registered; first = the previous event closed a group.
        e1 = Signal(ctl)
        e1_idx = Signal(range(self._word_bits))
        e1_wptr = Signal(wa)
        e1_g = Signal(8)
        fresh = Signal()
        m.d.sync += [e1.valid.eq(enc.o.valid), e1.null.eq(~out.valid[0]),
                     e1.first.eq(fresh), e1.glast.eq(tag.glast & out.last),
                     e1.plane.eq(tag.plane), e1.mask.eq(Mux(s.dw, tag.mask, -1)),
                     e1_idx.eq(out.addr[0]), e1_wptr.eq(tag.wptr), e1_g.eq(tag.g)]
        with m.If(enc.o.valid):
            m.d.sync += fresh.eq(tag.glast & out.last)
        with m.If(s.go):
            m.d.sync += fresh.eq(1)
        # E2: the bit's row offset, bit << group_bits, and the group's row, wptr + g.
        e2 = Signal(ctl)
        e2_sh = Signal(wa)
        e2_wptr = Signal(wa)
        m.d.sync += [e2.eq(e1), e2_sh.eq(e1_idx << s.gb), e2_wptr.eq(e1_wptr + e1_g)]
        # E3: the weight address; the reads are issued from its registers.
        e3 = Signal(ctl)
        e3_addr = Signal(wa)
        m.d.sync += [e3.eq(e2), e3_addr.eq(e2_wptr + e2_sh)]
        bias_ptr = Signal(self._ba)
        bias_g = Signal(8)                  # lane groups left in the token
        f_bg = Signal()
        bias_start = [bias_g.eq(s.last_g), f_bg.eq(s.g_single), bias_ptr.eq(d.bias_base)]
        with m.If(e3.valid & e3.glast):
            with m.If(f_bg):
                m.d.sync += bias_start
            with m.Else():
                m.d.sync += [bias_g.eq(bias_g - 1), f_bg.eq(bias_g == 1),
                             bias_ptr.eq(bias_ptr + 1)]
        with m.If(s.go):
            m.d.sync += bias_start
        m.d.comb += [self.weights.r_addr.eq(e3_addr),
                     self.weights.r_en.eq(e3.valid & ~e3.null),
                     self.biases.r_addr.eq(bias_ptr),
                     self.biases.r_en.eq(e3.valid & e3.first)]
        # E4 .. E(3 + READ_LATENCY): the rows arrive; E5 after it: the rows registered as
        # they are (nothing in series with the memory's read path); E6: the addend (masked,
        # shifted by the plane; 0 without an event) registered.
        stages = [e3]
        for k in range(READ_LATENCY + 2):
            stages.append(Signal(ctl, name=f"e{4 + k}"))
            m.d.sync += stages[-1].eq(stages[-2])
        e5, e6 = stages[-2], stages[-1]
        row = Signal.like(self.weights.r_data, reset_less=True)
        bias = Signal.like(self.biases.r_data, reset_less=True)
        m.d.sync += [row.eq(self.weights.r_data), bias.eq(self.biases.r_data)]
        addend = Signal(data.ArrayLayout(signed(c.weight_bits + (1 << self._plane_bits) - 1),
                                         lanes), reset_less=True)
        for j in range(lanes):
            m.d.sync += addend[j].eq(Mux(e5.valid & e5.mask[j] & ~e5.null,
                                         row[j] << e5.plane, 0))
        # The lane sums: ``acc`` holds the sum of the group of the event in E6 before it, so
        # ``acc + addend`` (``fin``, registered) is the group's sum after it; ``acc`` takes that
        # sum, or the bias row when the event in E5 starts a group (the select is not in series
        # with the adders). After a group's last event the saturation stage takes ``fin``.
        acc = Signal(data.ArrayLayout(sum_shape, lanes), reset_less=True)
        fin = Signal(data.ArrayLayout(sum_shape, lanes), reset_less=True)
        fin_v = Signal()
        start = e5.valid & e5.first
        m.d.sync += fin_v.eq(e6.valid & e6.glast)
        for j in range(lanes):
            total = Signal(sum_shape, name=f"sum{j}")
            m.d.comb += total.eq(acc[j] + addend[j])
            m.d.sync += [fin[j].eq(total),
                         acc[j].eq(Mux(start, bias[j], total))]
        # S1: in range of signed out_bits iff the bits from out_bits - 1 up are all equal; the
        # write's address and the lanes to zero (past out_channels) from the output counters
        # (down counters with registered "last" flags).
        vb = c.value_bits
        s1_v = Signal()
        s1_low = Signal(data.ArrayLayout(signed(vb), lanes), reset_less=True)
        s1_in = Signal(lanes, reset_less=True)
        s1_neg = Signal(lanes, reset_less=True)
        s1_zero = Signal(lanes)
        s1_addr = Signal(self._va)
        s1_final = Signal()
        m.d.sync += s1_v.eq(fin_v)
        for j in range(lanes):
            top = fin[j].as_unsigned() & s.top
            m.d.sync += [s1_low[j].eq(fin[j][:vb]), s1_neg[j].eq(fin[j][-1]),
                         s1_in[j].eq((top == 0) | (top == s.top))]
        g_o = Signal(8)
        n_o = Signal(14)
        t_o = Signal(5)
        f_go, f_no, f_to = Signal(), Signal(), Signal()
        out_ptr, tok_ptr, stp_ptr = (Signal(self._va, name=n)
                                     for n in ("out_ptr", "tok_ptr", "stp_ptr"))
        g_start = [g_o.eq(s.last_g), f_go.eq(s.g_single)]
        n_start = [n_o.eq(s.last_n), f_no.eq(s.last_n == 0)]
        with m.If(fin_v):
            m.d.sync += [s1_addr.eq(out_ptr), s1_zero.eq(Mux(f_go, ~s.lane_tail, 0)),
                         s1_final.eq(f_go & f_no & f_to)]
            with m.If(~f_go):
                m.d.sync += [g_o.eq(g_o - 1), f_go.eq(g_o == 1), out_ptr.eq(out_ptr + 1)]
            with m.Elif(~f_no):
                ptr = tok_ptr + d.dst_token
                m.d.sync += [*g_start, n_o.eq(n_o - 1), f_no.eq(n_o == 1), tok_ptr.eq(ptr),
                             out_ptr.eq(ptr)]
            with m.Else():
                ptr = stp_ptr + d.dst_step
                m.d.sync += [*g_start, *n_start, t_o.eq(t_o - 1), f_to.eq(t_o == 1),
                             stp_ptr.eq(ptr), tok_ptr.eq(ptr), out_ptr.eq(ptr)]
        with m.If(s.go):
            m.d.sync += [*g_start, *n_start, t_o.eq(s.last_step), f_to.eq(s.last_step == 0),
                         out_ptr.eq(d.dst_base), tok_ptr.eq(d.dst_base), stp_ptr.eq(d.dst_base)]
        # S2: clamp, zero the lanes past out_channels, write.
        w_final = Signal()
        values = self.values
        m.d.sync += [values.w_en.eq(s1_v), values.w_addr.eq(s1_addr),
                     w_final.eq(s1_v & s1_final)]
        # The row written: a register of its own (the port's would be reset).
        w_data = Signal.like(values.w_data, reset_less=True)
        m.d.comb += values.w_data.eq(w_data)
        for j in range(lanes):
            lo = ~s.hi
            value = Mux(s1_in[j], s1_low[j], Mux(s1_neg[j], lo, s.hi))
            m.d.sync += w_data[j].eq(Mux(s1_zero[j], 0, value))
        with m.If(values.w_en & w_final):
            m.d.sync += [self.busy.eq(0), s.running.eq(0)]
