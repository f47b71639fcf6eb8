"""The element-wise executor: runs the :attr:`~spikeforge.contract.program.Op.ADD`,
:attr:`~spikeforge.contract.program.Op.SUM_TOKENS` and
:attr:`~spikeforge.contract.program.Op.READOUT` descriptors, memory to memory, one memory
access per cycle."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring

from spikeforge.contract.program import FIELD_BITS, AddMode, Memory, Op, memory_map

from .ports import READ_LATENCY, address_bits, executor_signature

__all__ = ["ElementwiseExecutor", "MEMORIES", "WRITE_DELAY", "SETUP_CYCLES"]

#: The memories the executor has a port to (``scores``: writes only).
MEMORIES = ("spikes", "values", "scores")

# Registers from a read's issue to its output write: the memory's latency, then A (data,
# gathered lane), B (accumulate), C (range check), D (saturate, mask: the write's registers).
_STAGES = 4
# Copies of ~hi, each to a few lanes (at most READ_LATENCY + 2: see stage C).
_COPIES = 4
#: Cycles from an output's last read to its (first) write.
WRITE_DELAY = READ_LATENCY + _STAGES
#: Cycles from start to the first read (the descriptor's set-up).
SETUP_CYCLES = 3

# Widest loop count of any level: tokens (14-bit field) is the largest.
_COUNT_BITS = max(FIELD_BITS[f] for f in ("in_steps", "in_tokens", "lane_groups",
                                          "in_plane_words", "in_channels"))


def _below(value, width):
    """The thermometer code of ``value``: bit ``i < width`` is ``i < value``. A shift of a
    constant (LUTs), where a comparison with ``i`` would become a carry chain."""
    return ~(Const((1 << width) - 1, width) << value)[:width]


def _power_of_two(name, value):
    if not isinstance(value, int) or value < 1 or value & (value - 1):
        raise ValueError(f"{name} must be a power of two, not {value!r}")
    return value


class ElementwiseExecutor(wiring.Component):
    """ADD, SUM_TOKENS and READOUT: exactly :meth:`spikeforge.golden.accelerator.Accelerator.
    _add`, ``_sum_tokens`` and ``_readout`` with its ``read`` / ``write`` on the descriptor
    ``desc``.

    Every op is one computation: an *output* (a values / scores row of ``lanes`` lanes, or the
    ``word_bits`` channels of one spike word column) is the sum of a fixed sequence of *reads*,
    saturated and written. ``T`` below is ``1`` when every operand's step stride is 0 (a
    time-invariant operand is broadcast over the steps; golden ``_steps``), else ``in_steps``;
    ``N = in_tokens``, ``G = lane_groups``, ``W = in_plane_words``.

    Operand forms (by ``src_mem``)
        VALUES: row ``base + t * step + n * token + g``, lane ``l`` = channel ``g * lanes + l``.
        SPIKES: word ``base + t * step + n * token + b * W + w`` is plane ``b`` (of ``B``:
        ``in_bits`` for ``a``, ``b_bits`` for ``b``) of word column ``w``; channel ``c`` is
        bit ``c % word_bits`` of column ``c // word_bits`` and holds ``Σ_b bit_b << b``. Each
        plane read adds ``bit << b`` to the channel's accumulator (``word_bits`` channels in
        parallel), so the channel's value is never assembled separately.

    Operations (loop order, outermost first; reads of one output innermost)
        ADD (``a`` with ``a_token``, ``b`` with ``b_token``; ``mode``: ``MEMBRANE`` signed,
        ``SEW`` unsigned)::

            for t < T, n < N, g < G (values) / w < W (spikes):
                out(t, n, g | w) = a(t, n, g | w) + b(t, n, g | w)    # reads: a's planes, b's

        SUM_TOKENS (signed on values, unsigned on spikes)::

            for t < T, g < G / w < W:  out(t, 0, g | w) = Σ_{n < N} a(t, n, g | w)

        READOUT (values to scores, signed): with ``N == 1`` ``for g < G: score row g =
        Σ_{t < T} a(t, 0, g)``; with ``N > 1`` the scores are the golden flattening, score
        ``k = c * N + n`` (``k < out_channels = in_channels * N``) is ``Σ_t`` lane ``c %
        lanes`` of ``a(t, n, c // lanes)``: one read per ``(c, n, t)``, the lane selected and
        placed into lane ``k % lanes`` of score row ``k // lanes``.

        An output is written to ``dst_base + t * dst_step + n * dst_token + g`` (values,
        scores) or, as ``out_bits`` planes, to ``dst_base + t * dst_step + n * dst_token + j *
        out_plane_words + w`` for ``j < out_bits`` (spikes). Channels from ``in_channels``
        (READOUT: ``out_channels``) on are written 0.

    Saturation (never wraps)
        Sums are formed exactly (accumulators of ``value_bits + log2(max(max_tokens,
        max_steps))`` bits per lane, ``max_input_bits + log2(max_tokens)`` per spike channel)
        and clamped to
        ``signed(ob)`` (ADD ``MEMBRANE``, SUM_TOKENS and READOUT on values) or ``unsigned(ob)``
        (ADD ``SEW``, SUM_TOKENS on spikes), ``ob = min(out_bits, element bits of dst_mem)``
        (``value_bits`` / ``score_bits``; unsigned on values: ``value_bits - 1``). Golden ADD
        saturates to ``out_bits``; golden SUM_TOKENS / READOUT do not saturate, and the
        compiler sizes their ``out_bits`` so that no sum exceeds it: every result the golden
        model can store in ``dst_mem`` is produced exactly. The limits are computed from
        ``out_bits`` at run time; as the high limit is ``2**k - 1``, a sum is in range when
        none of its bits (of its complement, for a negative sum) under ``~(2**k - 1)`` is set:
        a LUT tree per lane instead of two magnitude comparators.

    Pipeline and cycles
        The issue stage walks the loops with counters and adds (one pointer per loop level
        and operand) and issues one read per cycle; the data arrives
        :data:`~.ports.READ_LATENCY` cycles later and passes A (register the row, select the
        gathered lane), B (accumulate the addend: the row, the gathered lane in its output
        lane, or ``bit << b`` per channel; the first read of an output starts from 0), C
        (range check), D (saturate, mask the channels past the last); a values output is one
        write, a spikes output is ``out_bits`` writes of consecutive cycles (a shift register,
        plane 0 first). A spikes output needs ``R`` reads (ADD ``in_bits + b_bits``,
        SUM_TOKENS ``N * in_bits``); when ``out_bits > R`` the first read of the next output
        waits until ``out_bits`` cycles after the previous one's. ``busy`` is high for
        :meth:`cycles` cycles: :data:`SETUP_CYCLES` (3, the descriptor's fields registered
        stage by stage) + the issue cycles + the last output's :data:`WRITE_DELAY` (6) + its
        planes after the first; it falls the cycle after the last write. Read and write
        enables are low while ``busy`` is low.

    Contract on ``desc`` (what the compiler emits; the sequencer checks the capacities)
        ``src_mem`` VALUES with ``dst_mem`` VALUES (ADD, SUM_TOKENS) or SCORES (READOUT);
        ``src_mem`` SPIKES with ``dst_mem`` SPIKES (ADD, SUM_TOKENS); ``in_bits``, ``b_bits``
        at most ``max_input_bits``, ``in_tokens`` at most ``max_tokens``, ``in_steps`` at most
        ``max_steps`` (or the accumulators could wrap); ``out_channels == in_channels``
        (``in_channels * in_tokens`` for READOUT), ``out_bits >= 1``. A loop count of 0 (or 0
        planes) writes nothing.

    Parameters
    ----------
    config : :class:`spikeforge.contract.configs.Config`
        ``lanes`` and ``word_bits`` must be powers of two.

    Members
    -------
    desc, start, busy ; spikes, values, scores
        :func:`~.ports.executor_signature` with :data:`MEMORIES`.
    """

    def __init__(self, config):
        _power_of_two("lanes", config.lanes)
        _power_of_two("word_bits", config.word_bits)
        for name in ("value_bits", "score_bits"):
            if getattr(config, name) < 2:
                raise ValueError(f"{name} must be at least 2, not {getattr(config, name)!r}")
        if config.score_bits < config.value_bits:
            raise ValueError(f"score_bits ({config.score_bits}) must be at least value_bits "
                             f"({config.value_bits})")
        self._config = config
        super().__init__(executor_signature(config, MEMORIES))

    config = property(lambda self: self._config)
    #: Cycles from an output's last read to its (first) write.
    write_delay = WRITE_DELAY

    def cycles(self, desc):
        """Cycles ``busy`` is high for descriptor ``desc`` (``{field: int}``), start to the
        cycle after the last write."""
        d = desc
        op, spikes = Op(d["op"]), d["src_mem"] == Memory.SPIKES
        two = op == Op.ADD
        steps = 1 if d["a_step"] == 0 and (not two or d["b_step"] == 0) else d["in_steps"]
        inner = d["in_plane_words"] if spikes else d["lane_groups"]
        n = d["in_tokens"]
        planes_a = d["in_bits"] if spikes else 1
        planes_b = (d["b_bits"] if spikes else 1) if two else 0
        if op == Op.ADD:
            outputs, reads = steps * n * inner, planes_a + planes_b
        elif op == Op.SUM_TOKENS:
            outputs, reads = steps * inner, n * planes_a
        elif n == 1:
            outputs, reads = d["lane_groups"], steps
        else:
            outputs, reads = 1, d["in_channels"] * n * steps
        if not outputs or not reads or not planes_a or (two and not planes_b):
            return SETUP_CYCLES + 1
        writes = d["out_bits"] if spikes else 1
        issue = (outputs - 1) * max(reads, writes) + reads
        gather = op == Op.READOUT and n != 1                # a cycle more to place the lane
        return SETUP_CYCLES - 1 + issue + WRITE_DELAY + gather + max(writes, 1)

    def elaborate(self, platform):
        m = Module()
        c = self._config
        lanes, word_bits = c.lanes, c.word_bits
        specs = memory_map(c)
        d = self.desc
        sp, vp, op_ = self.spikes, self.values, self.scores

        abits = max(address_bits(specs[n].depth) for n in MEMORIES)
        vb, sb = c.value_bits, c.score_bits
        wv = vb + (max(c.max_tokens, c.max_steps, 2) - 1).bit_length()     # lane accumulator
        ws = c.max_input_bits + (max(c.max_tokens, 2) - 1).bit_length()    # channel acc.
        planes_max = c.max_input_bits
        cnt = unsigned(_COUNT_BITS)

        # -- set-up: three cycles after start (s1, s2, s3), registered stage by stage --------
        # s1: the op's flags from the descriptor; s2: the loop nest (counts and their zero
        # flags, strides, limits); s3: counts - 1 and their one flags, the counters, the
        # saturation width. desc is stable while busy.
        running = Signal()
        s1, s2, s3 = Signal(), Signal(), Signal()
        m.d.comb += self.busy.eq(running)

        f_add, f_sum, f_readout = Signal(), Signal(), Signal()
        spikes = Signal()           # operands are spike bit-planes
        gather = Signal()           # READOUT over several tokens: one lane per read
        f_once = Signal()           # every operand time-invariant: one step
        f_membrane = Signal()       # ADD mode MEMBRANE
        two = f_add                 # ADD: operands a and b
        dst = Signal(3)
        # count fields that are 0 (for the empty check)
        z = {f: Signal(name=f"z_{f}") for f in ("in_steps", "in_tokens", "in_plane_words",
                                                 "lane_groups", "in_channels", "in_bits",
                                                 "b_bits")}
        ob_many, ob_two, ob_zero = Signal(), Signal(), Signal()    # out_bits > 1, == 2, == 0
        with m.If(s1):
            m.d.sync += [z[f].eq(getattr(d, f) == 0) for f in z]
            m.d.sync += [ob_many.eq(d.out_bits[1:].any()), ob_two.eq(d.out_bits == 2),
                         ob_zero.eq(d.out_bits == 0)]
            m.d.sync += [
                f_add.eq(d.op == Op.ADD), f_sum.eq(d.op == Op.SUM_TOKENS),
                f_readout.eq(d.op == Op.READOUT), spikes.eq(d.src_mem == Memory.SPIKES),
                gather.eq((d.op == Op.READOUT) & (d.in_tokens != 1)),
                f_once.eq((d.a_step == 0) & ((d.op != Op.ADD) | (d.b_step == 0))),
                f_membrane.eq(d.mode == AddMode.MEMBRANE), dst.eq(d.dst_mem),
            ]

        signed_sat = Signal()
        counts = [Signal(cnt, name=f"count{i}") for i in range(3)]    # read loop counts
        zero = Signal(5)                                  # a count (or planes_a, planes_b) is 0
        wcounts = [Signal(cnt, name=f"wcount{i}") for i in range(4)]  # write loop counts
        sa = [Signal(abits, name=f"sa{i}") for i in range(3)]    # a's strides
        sbs = [Signal(abits, name=f"sb{i}") for i in range(3)]   # b's strides
        wst = [Signal(abits, name=f"wst{i}") for i in range(4)]  # write strides
        rem_a = Signal(planes_max)                                # a's planes, thermometer
        rem_b = Signal(planes_max)                                # b's
        pw = Signal(abits)                                        # plane stride
        jw = Signal(FIELD_BITS["out_bits"])                       # writes per output
        jw_many = Signal()                                        # jw > 1
        jw_any = Signal()                                         # jw > 0
        jw_two = Signal()                                         # jw == 2
        mask_c = Signal(range(max(lanes, word_bits)))            # channels mod lanes/word
        sgn = Mux(f_add, f_membrane, ~spikes)                     # signed_sat, in s2
        steps, steps_z = Mux(f_once, 1, d.in_steps), ~f_once & z["in_steps"]
        inner = Mux(spikes, d.in_plane_words, d.lane_groups)
        inner_z = Mux(spikes, z["in_plane_words"], z["lane_groups"])

        def loop(*levels):                  # the read loops' (count, is 0), outermost first
            return ([counts[i].eq(v) for i, (v, _) in enumerate(levels)]
                    + [zero[i].eq(v_z) for i, (_, v_z) in enumerate(levels)])
        with m.If(s2):
            m.d.sync += [
                signed_sat.eq(sgn),
                rem_a.eq(_below(Mux(spikes, d.in_bits, 1), planes_max)),
                rem_b.eq(_below(Mux(spikes & f_add, d.b_bits, 1), planes_max)),
                zero[3].eq(spikes & z["in_bits"]), zero[4].eq(spikes & f_add & z["b_bits"]),
                pw.eq(d.in_plane_words), jw.eq(Mux(spikes, d.out_bits, 1)),
                jw_many.eq(spikes & ob_many), jw_two.eq(spikes & ob_two),
                jw_any.eq(~spikes | ~ob_zero),
                mask_c.eq(Mux(f_readout, d.out_channels, d.in_channels)),
            ]
            with m.If(f_add):
                m.d.sync += loop((steps, steps_z), (d.in_tokens, z["in_tokens"]),
                                 (inner, inner_z))
                m.d.sync += [sa[0].eq(d.a_step), sa[1].eq(d.a_token), sa[2].eq(1),
                             sbs[0].eq(d.b_step), sbs[1].eq(d.b_token), sbs[2].eq(1)]
            with m.Elif(f_sum):
                m.d.sync += loop((steps, steps_z), (inner, inner_z),
                                 (d.in_tokens, z["in_tokens"]))
                m.d.sync += [sa[0].eq(d.a_step), sa[1].eq(1), sa[2].eq(d.a_token)]
            with m.Elif(gather):
                # level 0 (channel c) steps one row after the last lane: sa[0] follows c
                m.d.sync += loop((d.in_channels, z["in_channels"]),
                                 (d.in_tokens, z["in_tokens"]), (steps, steps_z))
                m.d.sync += [sa[0].eq(lanes == 1), sa[1].eq(d.a_token), sa[2].eq(d.a_step)]
            with m.Else():
                m.d.sync += loop((1, 0), (d.lane_groups, z["lane_groups"]), (steps, steps_z))
                m.d.sync += [sa[0].eq(0), sa[1].eq(1), sa[2].eq(d.a_step)]
            # writes: (t, n, g | w, plane j)
            m.d.sync += [
                wcounts[0].eq(Mux(f_readout, 1, steps)), wcounts[1].eq(Mux(f_add, d.in_tokens, 1)),
                wcounts[2].eq(Mux(f_readout, d.lane_groups, inner)),
                wcounts[3].eq(Mux(spikes, d.out_bits, 1)),
                wst[0].eq(d.dst_step), wst[1].eq(d.dst_token), wst[2].eq(1),
                wst[3].eq(d.out_plane_words),
            ]

        # Loop counters count down the iterations left after the current one, minus 1: the
        # sign is "the last iteration", no comparator. nm, mm: their reload values, count - 2.
        ctr = signed(_COUNT_BITS + 1)
        nm = [Signal(ctr, name=f"nm{i}") for i in range(3)]
        mm = [Signal(ctr, name=f"mm{i}") for i in range(4)]
        with m.If(s3):
            m.d.sync += [nm[i].eq(counts[i] - 2) for i in range(3)]
            m.d.sync += [mm[i].eq(wcounts[i] - 2) for i in range(4)]

        # The limits, set in s2: hi = 2**k - 1 and lo = -2**k (signed) or 0 (unsigned), k = ob - 1
        # (signed) or ob, ob = min(out_bits, cap), cap the destination's element bits
        # (unsigned values: one less). As thermometer codes of k = min(out_bits - signed,
        # cap - signed) (at least 0): hi = below(out_bits - signed) & below(cap - signed).
        wl = max(sb, ws) + 1
        hi = Signal(signed(wl))
        lo = Signal(signed(wl))
        ones = lambda n: (1 << n) - 1                             # noqa: E731
        below_ob = _below(d.out_bits, wl + 1)
        below_ob = Mux(sgn, below_ob[1:], below_ob[:wl])
        below_cap = Mux(spikes, Mux(sgn, ones(ws - 1), ones(ws)),
                        Mux(dst == Memory.SCORES, ones(sb - 1), ones(vb - 1)))
        with m.If(s2):
            m.d.sync += [hi.eq(below_ob & below_cap), lo.eq(Mux(sgn, ~(below_ob & below_cap), 0))]
        # Valid lanes / bits of the last lane group / word column (0: all), registered twice
        # (static; the second register for the far end).
        lane_mask = Signal(lanes)
        bit_mask = Signal(word_bits)
        for mask, n in ((lane_mask, lanes), (bit_mask, word_bits)):
            last, near = mask_c[:(n - 1).bit_length()], Signal(n)
            m.d.sync += [near.eq(Mux(last == 0, ones(n), _below(last, n))), mask.eq(near)]

        # -- issue: the loop nest, one read per cycle ---------------------------------------
        # Every condition is a flop: the loop counters' signs, the planes left as a thermometer
        # code (rem), the read's "last of its position" (advance), the next cycle's issue.
        r = [Signal(ctr, name=f"r{i}") for i in range(3)]          # loop counters
        r_z = [x[-1] for x in r]                                  # ... at the last iteration
        pa = [Signal(abits, name=f"pa{i}") for i in range(3)]     # a's pointers per level
        pb = [Signal(abits, name=f"pb{i}") for i in range(3)]
        opsel = Signal()                                          # reading b
        rem = Signal(planes_max)                                  # planes left, this one too
        advance = Signal()                                        # the position's last read
        oh = Signal(planes_max)                                   # one-hot plane
        addr = Signal(abits)
        c_oh = Signal(lanes)                                      # gather: c % lanes, one-hot
        k_oh = Signal(lanes)                                      # gather: k % lanes, one-hot
        cooldown = Signal(FIELD_BITS["out_bits"])
        cooling = Signal()                                        # cooldown != 0
        cd_one = Signal()                                         # cooldown == 1
        # Decided the cycle before, from registers: the read's enable and its position flags.
        issue = Signal()                                          # a read goes out (addr)
        active = Signal()                                         # reads remain after set-up
        out_first = Signal()                                      # the read is an output's first
        r_en_v, r_en_s = Signal(), Signal()                       # issue, per memory

        plane_last = ~rem[1]
        wrap2, wrap1 = r_z[2], r_z[1]
        k_top = k_oh[-1]
        out_last = plane_last & Mux(two, opsel, wrap2 & Mux(gather, k_top | (r_z[0] & wrap1), 1))

        # The next cycle's issue: the loop nest not done after this read, and no output's
        # first read while the previous output's planes are still being written (cooldown).
        first_after = advance & (two | (wrap2 & (~gather | k_top)))   # the next read's
        first_next = Mux(issue, first_after, out_first)
        cool_next = Mux(issue & out_first & jw_many, 1, cooling & ~cd_one)
        active_next = active & ~(issue & advance & wrap2 & wrap1 & r_z[0])
        empty = zero.any()
        issue_next = Signal()
        m.d.comb += issue_next.eq(Mux(s3, ~empty, active_next & ~(first_next & cool_next)))
        m.d.sync += [issue.eq(issue_next), r_en_v.eq(issue_next & ~spikes),
                     r_en_s.eq(issue_next & spikes)]
        with m.If(s3):
            m.d.sync += [active.eq(~empty), out_first.eq(1), cooling.eq(0)]
        with m.Else():
            m.d.sync += [active.eq(active_next), out_first.eq(first_next),
                         cooling.eq(cool_next)]
        with m.If(issue & out_first & jw_many):
            m.d.sync += [cooldown.eq(jw - 1), cd_one.eq(jw_two)]
        with m.Elif(cooling):
            m.d.sync += [cooldown.eq(cooldown - 1), cd_one.eq(cooldown == 2)]

        # Position advance (after the last read of a position): new pointers per level.
        new_pa = [Signal(abits, name=f"new_pa{i}") for i in range(3)]
        new_pb = [Signal(abits, name=f"new_pb{i}") for i in range(3)]
        for new, p, s in ((new_pa, pa, sa), (new_pb, pb, sbs)):
            up0, up1, up2 = p[0] + s[0], p[1] + s[1], p[2] + s[2]
            m.d.comb += [
                new[0].eq(Mux(wrap2 & wrap1, up0, p[0])),
                new[1].eq(Mux(wrap2, Mux(wrap1, up0, up1), p[1])),
                new[2].eq(Mux(wrap2, Mux(wrap1, up0, up1), up2)),
            ]
        with m.If(s3):
            m.d.sync += [pa[i].eq(d.a_base) for i in range(3)]
            m.d.sync += [pb[i].eq(d.b_base) for i in range(3)]
            m.d.sync += [r[i].eq(counts[i] - 2) for i in range(3)]
            m.d.sync += [addr.eq(d.a_base), opsel.eq(0), oh.eq(1), c_oh.eq(1), k_oh.eq(1),
                         rem.eq(rem_a), advance.eq(~rem_a[1] & ~two)]
        with m.Elif(issue):
            with m.If(~plane_last):
                m.d.sync += [rem.eq(rem >> 1), oh.eq(oh << 1), addr.eq(addr + pw),
                             advance.eq(~rem[2] & (~two | opsel))]
            with m.Elif(~advance):                      # ADD: a's last plane, on to b
                m.d.sync += [opsel.eq(1), rem.eq(rem_b), oh.eq(1), addr.eq(pb[2]),
                             advance.eq(~rem_b[1])]
            with m.Else():
                m.d.sync += [opsel.eq(0), rem.eq(rem_a), oh.eq(1), advance.eq(~rem_a[1] & ~two)]
                m.d.sync += [pa[i].eq(new_pa[i]) for i in range(3)]
                m.d.sync += [pb[i].eq(new_pb[i]) for i in range(3)]
                m.d.sync += addr.eq(new_pa[2])
                with m.If(wrap2):
                    m.d.sync += [r[2].eq(nm[2]), k_oh.eq(k_oh.rotate_left(1))]
                    with m.If(wrap1):
                        m.d.sync += [r[1].eq(nm[1]), r[0].eq(r[0] - 1),
                                     c_oh.eq(c_oh.rotate_left(1))]
                        with m.If(gather):
                            m.d.sync += sa[0].eq(c_oh.rotate_left(1)[-1])
                    with m.Else():
                        m.d.sync += r[1].eq(r[1] - 1)
                with m.Else():
                    m.d.sync += r[2].eq(r[2] - 1)

        m.d.comb += [
            vp.r_addr.eq(addr), vp.r_en.eq(r_en_v),
            sp.r_addr.eq(addr), sp.r_en.eq(r_en_s),
            op_.r_addr.eq(0), op_.r_en.eq(0),
        ]

        # -- the read's tag, delayed to its data ---------------------------------------------
        def tag(name):
            return {"valid": Signal(name=f"{name}_valid"), "first": Signal(name=f"{name}_first"),
                    "last": Signal(name=f"{name}_last"), "col": Signal(name=f"{name}_col"),
                    "oh": Signal(planes_max, name=f"{name}_oh"),
                    "src": Signal(lanes, name=f"{name}_src"),
                    "dst": Signal(lanes, name=f"{name}_dst")}
        # col: the output is the last lane group / word column (gather: the last score row),
        # its channels past the last are written 0 (at its last read, what the writes' wr_z[2]
        # will be). src, dst: gather's lane read (c % lanes), the lane it goes to (k % lanes).
        col = Mux(two, r_z[2], Mux(gather, r_z[0] & wrap1, wrap1))
        now = {"valid": issue, "first": out_first, "last": out_last, "col": col, "oh": oh,
               "src": c_oh, "dst": k_oh}
        tags = [now]
        for i in range(READ_LATENCY):
            t = tag(f"tag{i + 1}")
            m.d.sync += [t[k].eq(tags[-1][k]) for k in t]
            tags.append(t)
        at = tags[-1]                   # aligned with r_data

        # -- A: the addends. A lane's: the row; gather: the lane read (an AND-OR over the
        # one-hot lanes) picked into a_pick, placed into its output lane (k % lanes) a cycle
        # later, the read's tag one register longer (g_*). A spike channel's: bit << plane.
        def pipe(name, src, cond=None):      # the read's flags, a register further
            regs = {k: Signal(name=f"{name}_{k}") for k in ("valid", "first", "last", "col")}
            m.d.sync += [regs[k].eq(src[k] if cond is None else Mux(cond[0], cond[1][k], src[k]))
                         for k in regs]
            return regs
        g = pipe("g", at)
        a_pick = Signal(vb, reset_less=True)
        g_dst = Signal(lanes, reset_less=True)
        picked = 0
        for l in range(lanes):
            picked = picked | Mux(at["src"][l], vp.r_data[l].as_unsigned(), 0)
        m.d.sync += [a_pick.eq(picked), g_dst.eq(at["dst"])]
        a = pipe("a", at, (gather, g))
        a_add = [Signal(signed(vb), name=f"a_add{l}", reset_less=True) for l in range(lanes)]
        a_bit = [Signal(planes_max, name=f"a_bit{b}", reset_less=True) for b in range(word_bits)]
        m.d.sync += [a_add[l].eq(Mux(gather, Mux(g_dst[l], a_pick, 0), vp.r_data[l]))
                     for l in range(lanes)]
        m.d.sync += [a_bit[b].eq(Mux(sp.r_data[b], at["oh"], 0)) for b in range(word_bits)]

        # -- B: accumulate: sum' = (first ? 0 : sum) + addend, the restart selected after the
        # adder. C takes the sum the cycle after an output's last addend, so no enable: between
        # outputs the accumulators hold garbage. ---------------------------------------------
        b_valid = Signal()
        acc_v = [Signal(signed(wv), name=f"acc_v{l}", reset_less=True) for l in range(lanes)]
        acc_s = [Signal(ws, name=f"acc_s{b}", reset_less=True) for b in range(word_bits)]
        b_col = Signal()                # the output's col, held from B to the end of its D
        m.d.sync += b_valid.eq(a["valid"] & a["last"])
        with m.If(a["valid"] & a["last"]):
            m.d.sync += b_col.eq(a["col"])
        for acc, addend in zip(acc_v + acc_s, a_add + a_bit):
            m.d.sync += acc.eq(Mux(a["first"], addend, acc + addend))

        # -- C: range check ------------------------------------------------------------------
        # hi is 2**k - 1, so a sum is in range exactly when none of its bits under ~hi is set
        # (``over`` clear), a negative sum of a signed op when none of them is clear (``under``
        # clear): LUT trees, no comparator. A lane's trees end in D (two halves each here),
        # where the sign picks one. ~hi reaches the lanes through a chain of copies (one per
        # few lanes; copy j is j + 1 cycles behind hi, set in s2, and the first sum reaches C
        # READ_LATENCY + 2 cycles after the first read): copies of one signal would be merged
        # back into one flip-flop by Yosys.
        def copies(value, width, name):
            chain = []
            for j in range(_COPIES):
                chain.append(Signal(width, name=f"{name}{j}", reset_less=True))
                m.d.sync += chain[-1].eq(chain[-2] if j else value)
            return chain

        def halves(value, mask):        # (value & mask) != 0, as the ORs of two halves
            bits, n = value.as_unsigned() & mask, (len(value) + 1) // 2
            return Cat(bits[:n].any(), bits[n:].any())
        nhi_v = copies(Mux(spikes, 0, ~hi), wv, "nhi_v")      # 0 for the datapath not in use
        nhi_s = copies(Mux(spikes, ~hi, 0), ws, "nhi_s")
        c_valid = Signal()
        res_v = [Signal(signed(wv), name=f"res_v{l}", reset_less=True) for l in range(lanes)]
        over_v = [Signal(2, name=f"over_v{l}", reset_less=True) for l in range(lanes)]
        under_v = [Signal(2, name=f"under_v{l}", reset_less=True) for l in range(lanes)]
        neg_v = Signal(lanes, reset_less=True)
        sneg_v = Signal(lanes, reset_less=True)     # negative, signed op: the under tree counts
        c_col = Signal()
        m.d.sync += c_valid.eq(b_valid)
        with m.If(b_valid):
            m.d.sync += c_col.eq(b_col)
        for l in range(lanes):
            sign, mask = acc_v[l][-1], nhi_v[l * _COPIES // lanes]
            m.d.sync += [res_v[l].eq(acc_v[l]), neg_v[l].eq(sign), sneg_v[l].eq(sign & signed_sat),
                         over_v[l].eq(halves(acc_v[l], mask)),
                         under_v[l].eq(halves(~acc_v[l], mask))]
        # A spike sum is also the shift register its planes are written from (plane 0 first;
        # the next output reaches C jw cycles later at the earliest), and so is hi.
        res_s = [Signal(ws, name=f"res_s{b}", reset_less=True) for b in range(word_bits)]
        over_s = Signal(word_bits, reset_less=True)
        hi_s = Signal(ws, reset_less=True)
        m.d.sync += [res_s[b].eq(Mux(b_valid, acc_s[b], res_s[b] >> 1)) for b in range(word_bits)]
        m.d.sync += hi_s.eq(Mux(b_valid, hi, hi_s >> 1))
        with m.If(b_valid):
            m.d.sync += [over_s[b].eq((acc_s[b] & nhi_s[b * _COPIES // word_bits]) != 0)
                         for b in range(word_bits)]

        # -- D: saturate, mask (the channels past the last), write ----------------------------
        # out_v and w_word are the write's data (registered every cycle, used when written).
        q = [Signal(abits, name=f"q{i}") for i in range(4)]          # write pointers
        wr = [Signal(ctr, name=f"wr{i}") for i in range(4)]          # write loop counters
        wr_z = [x[-1] for x in wr]
        with m.If(s3):
            m.d.sync += [q[i].eq(d.dst_base) for i in range(4)]
            m.d.sync += [wr[i].eq(wcounts[i] - 2) for i in range(4)]

        w_en_v, w_en_o, w_en_s = Signal(), Signal(), Signal()       # write, per memory
        w_addr = Signal(abits)
        out_v = [Signal(signed(sb), name=f"out_v{l}", reset_less=True) for l in range(lanes)]
        w_word = Signal(word_bits, reset_less=True)
        left = Signal(FIELD_BITS["out_bits"])                       # planes still to write
        left_nz = Signal()
        # D writes an output (c_valid), then its next planes (left_nz): the write of the cycle
        # after, decided a cycle ahead from b_valid / the plane count.
        write = Signal()
        m.d.sync += write.eq(Mux(b_valid, jw_any, Mux(c_valid, jw_many, left_nz & (left != 1))))
        m.d.sync += [w_en_v.eq(write & ~spikes & (dst == Memory.VALUES)),
                     w_en_o.eq(write & ~spikes & (dst == Memory.SCORES)),
                     w_en_s.eq(write & spikes)]

        for l in range(lanes):
            ok = ~Mux(sneg_v[l], under_v[l].any(), over_v[l].any())
            sat = Mux(ok, res_v[l], Mux(neg_v[l], lo, hi))
            m.d.sync += out_v[l].eq(Mux(~c_col | lane_mask[l], sat, 0))
        m.d.sync += w_word.eq(Cat(Mux(~c_col | bit_mask[b],
                                      Mux(over_s[b], hi_s[0], res_s[b][0]), 0)
                                  for b in range(word_bits)))
        with m.If(c_valid):
            m.d.sync += [left.eq(Mux(jw_any, jw - 1, 0)), left_nz.eq(jw_many)]
        with m.Elif(left_nz):
            m.d.sync += [left.eq(left - 1), left_nz.eq(left != 1)]

        # Write pointers: (t, n, g | w, j), j innermost. A write advances the innermost level
        # not at its last iteration (lvl; the pointers a 4:1 multiplexer of the sums by it), the
        # levels inside it restart from it.
        lvl = Signal(2)
        m.d.comb += lvl.eq(Mux(~wr_z[3], 3, Mux(~wr_z[2], 2, Mux(~wr_z[1], 1, 0))))
        ups = [q[i] + wst[i] for i in range(4)]
        with m.If(write):
            m.d.sync += w_addr.eq(q[3])
            with m.Switch(lvl):
                for i in range(4):
                    with m.Case(i):
                        m.d.sync += [q[j].eq(ups[i]) for j in range(i, 4)]
                        m.d.sync += wr[i].eq(wr[i] - 1)
                        m.d.sync += [wr[j].eq(mm[j]) for j in range(i + 1, 4)]

        m.d.comb += [
            vp.w_addr.eq(w_addr), vp.w_en.eq(w_en_v),
            op_.w_addr.eq(w_addr), op_.w_en.eq(w_en_o),
            sp.w_addr.eq(w_addr), sp.w_en.eq(w_en_s),
            sp.w_data.eq(w_word),
        ]
        m.d.comb += [vp.w_data[l].eq(out_v[l]) for l in range(lanes)]
        m.d.comb += [op_.w_data[l].eq(out_v[l]) for l in range(lanes)]

        # -- control ---------------------------------------------------------------------------
        drained = ~Cat(issue, *(t["valid"] for t in tags[1:]), g["valid"], a["valid"], b_valid,
                       c_valid).any()
        m.d.sync += [s1.eq(self.start & ~running), s2.eq(s1), s3.eq(s2)]
        with m.If(running & ~s1 & ~s2 & ~s3 & ~active & drained & ~left_nz
                  & ~write):
            m.d.sync += running.eq(0)
        with m.If(self.start & ~running):
            m.d.sync += running.eq(1)
        return m
