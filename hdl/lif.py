"""LIF neuron array: P lanes time-shared by N neurons whose membranes live in a memory."""

from amaranth.hdl import Module, Signal, Mux, signed, unsigned
from amaranth.lib import wiring, stream, data
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from spikeforge.contract.sizes import unsigned_range

from .arith import saturate_signed
from .layouts import lane_beat, threshold_row
from .params import check_int, check_choice

__all__ = ["LIFArray", "RESETS"]

RESETS = ("hard", "soft")


class LIFArray(wiring.Component):
    """Integer LIF neurons with fixed-point membranes in memory, ``lanes`` updates per cycle.

    A sample is ``steps`` time steps of ``neurons / lanes`` beats each. Beat ``b`` of a time step
    (counted from the first beat after reset, whatever the ``first``/``last`` fields say) updates
    neurons ``b * lanes ... b * lanes + lanes - 1``, whose membranes are row ``b`` of the membrane
    memory. For a layer of ``tokens x channels`` neurons the beats are tokens in order, channel
    groups in order (:func:`spikeforge.golden.lif.to_lane_order`), so
    ``neurons = tokens * lane_groups * lanes``. After ``steps`` time steps the next sample begins:
    membranes read as 0 during its step 0, so no clearing pass is needed.

    Each lane computes, with ``F = frac_bits``, ``k = tau_log2`` and ``theta`` the threshold of
    the beat's channel (row ``group`` of the threshold table, lane ``l``)::

        H = sat(V + (((X << F) - V) >> k))      # >>: arithmetic (floor); sat: to membrane_bits
        S = H >= theta << F
        V = 0 (hard) or H - (theta << F) (soft) if S else H

    exactly :func:`spikeforge.golden.lif.lif_int` with ``threshold`` the per-channel table,
    ``membrane_bits=membrane_bits``. ``group``, ``first`` and ``last`` pass through to the spike
    beat. Thresholds are non-negative; they come from ``thresholds`` at configuration and can be
    rewritten a row at a time through ``thr`` (a write affects beats accepted after it; load
    between samples).

    Pipeline: accept and read (membrane row, threshold row) → [register the rows read] →
    compute ``H`` → compare, reset, write back and register the spikes. One beat per cycle when no
    stream stalls (``lanes`` neuron updates per cycle). With ``neurons / lanes >= 4`` rows the
    memory outputs are registered (latency 4: a block RAM's slow clock-to-output is off the
    arithmetic path), and no beat can read a row that a beat ahead of it has yet to write. With
    fewer rows the pipeline is one stage shorter (latency 3) and a read of a row still being
    written is forwarded: the membrane read port is transparent, and with a single row the
    ``H`` stage takes the membrane that the compare stage writes that very cycle.

    Parameters
    ----------
    lanes : int
        P, neuron updates per beat.
    neurons : int
        N, neurons served (membrane memory rows = N / P); a multiple of ``lanes * lane_groups``.
    steps : int
        T, time steps per sample.
    lane_groups : int
        Lane groups per token (threshold table rows; sizes the ``group`` field).
    current_bits : int
        Signed bits of an input current.
    frac_bits : int
        F, fractional membrane bits (``F >= tau_log2 * steps`` makes it equal the float LIF).
    tau_log2 : int
        k, with ``tau = 2**k``.
    reset : "hard" or "soft"
    membrane_bits : int or None
        Signed membrane bits; default ``current_bits + frac_bits``, which never saturates.
    threshold_bits : int
        Unsigned threshold bits.
    thresholds : None, int, or sequence of int
        Initial threshold table: one value for the layer, or ``lane_groups * lanes`` values in
        channel order; default 0.

    Members
    -------
    i : In(stream.Signature(lane_beat(lanes=P, shape=signed(current_bits), lane_groups=G)))
        Input currents.
    o : Out(stream.Signature(lane_beat(lanes=P, shape=1, lane_groups=G)))
        Spikes, one beat per input beat, in order.
    thr : In(stream.Signature(threshold_row(lanes=P, threshold_bits=threshold_bits,
                                            lane_groups=G)))
        Threshold-table writes; always ready.
    """

    def __init__(self, *, lanes, neurons, steps, current_bits, frac_bits, lane_groups=1,
                 tau_log2=1, reset="hard", membrane_bits=None, threshold_bits=8, thresholds=None):
        self._lanes = check_int("lanes", lanes, min=1)
        self._lane_groups = check_int("lane_groups", lane_groups, min=1)
        self._neurons = check_int("neurons", neurons, min=lanes * lane_groups)
        if neurons % (lanes * lane_groups):
            raise ValueError(f"neurons must be a multiple of lanes * lane_groups "
                             f"({lanes * lane_groups}), "
                             f"not {neurons!r}")
        self._steps = check_int("steps", steps, min=1)
        self._current_bits = check_int("current_bits", current_bits, min=2, max=64)
        self._frac_bits = check_int("frac_bits", frac_bits, min=0, max=64)
        self._tau_log2 = check_int("tau_log2", tau_log2, min=1, max=16)
        self._reset = check_choice("reset", reset, RESETS)
        if membrane_bits is None:
            membrane_bits = current_bits + frac_bits
        self._membrane_bits = check_int("membrane_bits", membrane_bits, min=2, max=128)
        self._threshold_bits = check_int("threshold_bits", threshold_bits, min=1, max=64)
        self._thresholds = self._threshold_table(thresholds)
        super().__init__({
            "i": In(stream.Signature(
                lane_beat(lanes=lanes, shape=signed(current_bits), lane_groups=lane_groups))),
            "o": Out(stream.Signature(lane_beat(lanes=lanes, shape=1, lane_groups=lane_groups))),
            "thr": In(stream.Signature(
                threshold_row(lanes=lanes, threshold_bits=threshold_bits,
                              lane_groups=lane_groups))),
        })

    def _threshold_table(self, thresholds):
        count = self._lane_groups * self._lanes
        if thresholds is None:
            thresholds = 0
        if isinstance(thresholds, int) and not isinstance(thresholds, bool):
            thresholds = [thresholds] * count
        if isinstance(thresholds, (str, bytes)) or not hasattr(thresholds, "__len__") \
                or len(thresholds) != count:
            raise TypeError(f"thresholds must be None, an int or {count} ints "
                            f"(lane_groups * lanes), not {thresholds!r:.60}")
        top = unsigned_range(self._threshold_bits)[1]
        for value in thresholds:
            check_int("thresholds", value, min=0, max=top)
        return [list(thresholds[g * self._lanes:(g + 1) * self._lanes])
                for g in range(self._lane_groups)]

    lanes = property(lambda self: self._lanes)
    neurons = property(lambda self: self._neurons)
    steps = property(lambda self: self._steps)
    lane_groups = property(lambda self: self._lane_groups)
    current_bits = property(lambda self: self._current_bits)
    frac_bits = property(lambda self: self._frac_bits)
    tau_log2 = property(lambda self: self._tau_log2)
    reset = property(lambda self: self._reset)
    membrane_bits = property(lambda self: self._membrane_bits)
    threshold_bits = property(lambda self: self._threshold_bits)
    #: Initial threshold table, ``lane_groups`` rows of ``lanes`` values.
    thresholds = property(lambda self: [list(row) for row in self._thresholds])
    #: Membrane memory rows: beats per time step.
    beats_per_step = property(lambda self: self._neurons // self._lanes)
    #: Whether the rows read from the memories are registered before the arithmetic.
    registered_read = property(lambda self: self.beats_per_step >= 4)
    #: Cycles from an accepted beat to its spike beat being valid.
    latency = property(lambda self: 4 if self.registered_read else 3)

    @staticmethod
    def _fires(membrane, threshold):
        """The firing condition: ``>=``, as spikingjelly's Heaviside step at 0."""
        return membrane >= threshold

    def elaborate(self, platform):
        m = Module()
        lanes, rows = self._lanes, self.beats_per_step
        frac, mw = self._frac_bits, self._membrane_bits
        membrane_row = data.ArrayLayout(signed(mw), lanes)
        threshold_layout = data.ArrayLayout(unsigned(self._threshold_bits), lanes)

        m.submodules.membranes = membranes = Memory(shape=membrane_row, depth=rows, init=[])
        mem_wr = membranes.write_port()
        registered = self.registered_read
        mem_rd = membranes.read_port(transparent_for=() if registered else (mem_wr,))
        m.submodules.thresholds = thresholds = Memory(
            shape=threshold_layout, depth=self._lane_groups, init=self._thresholds)
        thr_wr = thresholds.write_port()
        thr_rd = thresholds.read_port()

        m.d.comb += [
            self.thr.ready.eq(1),
            thr_wr.en.eq(self.thr.valid),
            thr_wr.addr.eq(self.thr.payload.group),
            thr_wr.data.eq(self.thr.payload.data),
        ]

        # Handshake: a stage takes a beat when it is empty or hands its own on this cycle.
        b_valid, r_valid, c_valid = Signal(), Signal(), Signal()
        o_free = ~self.o.valid | self.o.ready
        c_moves = c_valid & o_free
        c_free = ~c_valid | c_moves
        if registered:
            r_free = ~r_valid | c_free
            b_free = ~b_valid | r_free
        else:
            b_free = ~b_valid | c_free
        accept = self.i.valid & self.i.ready
        m.d.comb += self.i.ready.eq(b_free)

        # Position in the sample: membrane row and time step of the next beat.
        row = Signal(range(rows))
        step = Signal(range(self._steps))
        with m.If(accept):
            m.d.sync += row.eq(Mux(row == rows - 1, 0, row + 1))
            with m.If(row == rows - 1):
                m.d.sync += step.eq(Mux(step == self._steps - 1, 0, step + 1))

        # Stage A → B: the memories are read while the beat is taken; their outputs hold while
        # B waits (the read enables follow B's freedom, and a membrane write, made when C moves,
        # always finds B free, so a held output is never stale).
        # With registered reads, B → R copies B and the memory outputs; R then feeds C.
        meta = data.StructLayout({"group": self.i.payload.group.shape(), "first": 1, "last": 1})
        b_x = Signal(self.i.payload.data.shape())
        b_meta, c_meta = Signal(meta), Signal(meta)
        b_fresh = Signal()                  # step 0: the membrane reads as 0
        b_row, c_row = Signal(range(rows)), Signal(range(rows))
        m.d.comb += [
            mem_rd.en.eq(b_free),
            mem_rd.addr.eq(row),
            thr_rd.en.eq(b_free),
            thr_rd.addr.eq(self.i.payload.group),
        ]
        with m.If(b_free):
            m.d.sync += [
                b_valid.eq(self.i.valid),
                b_x.eq(self.i.payload.data),
                b_meta.group.eq(self.i.payload.group),
                b_meta.first.eq(self.i.payload.first),
                b_meta.last.eq(self.i.payload.last),
                b_fresh.eq(step == 0),
                b_row.eq(row),
            ]

        # Stage C's results (needed before C's inputs when one membrane row serves every beat).
        c_h = Signal(membrane_row)
        c_theta = Signal(threshold_layout)
        spikes = Signal(lanes)
        v_next = Signal(membrane_row)
        for lane in range(lanes):
            h = c_h[lane]
            theta = c_theta[lane] << frac
            m.d.comb += spikes[lane].eq(self._fires(h, theta))
            # Soft reset needs no clamp: it happens only when h >= theta >= 0.
            after = 0 if self._reset == "hard" else h - theta
            m.d.comb += v_next[lane].eq(Mux(spikes[lane], after, h))

        if registered:
            r_x, r_meta, r_fresh = Signal.like(b_x), Signal(meta), Signal()
            r_row, r_v, r_theta = Signal.like(b_row), Signal(membrane_row), Signal.like(c_theta)
            with m.If(r_free):
                m.d.sync += [
                    r_valid.eq(b_valid), r_x.eq(b_x), r_meta.eq(b_meta), r_fresh.eq(b_fresh),
                    r_row.eq(b_row), r_v.eq(mem_rd.data), r_theta.eq(thr_rd.data),
                ]
            src = (r_valid, r_x, r_meta, r_fresh, r_row, r_v, r_theta)
        else:
            src = (b_valid, b_x, b_meta, b_fresh, b_row, mem_rd.data, thr_rd.data)
        src_valid, src_x, src_meta, src_fresh, src_row, src_v, src_theta = src

        # → Stage C: H = sat(V + (((X << F) - V) >> k)). For tau = 2 this is (V + (X << F)) >> 1
        # exactly (V is an integer inside the floor): one carry chain instead of two. H lies
        # between V and X << F, so with membrane_bits >= current_bits + F it cannot overflow
        # and the clamp is left out.
        h_next = Signal(membrane_row)
        may_overflow = mw < self._current_bits + frac
        for lane in range(lanes):
            stored = src_v[lane]
            if rows == 1:
                stored = Mux(c_valid, v_next[lane], stored)
            v = Mux(src_fresh, 0, stored)
            drive = src_x[lane] << frac
            if self._tau_log2 == 1:
                h = (v + drive) >> 1
            else:
                h = v + ((drive - v) >> self._tau_log2)
            m.d.comb += h_next[lane].eq(saturate_signed(h, mw) if may_overflow else h)
        with m.If(c_free):
            m.d.sync += [
                c_valid.eq(src_valid),
                c_h.eq(h_next),
                c_theta.eq(src_theta),
                c_meta.eq(src_meta),
                c_row.eq(src_row),
            ]

        # Stage C → output: compare, reset, write the membrane back, register the spikes.
        m.d.comb += [
            mem_wr.en.eq(c_moves),
            mem_wr.addr.eq(c_row),
            mem_wr.data.eq(v_next),
        ]
        with m.If(o_free):
            m.d.sync += [
                self.o.valid.eq(c_valid),
                self.o.payload.data.eq(spikes),
                self.o.payload.group.eq(c_meta.group),
                self.o.payload.first.eq(c_meta.first),
                self.o.payload.last.eq(c_meta.last),
            ]
        return m
