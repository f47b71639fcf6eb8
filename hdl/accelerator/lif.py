"""The LIF executor: runs an :attr:`~spikeforge.contract.program.Op.LIF` descriptor, memory to
memory, one lane group (a row of ``lanes`` neurons) per cycle."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring

from spikeforge.contract.program import FIELD_BITS, Reset, memory_map

from .ports import READ_LATENCY, address_bits, executor_signature

__all__ = ["LifExecutor", "MEMORIES", "WRITE_DELAY", "ROW_INTERVAL", "OVERHEAD"]

#: The memories the executor has a port to.
MEMORIES = ("values", "thresholds", "membranes", "spikes")

# The largest k a descriptor can carry (its field's width); F can be up to 63 likewise.
_MAX_TAU_LOG2 = (1 << FIELD_BITS["tau_log2"]) - 1

# The row of (t, n, g) is issued in cycle 0 (values read). Its stages, each ending in
# registers: A1 (cycle READ_LATENCY, the values row arrives), A2 (the membrane row), B, C, D
# (the thresholds row), E, F, G1, G2, H; the writes are issued in the cycle after H from its
# registers.
_COMPUTE_STAGES = 10
#: Cycles from a row's values read to its membrane and spike writes.
WRITE_DELAY = READ_LATENCY + _COMPUTE_STAGES
# Cycles after the values read that the membrane and the thresholds rows are read.
_MEMBRANE_READ = 1
_THRESHOLD_READ = 4
#: Least cycles between two reads of one membrane row: its write lands before the next read.
ROW_INTERVAL = WRITE_DELAY - _MEMBRANE_READ + 1
#: Cycles ``busy`` is high beyond one per row (with at least ROW_INTERVAL rows per step): one
#: to register the descriptor's constants, then the pipeline's.
OVERHEAD = WRITE_DELAY + 1


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
        and the thresholds row four cycles later, each arriving
        (:data:`~.ports.READ_LATENCY`) as its first stage needs it. Nine compute stages, each
        one carry chain fed by registers or a few LUT levels: A1 ``X << F[0:3]`` (and half of
        the check that ``X << F`` fits), A2 ``<< 8 * F[3:6]``, B ``- V``, C ``>> k``, D ``+
        V`` (``theta << F[0:3]``), E half of the check of ``H`` against the runtime ``M``
        (``theta << 8 * F[3:6]``), F saturate, G compare (the sign of ``H - (theta << F)``),
        H reset and spike word. A row's membrane and spike writes are issued
        :data:`WRITE_DELAY` (11) cycles after its values read, 10 after its membrane read. A
        membrane row is read again one step later: when a step has fewer than
        :data:`ROW_INTERVAL` (11) rows, the first row of the next step waits until 11 cycles
        after the first row of the step before, so no read comes before the write of its
        row. The first row issues two cycles after ``start`` (the descriptor's constants are
        registered in between). ``busy`` is high from the cycle after ``start`` until the
        last write is issued: ``(steps - 1) * max(rows, 11) + rows + 12`` cycles with ``rows =
        out_tokens * lane_groups`` (:meth:`cycles`; ``steps * rows +`` :data:`OVERHEAD` (12)
        from 11 rows per step on).

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
        return (steps - 1) * max(rows, ROW_INTERVAL) + rows + OVERHEAD

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
        begin = self.start

        # -- per-descriptor constants, registered at start -------------------------------------
        mask_x = Signal(vb - 1)         # bit i: X[i] != X[i+1] means X << F overflows wy bits
        big_x = Signal()                # F >= wy: any nonzero X overflows
        mask_t = Signal(tb - 1)
        big_t = Signal()
        mask_m = Signal(wy + 1, reset_less=True)    # bit i: i >= M - 1 (H's saturation check)
        hi = Signal(signed(mc), reset_less=True)    # 2**(M-1) - 1
        lo = ~hi                        # -2**(M-1)
        groups_m1 = Signal(8)
        tokens_m1 = Signal(14)
        single_g = Signal()             # one lane group: every group is the last
        single_n = Signal()

        m_eff = Signal(range(mc + 1))   # M, clamped to 1 .. config.membrane_bits
        empty = Signal()                # no rows at all
        with m.If(begin):
            m.d.sync += [
                m_eff.eq(Mux(d.membrane_bits > mc, mc,
                             Mux(d.membrane_bits == 0, 1, d.membrane_bits))),
                empty.eq((d.lane_groups == 0) | (d.out_tokens == 0) | (d.steps == 0)),
                mask_x.eq(Cat(d.frac_bits >= wy - 1 - i for i in range(vb - 1))),
                big_x.eq(d.frac_bits >= wy),
                mask_t.eq(Cat(d.frac_bits >= wt - 1 - i for i in range(tb - 1))),
                big_t.eq(d.frac_bits >= wt),
                groups_m1.eq(d.lane_groups - 1), single_g.eq(d.lane_groups == 1),
                tokens_m1.eq(d.out_tokens - 1), single_n.eq(d.out_tokens == 1),
            ]
        # From the registered M (valid the cycle after start; first used 9 cycles later).
        m.d.sync += [
            mask_m.eq(Cat(m_eff <= i + 1 for i in range(wy + 1))),
            hi.eq(Cat(m_eff > i + 1 for i in range(mc))),
        ]

        # -- issue: counters over (t, n, g) and the addresses they give -----------------------
        # ``go`` (a register) issues the row the counters point at; its next value is worked
        # out a cycle ahead so that it reaches the counters' enables straight from a flop. The
        # first row issues two cycles after start (the cycle between registers the constants).
        started = Signal()              # the cycle after start
        running = Signal()              # rows are left to issue
        go = Signal()
        t_zero = Signal()               # the counters are in step 0
        step_first = Signal()           # the counters point at the first row of a step
        since = Signal(range(pad + 1))  # cycles since the first row of the current step
        g_left, n_left, t_left = Signal(8), Signal(14), Signal(5)     # rows after this one
        last_g, last_n, last_t = Signal(), Signal(), Signal()
        row = Signal(address_bits(specs["membranes"].depth))
        left = Signal(12)               # channels from this group's first lane on
        slot = Signal(range(per_word))
        va, va_tok, va_step = Signal(20), Signal(20), Signal(20)
        ta = Signal(16)
        sa, sa_tok, sa_step = Signal(20), Signal(20), Signal(20)

        step_end = go & last_g & last_n
        running_next = Signal()
        step_first_next = Signal()
        since_next = Signal.like(since)
        m.d.comb += [
            running_next.eq(Mux(started, ~empty, running & ~(step_end & last_t))),
            step_first_next.eq(Mux(begin, 1, Mux(go, last_g & last_n, step_first))),
            since_next.eq(Mux(begin, pad, Mux(go & step_first, 1,
                                              Mux(since < pad, since + 1, since)))),
        ]
        m.d.sync += [
            started.eq(begin), running.eq(running_next), step_first.eq(step_first_next),
            since.eq(since_next),
            go.eq(running_next & (~step_first_next | (since_next >= pad))),
        ]
        with m.If(begin):
            m.d.sync += [
                t_zero.eq(1),
                g_left.eq(d.lane_groups - 1), n_left.eq(d.out_tokens - 1),
                t_left.eq(d.steps - 1),
                last_g.eq(d.lane_groups == 1), last_n.eq(d.out_tokens == 1),
                last_t.eq(d.steps == 1),
                row.eq(0), left.eq(d.out_channels), slot.eq(0),
                va.eq(d.a_base), va_tok.eq(d.a_base), va_step.eq(d.a_base),
                ta.eq(d.threshold_base),
                sa.eq(d.dst_base), sa_tok.eq(d.dst_base), sa_step.eq(d.dst_base),
            ]
        with m.Elif(go):
            with m.If(last_g):
                m.d.sync += [g_left.eq(groups_m1), last_g.eq(single_g),
                             ta.eq(d.threshold_base), left.eq(d.out_channels), slot.eq(0)]
                with m.If(last_n):
                    next_va, next_sa = va_step + d.a_step, sa_step + d.dst_step
                    m.d.sync += [
                        n_left.eq(tokens_m1), last_n.eq(single_n),
                        t_left.eq(t_left - 1), last_t.eq(t_left == 1), t_zero.eq(0),
                        row.eq(0),
                        va.eq(next_va), va_tok.eq(next_va), va_step.eq(next_va),
                        sa.eq(next_sa), sa_tok.eq(next_sa), sa_step.eq(next_sa),
                    ]
                with m.Else():
                    next_va, next_sa = va_tok + d.a_token, sa_tok + d.dst_token
                    m.d.sync += [
                        n_left.eq(n_left - 1), last_n.eq(n_left == 1), row.eq(row + 1),
                        va.eq(next_va), va_tok.eq(next_va), sa.eq(next_sa), sa_tok.eq(next_sa),
                    ]
            with m.Else():
                m.d.sync += [g_left.eq(g_left - 1), last_g.eq(g_left == 1), row.eq(row + 1),
                             ta.eq(ta + 1), va.eq(va + 1), left.eq(left - lanes)]
                if per_word > 1:
                    with m.If(slot == per_word - 1):
                        m.d.sync += [slot.eq(0), sa.eq(sa + 1)]
                    with m.Else():
                        m.d.sync += slot.eq(slot + 1)
                else:
                    m.d.sync += sa.eq(sa + 1)

        # -- the row's bookkeeping, delayed to each stage: meta[i] is the row issued i cycles
        # ago ----------------------------------------------------------------------------------
        meta_layout = {
            "valid": 1, "fresh": 1, "row": len(row), "threshold": len(tp.r_addr),
            "left": len(left), "mask": lanes, "slot": len(slot), "word_last": 1,
            "word_addr": len(sp.w_addr),
        }

        def meta_signal(i):
            # Only ``valid`` is reset: the rest is data a valid row carries.
            return {name: Signal(width, name=f"s{i}_{name}", reset_less=name != "valid")
                    for name, width in meta_layout.items()}

        meta = [meta_signal(0)]
        m.d.comb += [
            meta[0]["valid"].eq(go), meta[0]["fresh"].eq(t_zero), meta[0]["row"].eq(row),
            meta[0]["threshold"].eq(ta), meta[0]["left"].eq(left),
            meta[0]["slot"].eq(slot),
            meta[0]["word_last"].eq(last_g | (slot == per_word - 1)),
            meta[0]["word_addr"].eq(sa),
        ]
        for i in range(1, WRITE_DELAY + 1):
            meta.append(meta_signal(i))
            m.d.sync += [meta[i][k].eq(meta[i - 1][k]) for k in meta_layout if k != "mask"]
            # The lanes a group has (its channels below out_channels), from stage 2 on.
            mask = Cat(meta[1]["left"] > lane for lane in range(lanes)) if i == 2 else \
                meta[i - 1]["mask"]
            m.d.sync += meta[i]["mask"].eq(mask)

        # Each operand is read when its first stage needs it, so nothing is carried for long
        # and the membrane is read as late as it can be (the hazard window is shorter).
        m.d.comb += [
            vp.r_en.eq(go), vp.r_addr.eq(va),
            mp.r_en.eq(meta[_MEMBRANE_READ]["valid"] & ~meta[_MEMBRANE_READ]["fresh"]),
            mp.r_addr.eq(meta[_MEMBRANE_READ]["row"]),
            tp.r_en.eq(meta[_THRESHOLD_READ]["valid"]),
            tp.r_addr.eq(meta[_THRESHOLD_READ]["threshold"]),
        ]

        def differs(value, mask):
            """Bit ``i`` set: ``mask[i]`` and bits ``i``, ``i + 1`` of ``value`` differ."""
            return (value[:-1] ^ value[1:]) & mask

        def quads(bits):
            """ORs of ``bits`` four at a time (one LUT level of an OR tree)."""
            return Cat(bits[i:i + 4].any() for i in range(0, len(bits), 4))

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
                r = Signal(shape if shape is not None else value.shape(), name=f"{name}{lane}",
                           reset_less=True)
                m.d.sync += r.eq(value)
                return r

            frac = Signal(6, name=f"frac{lane}", reset_less=True)
            tau = Signal(3, name=f"tau{lane}", reset_less=True)
            soft = Signal(name=f"soft{lane}", reset_less=True)
            with m.If(begin | reload[lane]):
                m.d.sync += [frac.eq(d.frac_bits), tau.eq(d.tau_log2),
                             soft.eq(d.reset == int(Reset.SOFT))]
            high_shift = Cat(Const(0, 3), frac[3:])

            # A1 (the values row arrives): X << F[0:3]; half of the check that X << F fits wy
            # bits (bits that differ where they must not; X nonzero, for F >= wy).
            x = vp.r_data[lane]
            a1_x = reg("a1_x", x << frac[:3], signed(vb + 7))
            a1_xd, a1_xz = reg("a1_xd", quads(differs(x, mask_x))), reg("a1_xz", quads(x))
            a1_sx = reg("a1_sx", x[-1])
            # A2 (the membrane row): X << F in wy bits and whether it overflows; V (0 at t = 0).
            a2_x = reg("a2_x", (a1_x << high_shift)[:wy], signed(wy))
            a2_v = reg("a2_v", Mux(meta[READ_LATENCY + _MEMBRANE_READ]["fresh"], 0,
                                   mp.r_data[lane]), signed(mc))
            a2_ox = reg("a2_ox", a1_xd.any() | (big_x & a1_xz.any()))
            a2_sx = reg("a2_sx", a1_sx)
            # B: D = (X << F) - V, exact.
            b_d = reg("b_d", a2_x - a2_v, signed(wy + 1))
            b_v, b_ox, b_sx = reg("b_v", a2_v), reg("b_ox", a2_ox), reg("b_sx", a2_sx)
            # C: D >> k.
            c_l = reg("c_l", b_d >> tau, signed(wy + 1))
            c_v, c_ox, c_sx = reg("c_v", b_v), reg("c_ox", b_ox), reg("c_sx", b_sx)
            # D: V + (D >> k), unsaturated. T1 (the thresholds row arrives): theta << F[0:3],
            # half of the check that theta << F fits wt bits.
            d_h = reg("d_h", c_v + c_l, signed(wy + 2))
            d_ox, d_sx = reg("d_ox", c_ox), reg("d_sx", c_sx)
            theta = tp.r_data[lane]
            d_t = reg("d_t", theta << frac[:3], signed(tb + 7))
            d_td, d_tz = reg("d_td", quads(differs(theta, mask_t))), reg("d_tz", quads(theta))
            d_st = reg("d_st", theta[-1])
            # E: half of the check that H fits M bits. T2: theta << F in wt bits, whether it
            # overflows.
            e_hd = reg("e_hd", quads(differs(d_h, mask_m)))
            e_h, e_sign = reg("e_h", d_h[:mc], signed(mc)), reg("e_sign", d_h[-1])
            e_ox, e_sx = reg("e_ox", d_ox), reg("e_sx", d_sx)
            e_t = reg("e_t", (d_t << high_shift)[:wt], signed(wt))
            e_ot = reg("e_ot", d_td.any() | (big_t & d_tz.any()))
            e_st = reg("e_st", d_st)
            # F: H saturated: past M bits, or the limit of X's sign when X << F did not fit
            # (whatever V and k, H saturates then).
            saturate = e_ox | e_hd.any()
            f_h = reg("f_h", Mux(saturate, Mux(Mux(e_ox, e_sx, e_sign), lo, hi), e_h))
            f_t, f_ot, f_st = reg("f_t", e_t), reg("f_ot", e_ot), reg("f_st", e_st)
            # G: S = H >= theta << F, the sign of H - (theta << F), the soft reset's difference
            # (then >= 0: it saturates iff a bit from M - 1 up is set; half of that check).
            # theta << F past wt bits is beyond every H: S is its sign, and a soft reset (only
            # for a negative theta then) saturates high.
            # G1 the difference alone (its carry chain is a stage's worth), G2 the rest.
            diff = reg("g1_diff", f_h - f_t, signed(wt + 1))
            g1_ot, g1_st, g1_h = reg("g1_ot", f_ot), reg("g1_st", f_st), reg("g1_h", f_h)
            g_s = reg("g_s", Mux(g1_ot, g1_st, ~diff[-1]))
            g_hq = reg("g_hq", quads(diff[:wt] & mask_m[:wt]))
            g_ot = reg("g_ot", g1_ot)
            g_hs, g_h = reg("g_hs", diff[:mc], signed(mc)), reg("g_h", g1_h)
            # H: the membrane after the reset; the spike (0 past out_channels).
            after = Mux(soft, Mux(g_ot | g_hq.any(), hi, g_hs), 0)
            m.d.comb += [
                v_next[lane].eq(Mux(g_s, after, g_h)),
                spikes[lane].eq(g_s & meta[WRITE_DELAY - 1]["mask"][lane]),
            ]

        # H: membrane write and spike word assembly, registered; written the next cycle.
        h_meta = meta[WRITE_DELAY - 1]
        word = Signal(word_bits, reset_less=True)
        word_next = Signal(word_bits)
        for s in range(per_word):
            part = word_next[s * lanes:(s + 1) * lanes]
            keep = word[s * lanes:(s + 1) * lanes]
            m.d.comb += part.eq(Mux(h_meta["slot"] == s, spikes,
                                    Mux(h_meta["slot"] == 0, 0, keep)))
        with m.If(h_meta["valid"]):
            m.d.sync += word.eq(word_next)
        w_meta = meta[WRITE_DELAY]
        mem_data = Signal.like(mp.w_data, reset_less=True)
        spike_data = Signal(word_bits, reset_less=True)
        m.d.sync += [mem_data.eq(v_next), spike_data.eq(word_next)]
        m.d.comb += [
            mp.w_en.eq(w_meta["valid"]), mp.w_addr.eq(w_meta["row"]), mp.w_data.eq(mem_data),
            sp.w_en.eq(w_meta["valid"] & w_meta["word_last"]),
            sp.w_addr.eq(w_meta["word_addr"]), sp.w_data.eq(spike_data),
        ]
        m.d.comb += self.busy.eq(started | running | Cat(mi["valid"] for mi in meta[1:]).any())
        return m
