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
#: Cycles from an output's last read to its (first) write.
WRITE_DELAY = READ_LATENCY + _STAGES
#: Cycles from start to the first read (the descriptor's set-up).
SETUP_CYCLES = 3

# Widest loop count of any level: tokens (14-bit field) is the largest.
_COUNT_BITS = max(FIELD_BITS[f] for f in ("in_steps", "in_tokens", "lane_groups",
                                          "in_plane_words", "in_channels"))


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
        return SETUP_CYCLES - 1 + issue + WRITE_DELAY + max(writes, 1)

    def elaborate(self, platform):
        m = Module()
        c = self._config
        lanes, word_bits = c.lanes, c.word_bits
        lane_bits = (lanes - 1).bit_length()
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
        # s1: the op's flags from the descriptor; s2: the loop nest (counts, strides, limits);
        # s3: counts - 1 and their zero flags, the counters. desc is stable while busy.
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
        with m.If(s1):
            m.d.sync += [
                f_add.eq(d.op == Op.ADD), f_sum.eq(d.op == Op.SUM_TOKENS),
                f_readout.eq(d.op == Op.READOUT), spikes.eq(d.src_mem == Memory.SPIKES),
                gather.eq((d.op == Op.READOUT) & (d.in_tokens != 1)),
                f_once.eq((d.a_step == 0) & ((d.op != Op.ADD) | (d.b_step == 0))),
                f_membrane.eq(d.mode == AddMode.MEMBRANE), dst.eq(d.dst_mem),
            ]

        signed_sat = Signal()
        counts = [Signal(cnt, name=f"count{i}") for i in range(3)]    # read loop counts
        wcounts = [Signal(cnt, name=f"wcount{i}") for i in range(4)]  # write loop counts
        sa = [Signal(abits, name=f"sa{i}") for i in range(3)]    # a's strides
        sbs = [Signal(abits, name=f"sb{i}") for i in range(3)]   # b's strides
        wst = [Signal(abits, name=f"wst{i}") for i in range(4)]  # write strides
        planes_a = Signal(range(planes_max + 1))
        planes_b = Signal(range(planes_max + 1))
        pw = Signal(abits)                                        # plane stride
        jw = Signal(FIELD_BITS["out_bits"])                       # writes per output
        jw_many = Signal()                                        # jw > 1
        jw_any = Signal()                                         # jw > 0
        ob = Signal(range(max(sb, ws) + 1))                      # effective saturation bits
        mask_c = Signal(range(max(lanes, word_bits)))            # channels mod lanes/word
        steps = Mux(f_once, 1, d.in_steps)
        inner = Mux(spikes, d.in_plane_words, d.lane_groups)
        with m.If(s2):
            m.d.sync += [
                signed_sat.eq(Mux(f_add, f_membrane, ~spikes)),
                planes_a.eq(Mux(spikes, d.in_bits, 1)),
                planes_b.eq(Mux(spikes & f_add, d.b_bits, 1)),
                pw.eq(d.in_plane_words), jw.eq(Mux(spikes, d.out_bits, 1)),
                jw_many.eq(spikes & (d.out_bits > 1)),
                jw_any.eq(~spikes | (d.out_bits != 0)),
                mask_c.eq(Mux(f_readout, d.out_channels, d.in_channels)),
            ]
            with m.If(f_add):
                m.d.sync += [counts[0].eq(steps), counts[1].eq(d.in_tokens), counts[2].eq(inner),
                             sa[0].eq(d.a_step), sa[1].eq(d.a_token), sa[2].eq(1),
                             sbs[0].eq(d.b_step), sbs[1].eq(d.b_token), sbs[2].eq(1)]
            with m.Elif(f_sum):
                m.d.sync += [counts[0].eq(steps), counts[1].eq(inner), counts[2].eq(d.in_tokens),
                             sa[0].eq(d.a_step), sa[1].eq(1), sa[2].eq(d.a_token)]
            with m.Elif(gather):
                m.d.sync += [counts[0].eq(d.in_channels), counts[1].eq(d.in_tokens),
                             counts[2].eq(steps),
                             sa[0].eq(0), sa[1].eq(d.a_token), sa[2].eq(d.a_step)]
            with m.Else():
                m.d.sync += [counts[0].eq(1), counts[1].eq(d.lane_groups), counts[2].eq(steps),
                             sa[0].eq(0), sa[1].eq(1), sa[2].eq(d.a_step)]
            # writes: (t, n, g | w, plane j)
            m.d.sync += [
                wcounts[0].eq(Mux(f_readout, 1, steps)), wcounts[1].eq(Mux(f_add, d.in_tokens, 1)),
                wcounts[2].eq(Mux(f_readout, d.lane_groups, inner)),
                wcounts[3].eq(Mux(spikes, d.out_bits, 1)),
                wst[0].eq(d.dst_step), wst[1].eq(d.dst_token), wst[2].eq(1),
                wst[3].eq(d.out_plane_words),
            ]
            # saturation width: out_bits, at most the destination's (unsigned values: one less)
            cap = Mux(spikes, ws, Mux(dst == Memory.SCORES, sb, vb)
                      - (~Mux(f_add, f_membrane, 1)))
            m.d.sync += ob.eq(Mux(d.out_bits > cap, cap, d.out_bits))

        nm = [Signal(cnt, name=f"nm{i}") for i in range(3)]      # loop counts - 1
        nm_z = Signal(3)                                          # ... are 0
        mm = [Signal(cnt, name=f"mm{i}") for i in range(4)]      # write counts - 1
        mm_z = Signal(4)
        pa_m1, pb_m1 = Signal.like(planes_a), Signal.like(planes_b)   # planes - 1
        pa_z, pb_z = Signal(), Signal()                           # one plane
        empty = Signal()
        with m.If(s3):
            m.d.sync += [nm[i].eq(counts[i] - 1) for i in range(3)]
            m.d.sync += [nm_z[i].eq(counts[i] == 1) for i in range(3)]
            m.d.sync += [mm[i].eq(wcounts[i] - 1) for i in range(4)]
            m.d.sync += [mm_z[i].eq(wcounts[i] == 1) for i in range(4)]
            m.d.sync += [pa_m1.eq(planes_a - 1), pb_m1.eq(planes_b - 1),
                         pa_z.eq(planes_a == 1), pb_z.eq(planes_b == 1)]
            m.d.sync += empty.eq(Cat(*(n == 0 for n in counts), planes_a == 0,
                                     planes_b == 0).any())

        # Limits from ob, registered in the cycles after set-up (the first use is in stage C):
        # hi = 2**k - 1 and lo = -2**k (signed, k = ob - 1) or 0 (unsigned, k = ob) are
        # thermometer codes of k, no carry chain.
        wl = max(sb, ws) + 1
        k = Signal.like(ob)
        hi = Signal(signed(wl))
        lo = Signal(signed(wl))
        m.d.sync += k.eq(Mux(signed_sat & (ob != 0), ob - 1, ob))
        m.d.sync += [hi[i].eq(i < k) for i in range(wl)]
        m.d.sync += [lo[i].eq(signed_sat & (i >= k)) for i in range(wl)]
        # Valid lanes / bits of the last lane group / word column (0: all).
        lane_mask = Signal(lanes)
        bit_mask = Signal(word_bits)
        m.d.sync += [lane_mask[l].eq((mask_c[:lane_bits] == 0) | (l < mask_c[:lane_bits]))
                     for l in range(lanes)]
        wbits = (word_bits - 1).bit_length()
        m.d.sync += [bit_mask[b].eq((mask_c[:wbits] == 0) | (b < mask_c[:wbits]))
                     for b in range(word_bits)]

        # -- issue: the loop nest, one read per cycle ---------------------------------------
        # Down-counters carry a registered "is 0" flag, so the loop conditions are flops.
        r = [Signal(cnt, name=f"r{i}") for i in range(3)]         # remaining iterations
        r_z = [Signal(name=f"r{i}_z") for i in range(3)]
        pa = [Signal(abits, name=f"pa{i}") for i in range(3)]     # a's pointers per level
        pb = [Signal(abits, name=f"pb{i}") for i in range(3)]
        first2 = Signal()                                         # level 2 at iteration 0
        opsel = Signal()                                          # reading b
        kr = Signal.like(pa_m1)                                   # planes left after this
        kr_z = Signal()
        oh = Signal(planes_max)                                   # one-hot plane
        addr = Signal(abits)
        c_lane = Signal(max(lane_bits, 1))                        # gather: c % lanes
        k_lane = Signal(max(lane_bits, 1))                        # gather: k % lanes
        issued = Signal()                                         # the last read went out
        cooldown = Signal(FIELD_BITS["out_bits"])
        cooling = Signal()                                        # cooldown != 0

        with m.If(s3):
            m.d.sync += [pa[i].eq(d.a_base) for i in range(3)]
            m.d.sync += [pb[i].eq(d.b_base) for i in range(3)]
            m.d.sync += [addr.eq(d.a_base), first2.eq(1), opsel.eq(0), oh.eq(1),
                         c_lane.eq(0), k_lane.eq(0), issued.eq(0), cooldown.eq(0),
                         cooling.eq(0), kr.eq(planes_a - 1), kr_z.eq(planes_a == 1)]
            m.d.sync += [r[i].eq(counts[i] - 1) for i in range(3)]
            m.d.sync += [r_z[i].eq(counts[i] == 1) for i in range(3)]

        plane_last = kr_z
        lane_top = c_lane == (1 << lane_bits) - 1 if lane_bits else Const(1)
        k_top = k_lane == (1 << lane_bits) - 1 if lane_bits else Const(1)
        out_first = Mux(two, ~opsel, first2) & oh[0] & Mux(gather, k_lane == 0, 1)
        out_last = plane_last & Mux(two, opsel, r_z[2] & Mux(
            gather, k_top | (r_z[0] & r_z[1]), 1))
        issue = Signal()
        m.d.comb += issue.eq(running & ~s1 & ~s2 & ~s3 & ~issued & ~empty
                             & ~(out_first & cooling))
        with m.If(issue & out_first & jw_many):
            m.d.sync += [cooldown.eq(jw - 1), cooling.eq(1)]
        with m.Elif(cooling):
            m.d.sync += [cooldown.eq(cooldown - 1), cooling.eq(cooldown != 1)]

        # Position advance (after the last read of a position): new pointers per level.
        wrap2, wrap1 = r_z[2], r_z[1]
        s0a = Mux(gather, lane_top, sa[0])
        new_pa = [Signal(abits, name=f"new_pa{i}") for i in range(3)]
        new_pb = [Signal(abits, name=f"new_pb{i}") for i in range(3)]
        for new, p, s in ((new_pa, pa, [s0a, sa[1], sa[2]]), (new_pb, pb, sbs)):
            up0, up1, up2 = p[0] + s[0], p[1] + s[1], p[2] + s[2]
            m.d.comb += [
                new[0].eq(Mux(wrap2 & wrap1, up0, p[0])),
                new[1].eq(Mux(wrap2, Mux(wrap1, up0, up1), p[1])),
                new[2].eq(Mux(wrap2, Mux(wrap1, up0, up1), up2)),
            ]
        with m.If(issue):
            with m.If(~plane_last):
                m.d.sync += [kr.eq(kr - 1), kr_z.eq(kr == 1), oh.eq(oh << 1),
                             addr.eq(addr + pw)]
            with m.Elif(two & ~opsel):
                m.d.sync += [opsel.eq(1), kr.eq(pb_m1), kr_z.eq(pb_z), oh.eq(1),
                             addr.eq(pb[2])]
            with m.Else():
                m.d.sync += [opsel.eq(0), kr.eq(pa_m1), kr_z.eq(pa_z), oh.eq(1)]
                with m.If(wrap2 & wrap1 & r_z[0]):
                    m.d.sync += issued.eq(1)
                m.d.sync += [pa[i].eq(new_pa[i]) for i in range(3)]
                m.d.sync += [pb[i].eq(new_pb[i]) for i in range(3)]
                m.d.sync += [addr.eq(new_pa[2]), first2.eq(wrap2)]
                with m.If(wrap2):
                    m.d.sync += [r[2].eq(nm[2]), r_z[2].eq(nm_z[2]), k_lane.eq(k_lane + 1)]
                    with m.If(wrap1):
                        m.d.sync += [r[1].eq(nm[1]), r_z[1].eq(nm_z[1]), r[0].eq(r[0] - 1),
                                     r_z[0].eq(r[0] == 1), c_lane.eq(c_lane + 1)]
                    with m.Else():
                        m.d.sync += [r[1].eq(r[1] - 1), r_z[1].eq(r[1] == 1)]
                with m.Else():
                    m.d.sync += [r[2].eq(r[2] - 1), r_z[2].eq(r[2] == 1)]

        m.d.comb += [
            vp.r_addr.eq(addr), vp.r_en.eq(issue & ~spikes),
            sp.r_addr.eq(addr), sp.r_en.eq(issue & spikes),
            op_.r_addr.eq(0), op_.r_en.eq(0),
        ]

        # -- the read's tag, delayed to its data ---------------------------------------------
        def tag(name):
            return {"valid": Signal(name=f"{name}_valid"), "first": Signal(name=f"{name}_first"),
                    "last": Signal(name=f"{name}_last"),
                    "oh": Signal(planes_max, name=f"{name}_oh"),
                    "src": Signal(lanes, name=f"{name}_src"),
                    "dst": Signal(lanes, name=f"{name}_dst")}
        # gather: the lane read (c % lanes) and the lane it goes to (k % lanes), one-hot
        src_oh, dst_oh = Signal(lanes), Signal(lanes)
        m.d.comb += [src_oh.eq(Const(1, lanes) << c_lane[:lane_bits]),
                     dst_oh.eq(Const(1, lanes) << k_lane[:lane_bits])]
        now = {"valid": issue, "first": out_first, "last": out_last, "oh": oh,
               "src": src_oh, "dst": dst_oh}
        tags = [now]
        for i in range(READ_LATENCY):
            t = tag(f"tag{i + 1}")
            m.d.sync += [t[k].eq(tags[-1][k]) for k in t]
            tags.append(t)
        at = tags[-1]                   # aligned with r_data

        # -- A: the data and the gathered lane (an AND-OR over the one-hot lane) ------------
        a_valid, a_first, a_last = Signal(), Signal(), Signal()
        a_row = [Signal(signed(vb), name=f"a_row{l}") for l in range(lanes)]
        a_pick = Signal(signed(vb))
        a_dst = Signal(lanes)
        a_word = Signal(word_bits)
        a_oh = Signal(planes_max)
        m.d.sync += [a_valid.eq(at["valid"]), a_first.eq(at["first"]), a_last.eq(at["last"]),
                     a_word.eq(sp.r_data), a_oh.eq(at["oh"]), a_dst.eq(at["dst"])]
        m.d.sync += [a_row[l].eq(vp.r_data[l]) for l in range(lanes)]
        picked = 0
        for l in range(lanes):
            picked = picked | Mux(at["src"][l], vp.r_data[l].as_unsigned(), 0)
        m.d.sync += a_pick.eq(picked)

        # -- B: accumulate ---------------------------------------------------------------------
        b_valid = Signal()
        acc_v = [Signal(signed(wv), name=f"acc_v{l}") for l in range(lanes)]
        acc_s = [Signal(ws, name=f"acc_s{b}") for b in range(word_bits)]
        m.d.sync += b_valid.eq(a_valid & a_last)
        addend = [Mux(gather, Mux(a_dst[l], a_pick, 0), a_row[l]) for l in range(lanes)]
        with m.If(a_valid):
            m.d.sync += [acc_v[l].eq(Mux(a_first, 0, acc_v[l]) + addend[l])
                         for l in range(lanes)]
            m.d.sync += [acc_s[b].eq(Mux(a_first, 0, acc_s[b]) + Mux(a_word[b], a_oh, 0))
                         for b in range(word_bits)]

        # -- C: range check ------------------------------------------------------------------
        # hi is 2**k - 1, so a sum is in range exactly when none of its bits under ~hi is set
        # (of its complement, for a negative sum of a signed op): a LUT tree per lane, no
        # magnitude comparator.
        nhi_v = Signal(wv)
        nhi_s = Signal(ws)
        m.d.sync += [nhi_v.eq(~hi), nhi_s.eq(~hi)]
        c_valid = Signal()
        res_v = [Signal(signed(wv), name=f"res_v{l}") for l in range(lanes)]
        ok_v, neg_v = Signal(lanes), Signal(lanes)
        res_s = [Signal(ws, name=f"res_s{b}") for b in range(word_bits)]
        ok_s = Signal(word_bits)
        m.d.sync += c_valid.eq(b_valid)
        for l in range(lanes):
            sign = acc_v[l][-1]
            flip = Mux(sign & signed_sat, Const(-1, signed(wv)), 0)
            m.d.sync += [res_v[l].eq(acc_v[l]), neg_v[l].eq(sign),
                         ok_v[l].eq(((acc_v[l] ^ flip).as_unsigned() & nhi_v) == 0)]
        for b in range(word_bits):
            m.d.sync += [res_s[b].eq(acc_s[b]), ok_s[b].eq((acc_s[b] & nhi_s) == 0)]

        # -- D: saturate, mask, write --------------------------------------------------------
        q = [Signal(abits, name=f"q{i}") for i in range(4)]          # write pointers
        wr = [Signal(cnt, name=f"wr{i}") for i in range(4)]          # remaining writes
        wr_z = [Signal(name=f"wr{i}_z") for i in range(4)]
        with m.If(s3):
            m.d.sync += [q[i].eq(d.dst_base) for i in range(4)]
            m.d.sync += [wr[i].eq(wcounts[i] - 1) for i in range(4)]
            m.d.sync += [wr_z[i].eq(wcounts[i] == 1) for i in range(4)]
        last_column = wr_z[2]

        w_en = Signal()
        w_addr = Signal(abits)
        out_v = [Signal(signed(sb), name=f"out_v{l}") for l in range(lanes)]
        shift = [Signal(ws, name=f"shift{b}") for b in range(word_bits)]
        w_word = Signal(word_bits)
        left = Signal(FIELD_BITS["out_bits"])                       # planes still to write
        left_nz = Signal()
        write = Signal()
        m.d.sync += w_en.eq(write)

        sat_s = [Mux(~last_column | bit_mask[b], Mux(ok_s[b], res_s[b], hi[:ws]), 0)
                 for b in range(word_bits)]
        with m.If(c_valid):
            for l in range(lanes):
                sat = Mux(ok_v[l], res_v[l], Mux(neg_v[l], lo, hi))
                m.d.sync += out_v[l].eq(Mux(~last_column | lane_mask[l], sat, 0))
            m.d.sync += [shift[b].eq(sat_s[b] >> 1) for b in range(word_bits)]
            m.d.sync += w_word.eq(Cat(s[0] for s in sat_s))
            m.d.comb += write.eq(jw_any)
            m.d.sync += [left.eq(Mux(jw_any, jw - 1, 0)), left_nz.eq(jw_many)]
        with m.Elif(left_nz):
            m.d.sync += [shift[b].eq(shift[b] >> 1) for b in range(word_bits)]
            m.d.sync += [w_word.eq(Cat(s[0] for s in shift)), left.eq(left - 1),
                         left_nz.eq(left != 1)]
            m.d.comb += write.eq(1)

        # Write pointers: (t, n, g | w, j), j innermost. Level i advances when every inner
        # level wraps (one-hot over i); the inner pointers restart from it.
        adv = [Signal(name=f"adv{i}") for i in range(4)]
        for i in range(4):
            m.d.comb += adv[i].eq(~wr_z[i] & Cat(*wr_z[i + 1:], Const(1)).all())
        ups = [q[i] + wst[i] for i in range(4)]
        with m.If(write):
            m.d.sync += w_addr.eq(q[3])
            for j in range(4):
                chosen = 0
                for i in range(j + 1):
                    chosen = chosen | Mux(adv[i], ups[i], 0)
                m.d.sync += q[j].eq(Mux(Cat(*adv[:j + 1]).any(), chosen, q[j]))
            for i in range(4):
                with m.If(adv[i]):
                    m.d.sync += [wr[i].eq(wr[i] - 1), wr_z[i].eq(wr[i] == 1)]
                    m.d.sync += [wr[j].eq(mm[j]) for j in range(i + 1, 4)]
                    m.d.sync += [wr_z[j].eq(mm_z[j]) for j in range(i + 1, 4)]

        dst_values = dst == Memory.VALUES
        dst_scores = dst == Memory.SCORES
        m.d.comb += [
            vp.w_addr.eq(w_addr), vp.w_en.eq(w_en & ~spikes & dst_values),
            op_.w_addr.eq(w_addr), op_.w_en.eq(w_en & ~spikes & dst_scores),
            sp.w_addr.eq(w_addr), sp.w_en.eq(w_en & spikes),
            sp.w_data.eq(w_word),
        ]
        m.d.comb += [vp.w_data[l].eq(out_v[l]) for l in range(lanes)]
        m.d.comb += [op_.w_data[l].eq(out_v[l]) for l in range(lanes)]

        # -- control ---------------------------------------------------------------------------
        drained = ~Cat(issue, *(t["valid"] for t in tags[1:]), a_valid, b_valid, c_valid).any()
        m.d.sync += [s1.eq(self.start & ~running), s2.eq(s1), s3.eq(s2)]
        with m.If(running & ~s1 & ~s2 & ~s3 & (issued | empty) & drained & ~left_nz
                  & ~write):
            m.d.sync += running.eq(0)
        with m.If(self.start & ~running):
            m.d.sync += running.eq(1)
        return m
