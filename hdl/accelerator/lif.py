"""The LIF executor: runs an :attr:`~spikeforge.contract.program.Op.LIF` descriptor, memory to
memory, one lane group (a row of ``lanes`` neurons) per cycle."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring

from spikeforge.contract.program import FIELD_BITS, Reset, memory_map

from .ports import READ_LATENCY, address_bits, executor_signature

__all__ = ["LifExecutor", "MEMORIES", "WRITE_DELAY", "ROW_INTERVAL"]

#: The memories the executor has a port to.
MEMORIES = ("values", "thresholds", "membranes", "spikes")

# The largest k a descriptor can carry (its field's width); F can be up to 63 likewise.
_MAX_TAU_LOG2 = (1 << FIELD_BITS["tau_log2"]) - 1

# The row of (t, n, g) is issued in cycle 0 (values read). Its stages, each ending in
# registers: A1 (cycle 2, the values row arrives), A2 (3, the membrane row), B, C (5, the
# thresholds row), D, E, F, G (9); the writes are issued in cycle 10 from G's registers.
_COMPUTE_STAGES = 8
#: Cycles from a row's values read to its membrane and spike writes.
WRITE_DELAY = READ_LATENCY + _COMPUTE_STAGES
# Cycles after the values read that the membrane and the thresholds rows are read.
_MEMBRANE_READ = 1
_THRESHOLD_READ = 3
#: Least cycles between two reads of one membrane row: its write lands before the next read.
ROW_INTERVAL = WRITE_DELAY - _MEMBRANE_READ + 1


class LifExecutor(wiring.Component):
    """Programmable LIF layer: exactly :meth:`spikeforge.golden.accelerator.Accelerator._lif`
    (:func:`spikeforge.golden.lif.lif_int`) on the descriptor ``desc``.

    Operation
        For step ``t < steps``, token ``n < out_tokens``, lane group ``g < lane_groups`` (in this
        loop order, ``t`` outermost), with ``F = frac_bits``, ``k = tau_log2``, ``M =
        membrane_bits`` and per lane (channel ``c = g * lanes + l``)::

            X     = values[a_base + t * a_step + n * a_token + g]       (a_step 0: broadcast)
            theta = thresholds[threshold_base + g]
            V     = 0 if t == 0 else membranes[n * lane_groups + g]
            H     = sat_M(V + (((X << F) - V) >> k))                     (>>: floor)
            S     = H >= theta << F
            V'    = (0 if reset == HARD else sat_M(H - (theta << F))) if S else H
            membranes[n * lane_groups + g] = V'

        ``S`` of channel ``c`` is bit ``c % word_bits`` of spike word
        ``dst_base + t * dst_step + n * dst_token + c // word_bits``; bits of channels from
        ``out_channels`` on are 0. A word holds ``word_bits / lanes`` lane groups: it is
        assembled in a register and written once, after its last group (or the token's).
        Membranes are scratch (``out_tokens * lane_groups`` rows from 0).

    Exactness (every value a descriptor's fields can carry)
        ``(X << F) - V`` is not kept at its full width (``value_bits + 63`` bits): ``X << F``
        is held in ``membrane_bits + 8`` bits (``8`` = 1 + the largest ``k``, 7). When it does
        not fit, ``H`` is the saturation limit of ``X``'s sign whatever ``V`` and ``k``
        (``|X << F| >= 2**(M + k)`` puts ``V + ((X << F) - V) / 2**k`` past ``M`` bits), so
        the flag of that overflow selects the limit. Likewise ``theta << F`` is held in
        ``membrane_bits + 1`` bits; one that does not fit is beyond every ``H``: ``S`` is its
        sign and a soft reset saturates high. Everything else is computed at full width, so
        the result is exactly the unbounded golden one. ``k = 0`` computes ``H = sat_M(X <<
        F)``; ``M`` above ``config.membrane_bits`` acts as ``config.membrane_bits`` and below
        1 as 1 (the compiler emits ``2 <= M <= config.membrane_bits``, ``k >= 1``).

    Pipeline and cycles
        One row per cycle. The issue stage reads the values row of ``(t, n, g)`` at addresses
        kept by counters (adds only, no multiplier); the membrane row is read one cycle later
        and the thresholds row three cycles later, each arriving
        (:data:`~.ports.READ_LATENCY`) as its first stage needs it. Eight compute stages, each
        at most one carry chain or a mux tree: A1 ``X << F[0:3]`` and whether ``X << F`` fits,
        A2 ``<< 8 * F[3:6]``, B ``- V``, C ``>> k`` (and ``theta << F[0:3]``), D ``+ V``
        (``theta << 8 * F[3:6]``), E the saturation check against the runtime ``M``, F
        saturate and compare, G reset and spike word. A row's membrane and spike writes are
        issued :data:`WRITE_DELAY` (10) cycles after its values read, 9 after its membrane
        read. A membrane row is read again one step later: when a step has fewer than
        :data:`ROW_INTERVAL` (10) rows, the first row of the next step waits until 10 cycles
        after the first row of the step before, so no read comes before the write of its
        row. ``busy`` is high from the cycle after ``start`` until the last write is issued:
        ``(steps - 1) * max(rows, 10) + rows + 10`` cycles with ``rows = out_tokens *
        lane_groups`` (:meth:`cycles`; ``steps * rows + 10`` from 10 rows per step on).

    Parameters
    ----------
    config : :class:`spikeforge.contract.configs.Config`
        ``word_bits`` must be a multiple of ``lanes``.

    Members
    -------
    desc, start, busy ; values, thresholds, membranes, spikes
        :func:`~.ports.executor_signature` with :data:`MEMORIES`.
    """

    def __init__(self, config):
        lanes, word_bits = config.lanes, config.word_bits
        if not isinstance(lanes, int) or lanes < 1:
            raise ValueError(f"lanes must be a positive integer, not {lanes!r}")
        if word_bits % lanes:
            raise ValueError(f"word_bits ({word_bits}) must be a multiple of lanes ({lanes})")
        for name in ("value_bits", "threshold_bits", "membrane_bits"):
            if getattr(config, name) < 2:
                raise ValueError(f"{name} must be at least 2, not {getattr(config, name)!r}")
        self._config = config
        super().__init__(executor_signature(config, MEMORIES))

    config = property(lambda self: self._config)
    #: Cycles from a row's reads to its writes.
    write_delay = WRITE_DELAY

    def cycles(self, steps, tokens, lane_groups):
        """Cycles ``busy`` is high for a descriptor of ``steps``, ``tokens``, ``lane_groups``."""
        rows = tokens * lane_groups
        if not steps * rows:
            return 1
        return (steps - 1) * max(rows, ROW_INTERVAL) + rows + WRITE_DELAY

    def elaborate(self, platform):
        m = Module()
        c = self._config
        lanes, word_bits = c.lanes, c.word_bits
        per_word = word_bits // lanes                   # lane groups per spike word
        vb, tb, mc = c.value_bits, c.threshold_bits, c.membrane_bits
        wy = mc + _MAX_TAU_LOG2 + 1                     # X << F held in wy bits
        wt = mc + 1                                     # theta << F held in wt bits
        specs = memory_map(c)
        d = self.desc
        vp, tp, mp, sp = self.values, self.thresholds, self.membranes, self.spikes
        pad = ROW_INTERVAL

        # -- per-descriptor constants, registered at start -------------------------------------
        mask_x = Signal(vb - 1)         # bit i: X[i] != X[i+1] means X << F overflows wy bits
        big_x = Signal()                # F >= wy: any nonzero X overflows
        mask_t = Signal(tb - 1)
        big_t = Signal()
        mask_m = Signal(wy + 1)         # bit i: i >= M - 1 (the saturation check of H)
        lo = Signal(signed(mc))         # -2**(M-1)
        hi = Signal(signed(mc))         # 2**(M-1) - 1
        groups_m2 = Signal(8)           # lane_groups - 2: g + 1 is the last group
        tokens_m2 = Signal(14)
        single_g = Signal()             # one lane group: every group is the last
        single_n = Signal()
        steps_m1 = Signal(5)
        empty = Signal()

        m_eff = Signal(range(mc + 1))
        with m.If(d.membrane_bits > mc):
            m.d.comb += m_eff.eq(mc)
        with m.Elif(d.membrane_bits == 0):
            m.d.comb += m_eff.eq(1)
        with m.Else():
            m.d.comb += m_eff.eq(d.membrane_bits)

        begin = Signal()
        m.d.comb += begin.eq(self.start & ~self.busy)
        with m.If(begin):
            m.d.sync += [
                mask_x.eq(Cat(d.frac_bits >= wy - 1 - i for i in range(vb - 1))),
                big_x.eq(d.frac_bits >= wy),
                mask_t.eq(Cat(d.frac_bits >= wt - 1 - i for i in range(tb - 1))),
                big_t.eq(d.frac_bits >= wt),
                mask_m.eq(Cat(m_eff <= i + 1 for i in range(wy + 1))),
                lo.eq(Const(-1, signed(mc)) << (m_eff - 1).as_unsigned()),
                hi.eq(~(Const(-1, signed(mc)) << (m_eff - 1).as_unsigned())),
                groups_m2.eq(d.lane_groups - 2), single_g.eq(d.lane_groups == 1),
                tokens_m2.eq(d.out_tokens - 2), single_n.eq(d.out_tokens == 1),
                steps_m1.eq(d.steps - 1),
                empty.eq((d.lane_groups == 0) | (d.out_tokens == 0) | (d.steps == 0)),
            ]

        # -- issue: counters over (t, n, g) and the addresses they give -----------------------
        running = Signal()
        t_zero = Signal()
        step_first = Signal()
        since = Signal(range(pad + 1))  # cycles since the first row of the current step
        g = Signal(8)
        n = Signal(14)
        t = Signal(5)
        row = Signal(address_bits(specs["membranes"].depth))
        left = Signal(12)               # channels from this group's first lane on
        slot = Signal(range(per_word))
        va, va_tok, va_step = Signal(20), Signal(20), Signal(20)
        ta = Signal(16)
        sa, sa_tok, sa_step = Signal(20), Signal(20), Signal(20)

        # Registered "last group / last token" flags: they steer every counter.
        last_g, last_n = Signal(), Signal()
        last_t = t == steps_m1
        go = Signal()
        m.d.comb += go.eq(running & ~empty & (~step_first | (since >= pad)))

        with m.If(begin):
            m.d.sync += [
                last_g.eq(d.lane_groups == 1), last_n.eq(d.out_tokens == 1),
                running.eq(1), t_zero.eq(1), step_first.eq(1), since.eq(pad),
                g.eq(0), n.eq(0), t.eq(0), row.eq(0), left.eq(d.out_channels), slot.eq(0),
                va.eq(d.a_base), va_tok.eq(d.a_base), va_step.eq(d.a_base),
                ta.eq(d.threshold_base),
                sa.eq(d.dst_base), sa_tok.eq(d.dst_base), sa_step.eq(d.dst_base),
            ]
        with m.Elif(empty):
            m.d.sync += running.eq(0)
        with m.Elif(go):
            m.d.sync += step_first.eq(last_g & last_n)
            with m.If(step_first):
                m.d.sync += since.eq(1)
            with m.Elif(since < pad):
                m.d.sync += since.eq(since + 1)
            with m.If(last_g):
                m.d.sync += [g.eq(0), ta.eq(d.threshold_base), left.eq(d.out_channels),
                             slot.eq(0), last_g.eq(single_g)]
                with m.If(last_n):
                    next_va, next_sa = va_step + d.a_step, sa_step + d.dst_step
                    m.d.sync += [
                        n.eq(0), row.eq(0), t.eq(t + 1), t_zero.eq(0), last_n.eq(single_n),
                        va.eq(next_va), va_tok.eq(next_va), va_step.eq(next_va),
                        sa.eq(next_sa), sa_tok.eq(next_sa), sa_step.eq(next_sa),
                    ]
                    with m.If(last_t):
                        m.d.sync += running.eq(0)
                with m.Else():
                    next_va, next_sa = va_tok + d.a_token, sa_tok + d.dst_token
                    m.d.sync += [
                        n.eq(n + 1), row.eq(row + 1), last_n.eq(n == tokens_m2),
                        va.eq(next_va), va_tok.eq(next_va), sa.eq(next_sa), sa_tok.eq(next_sa),
                    ]
            with m.Else():
                m.d.sync += [g.eq(g + 1), row.eq(row + 1), ta.eq(ta + 1), va.eq(va + 1),
                             left.eq(left - lanes), last_g.eq(g == groups_m2)]
                if per_word > 1:
                    with m.If(slot == per_word - 1):
                        m.d.sync += [slot.eq(0), sa.eq(sa + 1)]
                    with m.Else():
                        m.d.sync += slot.eq(slot + 1)
                else:
                    m.d.sync += sa.eq(sa + 1)
        with m.Elif(running & (since < pad)):
            m.d.sync += since.eq(since + 1)

        # -- the row's bookkeeping, delayed to each stage: meta[i] is the row issued i cycles
        # ago ----------------------------------------------------------------------------------
        meta_layout = {
            "valid": 1, "fresh": 1, "row": len(row), "threshold": len(tp.r_addr),
            "mask": lanes, "slot": len(slot), "word_last": 1, "word_addr": len(sp.w_addr),
        }

        def meta_signal(i):
            return {name: Signal(width, name=f"s{i}_{name}") for name, width in
                    meta_layout.items()}

        meta = [meta_signal(0)]
        m.d.comb += [
            meta[0]["valid"].eq(go), meta[0]["fresh"].eq(t_zero), meta[0]["row"].eq(row),
            meta[0]["threshold"].eq(ta),
            meta[0]["mask"].eq(Cat(left > lane for lane in range(lanes))),
            meta[0]["slot"].eq(slot),
            meta[0]["word_last"].eq(last_g | (slot == per_word - 1)),
            meta[0]["word_addr"].eq(sa),
        ]
        for i in range(1, WRITE_DELAY + 1):
            meta.append(meta_signal(i))
            m.d.sync += [meta[i][k].eq(meta[i - 1][k]) for k in meta_layout]

        # Each operand is read when its first stage needs it, so nothing is carried for long
        # and the membrane is read as late as it can be (the hazard window is shorter).
        m.d.comb += [
            vp.r_en.eq(go), vp.r_addr.eq(va),
            mp.r_en.eq(meta[_MEMBRANE_READ]["valid"] & ~meta[_MEMBRANE_READ]["fresh"]),
            mp.r_addr.eq(meta[_MEMBRANE_READ]["row"]),
            tp.r_en.eq(meta[_THRESHOLD_READ]["valid"]),
            tp.r_addr.eq(meta[_THRESHOLD_READ]["threshold"]),
        ]

        def overflow(value, mask):
            """Some bit ``i`` with ``mask[i]`` differs from bit ``i + 1`` of ``value``."""
            return ((value[:-1] ^ value[1:]) & mask).any()

        def fits_flags(value, mask, big):
            """``value << F`` does not fit (``mask``, ``big`` of F); ``value``'s sign."""
            return overflow(value, mask) | (big & value.any()), value[-1]

        # Each lane has its own copy of the shift amounts and of the reset mode: shared, each
        # bit of F would drive the mux trees of every lane (thousands of loads). Yosys merges
        # registers with the same inputs, so copy l also reloads the (stable) descriptor
        # l + 1 cycles after start: every copy has an enable of its own.
        reload = Signal(lanes)
        m.d.sync += reload.eq(Cat(begin, reload[:-1]))

        v_next = Signal(mp.w_data.shape())
        spikes = Signal(lanes)
        for lane in range(lanes):
            def reg(name, value, shape=None):
                r = Signal(shape if shape is not None else value.shape(), name=f"{name}{lane}")
                m.d.sync += r.eq(value)
                return r

            frac = Signal(6, name=f"frac{lane}")
            tau = Signal(3, name=f"tau{lane}")
            soft = Signal(name=f"soft{lane}")
            with m.If(begin | reload[lane]):
                m.d.sync += [frac.eq(d.frac_bits), tau.eq(d.tau_log2),
                             soft.eq(d.reset == int(Reset.SOFT))]
            high_shift = Cat(Const(0, 3), frac[3:])

            # A1 (values row): X << F[0:3], whether X << F fits wy bits.
            x = vp.r_data[lane]
            x_over, x_sign = fits_flags(x, mask_x, big_x)
            a1_x = reg("a1_x", x << frac[:3], signed(vb + 7))
            a1_ox, a1_sx = reg("a1_ox", x_over), reg("a1_sx", x_sign)
            # A2 (membrane row): X << F in wy bits; V (0 at step 0).
            a2_x = reg("a2_x", (a1_x << high_shift)[:wy], signed(wy))
            a2_v = reg("a2_v", Mux(meta[3]["fresh"], 0, mp.r_data[lane]), signed(mc))
            a2_ox, a2_sx = reg("a2_ox", a1_ox), reg("a2_sx", a1_sx)
            # B: D = (X << F) - V, exact.
            b_d = reg("b_d", a2_x - a2_v, signed(wy + 1))
            b_v, b_ox, b_sx = reg("b_v", a2_v), reg("b_ox", a2_ox), reg("b_sx", a2_sx)
            # C: D >> k. T1 (thresholds row): theta << F[0:3], whether theta << F fits wt bits.
            c_l = reg("c_l", b_d >> tau, signed(wy + 1))
            c_v, c_ox, c_sx = reg("c_v", b_v), reg("c_ox", b_ox), reg("c_sx", b_sx)
            theta = tp.r_data[lane]
            t_over, t_sign = fits_flags(theta, mask_t, big_t)
            c_t = reg("c_t", theta << frac[:3], signed(tb + 7))
            c_ot, c_st = reg("c_ot", t_over), reg("c_st", t_sign)
            # D: V + (D >> k), unsaturated. T2: theta << F in wt bits.
            d_h = reg("d_h", c_v + c_l, signed(wy + 2))
            d_ox, d_sx = reg("d_ox", c_ox), reg("d_sx", c_sx)
            d_t = reg("d_t", (c_t << high_shift)[:wt], signed(wt))
            d_ot, d_st = reg("d_ot", c_ot), reg("d_st", c_st)
            # E: H leaves M bits, or X << F did not fit (then H is the limit of X's sign);
            # the soft reset's limit: H - (theta << F) > hi iff H > hi + (theta << F).
            e_sat = reg("e_sat", d_ox | overflow(d_h, mask_m))
            e_sign = reg("e_sign", Mux(d_ox, d_sx, d_h[-1]))
            e_h = reg("e_h", d_h[:mc], signed(mc))
            e_t, e_lim = reg("e_t", d_t), reg("e_lim", hi + d_t, signed(wt + 1))
            e_ot, e_st = reg("e_ot", d_ot), reg("e_st", d_st)
            # F: H saturated; S. theta << F past wt bits is beyond every H: S is its sign, and
            # a soft reset (only for a negative theta then) saturates high.
            h = Mux(e_sat, Mux(e_sign, lo, hi), e_h)
            f_h = reg("f_h", h, signed(mc))
            f_s = reg("f_s", Mux(e_ot, e_st, h >= e_t))
            f_hs = reg("f_hs", (h - e_t)[:mc], signed(mc))
            f_high = reg("f_high", e_ot | (h > e_lim))
            # G: the membrane after the reset, the spike (0 past out_channels).
            after = Mux(soft, Mux(f_high, hi, f_hs), 0)
            m.d.comb += [
                v_next[lane].eq(Mux(f_s, after, f_h)),
                spikes[lane].eq(f_s & meta[WRITE_DELAY - 1]["mask"][lane]),
            ]

        # G: membrane write and spike word assembly, registered; written the next cycle.
        g_meta = meta[WRITE_DELAY - 1]
        word = Signal(word_bits)
        word_next = Signal(word_bits)
        for s in range(per_word):
            part = word_next[s * lanes:(s + 1) * lanes]
            keep = word[s * lanes:(s + 1) * lanes]
            m.d.comb += part.eq(Mux(g_meta["slot"] == s, spikes,
                                    Mux(g_meta["slot"] == 0, 0, keep)))
        with m.If(g_meta["valid"]):
            m.d.sync += word.eq(word_next)
        w_meta = meta[WRITE_DELAY]
        mem_data = Signal.like(mp.w_data)
        spike_data = Signal(word_bits)
        m.d.sync += [mem_data.eq(v_next), spike_data.eq(word_next)]
        m.d.comb += [
            mp.w_en.eq(w_meta["valid"]), mp.w_addr.eq(w_meta["row"]), mp.w_data.eq(mem_data),
            sp.w_en.eq(w_meta["valid"] & w_meta["word_last"]),
            sp.w_addr.eq(w_meta["word_addr"]), sp.w_data.eq(spike_data),
        ]
        m.d.comb += self.busy.eq(running | Cat(mi["valid"] for mi in meta[1:]).any())
        return m
