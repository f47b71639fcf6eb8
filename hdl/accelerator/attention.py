"""The attention executor: runs an :attr:`~spikeforge.contract.program.Op.ATTENTION`
descriptor, memory to memory, a spike word or a K/Q spike event per cycle."""

from amaranth.hdl import Cat, Elaboratable, Module, Mux, Signal, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory

from spikeforge.contract.program import FIELD_BITS, Variant
from spikeforge.contract.sizes import ceil_div

from ..bits import count_bits, count_to_three, lowest_set_blocked, one_hot_index
from ..memory import RegisteredReadMemory
from .ports import READ_LATENCY, address_bits, executor_signature

__all__ = ["AttentionExecutor", "MEMORIES", "DEFAULT_ATTENTION_CHANNELS", "TOKEN_SLOTS"]

#: The memories the executor has a port to.
MEMORIES = ("spikes", "membranes")
#: Default of the ``attention_channels`` elaboration parameter (capped at ``max_channels``).
DEFAULT_ATTENTION_CHANNELS = 64
#: Tokens the reader may fetch ahead of the consumer (read to pop takes 5 cycles: one token
#: per cycle needs 5).
TOKEN_SLOTS = 6


def _field(name):
    return FIELD_BITS[name]


class _Spikes(Elaboratable):
    """Combinational facts about a spike vector ``x``: ``hot``, its lowest set bit (one-hot,
    two short levels, :func:`~spikeforge.hdl.bits.lowest_set_blocked`), ``two`` (at least two
    set bits), ``three`` (at least three) and ``any``. A submodule of its own, so that its
    trees are evaluated apart from the rest in simulation."""

    def __init__(self, width, block):
        self.x = Signal(width)
        self.hot = Signal(width)
        self.two, self.three, self.any = Signal(), Signal(), Signal()
        self._block = block

    def elaborate(self, platform):
        m = Module()
        hot, _ = lowest_set_blocked(m, self.x, self._block)
        count = count_to_three(m, self.x)
        m.d.comb += [self.hot.eq(hot), self.two.eq(count >= 2), self.three.eq(count == 3),
                     self.any.eq(self.x.any())]
        return m


class AttentionExecutor(wiring.Component):
    """Programmable attention layer: exactly
    :meth:`spikeforge.golden.accelerator.Accelerator._attention`
    (:func:`spikeforge.golden.attention.sdsa_int`) on the descriptor ``desc``.

    Operands (``spikes`` memory, one plane)
        Q = operand ``a``, K = ``b``, V = ``c``, ``C = in_channels`` channels, ``N = in_tokens``
        tokens, ``W = in_plane_words`` words per token. Word ``w`` of token ``n`` of step ``t``
        of operand ``x`` is ``x_base + t * x_step + n * a_token + w`` (all three use
        ``a_token``, as the golden model reads them; a step stride of 0 broadcasts one step
        over ``steps``); channel ``c`` is bit ``c % word_bits`` of word ``c // word_bits``;
        bits of channels from ``C`` on are ignored. The output spikes go to word
        ``dst_base + t * dst_step + n * dst_token + w`` (``w < out_plane_words``), bits from
        ``C`` on 0. Outputs must not overlap the inputs (the compiler never lets them); the
        derived fields must be those the compiler emits (``in_plane_words = out_plane_words
        = ceil(C / word_bits)``, ``lane_groups = ceil(C / lanes)``, ``out_tokens = N``,
        ``head_channels = C / heads``, ``in_steps = steps`` unless broadcast), and
        ``C <= attention_channels``. ``in_tokens = 0`` or ``steps = 0`` writes nothing.

    Variants (field ``variant``), per step ``t``
        ``V1``: ``mask = OR_n (K[n] AND V[n])`` (word-wise), ``out[n] = Q[n] AND mask``.
        ``KV_FIRST`` (SSA, SDSA-3): per head ``h`` of ``D_h = head_channels`` channels,
        ``KV[i][j] = sum_n K[n, i] & V[n, j]`` (``i``, ``j`` in the head) and
        ``A[n, j] = sum_(i in head(j)) Q[n, i] * KV[i][j]``, then the attention LIF (tau 2,
        threshold ``2**(shift-1)``, hard reset) over the steps, membrane per ``(n, j)``.
        ``QK_FIRST`` gives the same integers ``A`` in the other order
        (:func:`~spikeforge.golden.attention.scores_int`; both orders give the same
        integers), so it runs on this same ``KV_FIRST`` datapath.

    Attention LIF
        The golden runs ``lif_int(A, threshold=2**(shift-1), tau_log2=1, frac_bits=T)``.
        With ``tau = 2`` the floor of the integer LIF costs nothing
        (:func:`spikeforge.golden.lif.lif_int`, "For tau = 2 ... the spikes equal the float
        LIF's for any F >= 0": ``floor((V + A) / 2) = floor((floor(V) + A) / 2)``), so the
        executor keeps the integer part of the membrane only (``F = 0``): ``s = V + A``,
        spike iff ``s >= 2**shift``, ``V' = 0`` if it fired else ``s >> 1``. The spikes are
        those of the golden; ``V' < 2**(shift - 1)`` always, so nothing saturates or wraps
        while ``shift < membrane_bits`` (the compiler's ``shift + T + 1 <= membrane_bits``).
        Membranes are scratch: row ``n * lane_groups + g`` lane ``l`` is channel
        ``g * lanes + l`` of token ``n`` (read as 0 in step 0).

    Datapath and loop order
        A reader walks ``t``, then K phase (for each token its ``W`` K words, then its ``W`` V
        words) and Q phase (its ``W`` Q words), one read per cycle, assembles every token's
        channel vectors and queues them (:data:`TOKEN_SLOTS` ahead of the consumer, across
        phases and steps). The consumer, per step:

        * ``V1``: K phase one token per cycle into ``mask``; Q phase one token per ``W_out``
          cycles (its output words, one write per cycle).
        * product: K phase, every K spike ``i`` of a token (zero skipping, one per cycle; a
          token without one takes a cycle) adds the token's V bits into row ``i`` of the KV
          scratch (``attention_channels`` rows of ``attention_channels`` counts: row ``i``
          lane ``j`` is ``sum_n K[n, i] & V[n, j]`` for *every* ``j``), a read-modify-write
          with the two writes in flight forwarded. Q phase, every Q spike ``i`` of a token
          adds row ``i``, masked to the lanes of the head of ``i``, into ``C`` accumulators:
          all heads of a token at once, ``max(1, q)`` cycles for ``q`` Q spikes. The token's
          scores go to a hold register that the LIF drains one lane group (membrane row) per
          cycle, so a token takes ``max(1, q, lane_groups)`` cycles; output words are
          assembled from ``word_bits / lanes`` groups and written once.

        Rows of the KV scratch not written in the current step read as 0 (no clearing pass).
        The head of every channel is set by a counter at the start (``C`` cycles, overlapped
        with the first K phase). Between phases the event pipeline drains (6 cycles).

    Cycles (``busy``), per step
        V1 about ``N * max(3W, W + W_out)`` (reads: ``2W`` K/V + ``W`` Q per token); product
        about ``sum_n max(2W, 1, k_n) + sum_n max(W, 1, q_n, lane_groups)`` plus ~10 cycles
        of pipeline fill and drain per step. The cost model's bound is ``2N`` (v1),
        ``max(N, K_t) + max(N * heads, Q_t)`` (ssa).

    Parameters
    ----------
    config : :class:`spikeforge.contract.configs.Config`
        ``word_bits`` must be a multiple of ``lanes``.
    attention_channels : int
        The largest ``in_channels`` of an ATTENTION descriptor (every variant); sizes the KV
        scratch (``attention_channels**2`` counts of ``bit_length(max_tokens)`` bits, block
        RAM) and the channel vectors. Default ``min(64, max_channels)``; at most
        ``max_channels``. The compiler and the sequencer must refuse a layer past it.

    Members
    -------
    desc, start, busy ; spikes, membranes
        :func:`~.ports.executor_signature` with :data:`MEMORIES`.
    """

    def __init__(self, config, *, attention_channels=None):
        lanes, word_bits = config.lanes, config.word_bits
        if word_bits % lanes:
            raise ValueError(f"word_bits ({word_bits}) must be a multiple of lanes ({lanes})")
        if config.membrane_bits < 2:
            raise ValueError(f"membrane_bits must be at least 2, not {config.membrane_bits!r}")
        if attention_channels is None:
            attention_channels = min(DEFAULT_ATTENTION_CHANNELS, config.max_channels)
        if isinstance(attention_channels, bool) or not isinstance(attention_channels, int):
            raise TypeError(f"attention_channels must be an integer, not "
                            f"{attention_channels!r}")
        if not 1 <= attention_channels <= config.max_channels:
            raise ValueError(f"attention_channels must be in [1, max_channels = "
                             f"{config.max_channels}], not {attention_channels!r}")
        self._config = config
        self._channels = attention_channels
        super().__init__(executor_signature(config, MEMORIES))

    config = property(lambda self: self._config)
    attention_channels = property(lambda self: self._channels)
    #: The largest ``in_channels`` it runs (the sequencer's capacity check reads it).
    max_channels = property(lambda self: self._channels)

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        d = self.desc
        sp, mp = self.spikes, self.membranes
        sync, comb = m.d.sync, m.d.comb
        # Simulation speed: a combinational signal read by the same module makes the simulator
        # evaluate the module again, so intermediate values here are expressions (Python
        # variables), the deep trees live in submodules (_Spikes), and the token queue is a
        # memory with a combinational read port (LUT RAM).

        C = self._channels
        WB, P = cfg.word_bits, cfg.lanes
        per_word = WB // P                              # lane groups per output word
        wmax = ceil_div(C, WB)
        VW = wmax * WB                                  # bits of a token's channel vector
        GP = ceil_div(C, P) * P                         # lanes of the hold register
        gbits = max(1, (ceil_div(C, P) - 1).bit_length())   # a lane group of the hold
        cb = count_bits(cfg.max_tokens)                 # a KV count: <= N
        ab = count_bits(cfg.max_tokens * C)             # a score: <= N * D_h
        vbits = cfg.membrane_bits - 1                   # a membrane: 0 <= V < 2**(shift-1)
        sbits = max(vbits, ab) + 1                      # V + A
        hb = max(1, (C - 1).bit_length())               # a head index
        saddr = address_bits(cfg.spikes_depth)
        maddr = address_bits(cfg.membranes_depth)
        block = next(b for b in (8, 4, 2, 1) if VW % b == 0)

        start = self.start & ~self.busy

        # -- per-descriptor constants, registered at start -------------------------------------
        product = Signal()
        n_m1 = Signal(_field("in_tokens"))
        t_m1 = Signal(_field("steps"))
        w_m1 = Signal(_field("in_plane_words"))
        wo_m1 = Signal(_field("out_plane_words"))
        g_m1 = Signal(_field("lane_groups"))
        dh_m1 = Signal(_field("head_channels"))
        channels = Signal(_field("in_channels"))
        a_token, dst_token = Signal(saddr), Signal(saddr)
        a_step, b_step, c_step, dst_step = (Signal(saddr, name=f"{x}_step") for x in "abcd")
        chmask = Signal(VW)                             # bit c: c < C
        fire_mask = Signal(sbits)                       # bit b: b >= shift
        with m.If(start):
            sync += [
                product.eq(d.variant != Variant.V1),
                n_m1.eq(d.in_tokens - 1), t_m1.eq(d.steps - 1), w_m1.eq(d.in_plane_words - 1),
                wo_m1.eq(d.out_plane_words - 1), g_m1.eq(d.lane_groups - 1),
                dh_m1.eq(d.head_channels - 1), channels.eq(d.in_channels),
                a_token.eq(d.a_token), dst_token.eq(d.dst_token),
                a_step.eq(d.a_step), b_step.eq(d.b_step), c_step.eq(d.c_step),
                dst_step.eq(d.dst_step),
                chmask.eq(Cat(d.in_channels > c for c in range(VW))),
                fire_mask.eq(Cat(d.shift <= b for b in range(sbits))),
            ]

        # -- reader: (t, K phase: K words then V words per token | Q phase: Q words) ----------
        r_active, r_q, r_part = Signal(), Signal(), Signal()
        r_w = Signal(_field("in_plane_words"))
        r_n = Signal(_field("in_tokens"))
        r_t = Signal(_field("steps"))
        base_k, base_v, base_q = Signal(saddr), Signal(saddr), Signal(saddr)
        tok_k, tok_v, tok_q = Signal(saddr), Signal(saddr), Signal(saddr)
        cur = Signal(saddr)
        reserved = Signal(range(TOKEN_SLOTS + 1))       # tokens started, not yet popped
        first_word = (r_w == 0) & ~r_part
        issue = r_active & (~first_word | (reserved != TOKEN_SLOTS))
        comb += [sp.r_en.eq(issue), sp.r_addr.eq(cur)]
        last_word = r_w == w_m1
        token_end = last_word & (r_q | r_part)
        nk, nv, nq = tok_k + a_token, tok_v + a_token, tok_q + a_token
        sk, sv, sq = base_k + b_step, base_v + c_step, base_q + a_step
        with m.If(start):
            sync += [r_active.eq(1), r_q.eq(0), r_part.eq(0), r_w.eq(0), r_n.eq(0), r_t.eq(0),
                     base_k.eq(d.b_base), base_v.eq(d.c_base), base_q.eq(d.a_base),
                     tok_k.eq(d.b_base), tok_v.eq(d.c_base), tok_q.eq(d.a_base),
                     cur.eq(d.b_base)]
        with m.Elif(issue):
            with m.If(~last_word):
                sync += [r_w.eq(r_w + 1), cur.eq(cur + 1)]
            with m.Else():
                sync += r_w.eq(0)
                with m.If(~r_q & ~r_part):
                    sync += [r_part.eq(1), cur.eq(tok_v)]
                with m.Else():
                    sync += r_part.eq(0)
                    with m.If(r_n != n_m1):
                        sync += r_n.eq(r_n + 1)
                        with m.If(~r_q):
                            sync += [tok_k.eq(nk), tok_v.eq(nv), cur.eq(nk)]
                        with m.Else():
                            sync += [tok_q.eq(nq), cur.eq(nq)]
                    with m.Else():
                        sync += r_n.eq(0)
                        with m.If(~r_q):
                            sync += [r_q.eq(1), cur.eq(tok_q)]
                        with m.Elif(r_t == t_m1):
                            sync += r_active.eq(0)
                        with m.Else():
                            sync += [r_q.eq(0), r_t.eq(r_t + 1),
                                     base_k.eq(sk), base_v.eq(sv), base_q.eq(sq),
                                     tok_k.eq(sk), tok_v.eq(sv), tok_q.eq(sq), cur.eq(sk)]

        # The read's tag, delayed to its data (READ_LATENCY stages).
        tag = data.StructLayout({"valid": 1, "part": 1, "last": 1, "w": range(wmax)})
        tags = [Signal(tag, name=f"t{k + 1}") for k in range(READ_LATENCY)]
        sync += [tags[0].valid.eq(issue), tags[0].part.eq(r_part), tags[0].last.eq(token_end),
                 tags[0].w.eq(r_w)]
        sync += [tags[k].eq(tags[k - 1]) for k in range(1, READ_LATENCY)]
        t2_valid, t2_part, t2_last, t2_w = (tags[-1][f] for f in ("valid", "part", "last", "w"))

        # Assembly of the token's first (K or Q) and second (V) vector, a word per read.
        asm_a, asm_b = Signal(VW, reset_less=True), Signal(VW, reset_less=True)

        def merged(asm, part):
            return Cat(*[Mux(t2_valid & (t2_part == part) & (t2_w == w), sp.r_data,
                             asm[w * WB:(w + 1) * WB]) for w in range(wmax)])

        sync += [asm_a.eq(merged(asm_a, 0)), asm_b.eq(merged(asm_b, 1))]
        rdy = Signal()
        rdy_a, rdy_b = Signal(VW, reset_less=True), Signal(VW, reset_less=True)
        sync += rdy.eq(t2_valid & t2_last)
        with m.If(t2_valid & t2_last):
            sync += [rdy_a.eq(merged(asm_a, 0) & chmask), rdy_b.eq(merged(asm_b, 1) & chmask)]

        # Token queue: the vectors and whether the first has >= 2 / >= 1 spikes.
        m.submodules.rdy_facts = rdy_facts = _Spikes(VW, block)
        comb += rdy_facts.x.eq(rdy_a)
        slot = data.StructLayout({"a": VW, "b": VW, "more": 1, "any": 1})
        m.submodules.queue = queue = Memory(shape=slot, depth=TOKEN_SLOTS, init=[])
        q_wr = queue.write_port()
        q_rd = queue.read_port(domain="comb")
        wptr, rptr = Signal(range(TOKEN_SLOTS)), Signal(range(TOKEN_SLOTS))
        filled = Signal(range(TOKEN_SLOTS + 1))
        comb += [q_wr.en.eq(rdy), q_wr.addr.eq(wptr), q_wr.data.a.eq(rdy_a),
                 q_wr.data.b.eq(rdy_b), q_wr.data.more.eq(rdy_facts.two),
                 q_wr.data.any.eq(rdy_facts.any), q_rd.addr.eq(rptr)]
        head = q_rd.data
        with m.If(rdy):
            sync += wptr.eq(Mux(wptr == TOKEN_SLOTS - 1, 0, wptr + 1))

        # -- consumer phases: per step, N tokens of K phase, then N of Q phase -----------------
        c_q, c_fin = Signal(), Signal()
        c_left = Signal(_field("in_tokens") + 1)
        c_t = Signal(_field("steps"))
        # registered flags of the counters (the pop decision fans out to the wide registers)
        q_any, c_any = Signal(), Signal()               # filled != 0, c_left != 0
        can_pop = q_any & c_any & ~c_fin

        # -- product S0 state (the scanner), needed by the pop condition ------------------------
        sbits_, svec = Signal(VW, reset_less=True), Signal(VW, reset_less=True)
        shave, smore, sany = Signal(), Signal(), Signal()
        cool = Signal(_field("lane_groups"))            # cycles until the hold may be reloaded
        s_last = ~smore
        emit = shave & (~c_q | ~s_last | (cool == 0))

        # -- head of every channel (hid[c] = c // D_h), set by counters at start ----------------
        hid = Signal(C * hb, reset_less=True)
        hcnt = Signal(range(C + 1))
        hj = Signal(_field("head_channels"))
        hh = Signal(hb)
        hid_done = (hcnt == C) | (hcnt >= channels)
        with m.If(start):
            sync += [hcnt.eq(0), hj.eq(0), hh.eq(0)]
        with m.Elif(~hid_done):
            sync += [hid.word_select(hcnt[:max(1, (C - 1).bit_length())], hb).eq(hh),
                     hcnt.eq(hcnt + 1)]
            with m.If(hj == dh_m1):
                sync += [hj.eq(0), hh.eq(hh + 1)]
            with m.Else():
                sync += hj.eq(hj + 1)

        # -- V1: mask = OR (K AND V); out = Q AND mask ----------------------------------------
        mask = Signal(VW, reset_less=True)
        v1_out = Signal(VW, reset_less=True)
        v1_busy = Signal()
        v1_w = Signal(_field("out_plane_words"))
        v1_lastw = v1_w == wo_m1
        v1_pop = ~product & can_pop & (~c_q | ~v1_busy | v1_lastw)
        p_pop = product & can_pop & (~c_q | hid_done) & (~shave | (emit & s_last))
        pop = v1_pop | p_pop
        with m.If(v1_busy):
            sync += [v1_out.eq(v1_out >> WB), v1_w.eq(v1_w + 1)]
            with m.If(v1_lastw):
                sync += [v1_busy.eq(0), v1_w.eq(0)]
        with m.If(v1_pop):
            with m.If(~c_q):
                sync += mask.eq(mask | (head.a & head.b))
            with m.Else():
                sync += [v1_out.eq(head.a & mask), v1_busy.eq(1), v1_w.eq(0)]
        with m.If(pop):
            sync += rptr.eq(Mux(rptr == TOKEN_SLOTS - 1, 0, rptr + 1))
        sync += [filled.eq(filled + rdy - pop), q_any.eq(rdy | Mux(pop, filled > 1, q_any)),
                 reserved.eq(reserved + (issue & first_word) - pop)]
        with m.If(start):
            sync += [v1_busy.eq(0), v1_w.eq(0), mask.eq(0),
                     wptr.eq(0), rptr.eq(0), filled.eq(0), q_any.eq(0), reserved.eq(0)]

        # -- product S0: scan the token's K (or Q) spikes, lowest first, one item per cycle ----
        m.submodules.scan = scan = _Spikes(VW, block)
        comb += scan.x.eq(sbits_)
        with m.If(emit):
            with m.If(s_last):
                sync += shave.eq(0)
            with m.Else():
                sync += [sbits_.eq(sbits_ & ~scan.hot), smore.eq(scan.three)]
        with m.If(p_pop):
            sync += [sbits_.eq(head.a), svec.eq(head.b), shave.eq(1), smore.eq(head.more),
                     sany.eq(head.any)]
        with m.If(emit & s_last & c_q):
            sync += cool.eq(g_m1)
        with m.Elif(cool != 0):
            sync += cool.eq(cool - 1)
        with m.If(start):
            sync += [shave.eq(0), cool.eq(0)]

        # S1: the item registered; its KV row is read; the head of its channel selected.
        kv_row = data.ArrayLayout(unsigned(cb), C)
        m.submodules.kv = kv = RegisteredReadMemory(shape=kv_row, depth=C, style="block")
        s1_valid, s1_read, s1_last, s1_q = Signal(), Signal(), Signal(), Signal()
        s1_addr = Signal(range(VW))
        s1_hot, s1_v = Signal(C, reset_less=True), Signal(C, reset_less=True)
        sync += [s1_valid.eq(emit & ~start), s1_read.eq(sany), s1_last.eq(s_last), s1_q.eq(c_q),
                 s1_addr.eq(one_hot_index(scan.hot)), s1_hot.eq(scan.hot[:C]),
                 s1_v.eq(svec[:C])]
        comb += [kv.r_en.eq(s1_valid & s1_read), kv.r_addr.eq(s1_addr)]
        hid_sel = Cat(*[Cat(*[s1_hot[c] & hid[c * hb + b] for c in range(C)]).any()
                        for b in range(hb)])

        # S2: forwarding decided from registers: the write in S3 now (one cycle before this
        # item's S3) or the one written last cycle (two before); the head mask.
        s2_valid, s2_read, s2_last, s2_q = Signal(), Signal(), Signal(), Signal()
        s2_addr = Signal(range(VW))
        s2_v, s2_sel = Signal(C, reset_less=True), Signal(hb, reset_less=True)
        sync += [s2_valid.eq(s1_valid), s2_read.eq(s1_read), s2_last.eq(s1_last),
                 s2_q.eq(s1_q), s2_addr.eq(s1_addr), s2_v.eq(s1_v), s2_sel.eq(hid_sel)]
        s3_valid, s3_read, s3_last, s3_q = Signal(), Signal(), Signal(), Signal()
        s3_addr = Signal(range(VW))
        s3_v, s3_mask = Signal(C, reset_less=True), Signal(C, reset_less=True)
        s3_f1, s3_f2, s3_mem = Signal(), Signal(), Signal()
        s4_wr, s4_addr = Signal(), Signal(range(VW))
        written = Signal(C)                             # KV rows written in this step
        s3_wr = s3_valid & s3_read & ~s3_q
        fwd1 = s3_wr & (s3_addr == s2_addr)
        fwd2 = s4_wr & (s4_addr == s2_addr)
        sync += [s3_valid.eq(s2_valid), s3_read.eq(s2_read), s3_last.eq(s2_last),
                 s3_q.eq(s2_q), s3_addr.eq(s2_addr), s3_v.eq(s2_v),
                 s3_mask.eq(Cat(hid[c * hb:(c + 1) * hb] == s2_sel for c in range(C))),
                 s3_f1.eq(fwd1), s3_f2.eq(~fwd1 & fwd2),
                 s3_mem.eq(~fwd1 & ~fwd2 & written.bit_select(s2_addr, 1))]

        # S3: K phase read-modify-write of row i; Q phase: the row read (masked in S4).
        last1, last2 = Signal(kv_row, reset_less=True), Signal(kv_row, reset_less=True)
        old = [Mux(s3_f1, last1[c], 0) | Mux(s3_f2, last2[c], 0) | Mux(s3_mem, kv.r_data[c], 0)
               for c in range(C)]
        new = Cat(*[(old[c] + s3_v[c])[:cb] for c in range(C)])
        comb += [kv.w_en.eq(s3_wr), kv.w_addr.eq(s3_addr), kv.w_data.eq(new)]
        sync += [last1.eq(new), last2.eq(last1), s4_wr.eq(s3_wr), s4_addr.eq(s3_addr)]
        with m.If(s3_wr):
            sync += written.bit_select(s3_addr, 1).eq(1)

        # S4: Q phase: the row, masked to the head, added to the accumulators (a stage of its
        # own: the wide add behind the read-modify-write's multiplexer is too long for one).
        s4_add, s4_last = Signal(), Signal()
        s4_x = Signal(data.ArrayLayout(unsigned(cb), C), reset_less=True)
        sync += [s4_add.eq(s3_valid & s3_q), s4_last.eq(s3_last)]
        sync += [s4_x[c].eq(Mux(s3_read & s3_mask[c], old[c], 0)) for c in range(C)]
        acc = Signal(data.ArrayLayout(unsigned(ab), C), reset_less=True)
        hold = Signal(data.ArrayLayout(unsigned(ab), GP), reset_less=True)
        hold_valid = Signal()
        sums = [acc[c] + s4_x[c] for c in range(C)]
        hold_load = s4_add & s4_last
        with m.If(s4_add):
            sync += [acc[c].eq(Mux(s4_last, 0, sums[c])) for c in range(C)]

        s_drained = ~shave & ~s1_valid & ~s2_valid & ~s3_valid & ~s4_add
        with m.If(start):
            sync += [s1_valid.eq(0), s2_valid.eq(0), s3_valid.eq(0), s4_wr.eq(0),
                     s4_add.eq(0), written.eq(0), acc.eq(0)]

        # -- attention LIF: the hold register drained one lane group (membrane row) per cycle ---
        lg = Signal(_field("lane_groups"))
        ln = Signal(_field("in_tokens"))
        gi = Signal(range(per_word))
        lfirst = Signal()
        mrow = Signal(maddr)
        lastg = lg == g_m1
        l1_valid, l1_first, l1_wlast, l1_lastg = Signal(), Signal(), Signal(), Signal()
        l1_gi, l1_row = Signal(range(per_word)), Signal(maddr)
        l1_x = Signal(data.ArrayLayout(unsigned(ab), P), reset_less=True)
        sync += [l1_valid.eq(hold_valid), l1_first.eq(lfirst), l1_row.eq(mrow), l1_gi.eq(gi),
                 l1_wlast.eq((gi == per_word - 1) | lastg), l1_lastg.eq(lastg),
                 l1_x.eq(hold.as_value().word_select(lg[:gbits], P * ab))]
        comb += [mp.r_en.eq(hold_valid), mp.r_addr.eq(mrow)]
        with m.If(hold_valid):
            with m.If(lastg):
                sync += [hold_valid.eq(0), lg.eq(0), gi.eq(0)]
                with m.If(ln == n_m1):
                    sync += [ln.eq(0), mrow.eq(0), lfirst.eq(0)]
                with m.Else():
                    sync += [ln.eq(ln + 1), mrow.eq(mrow + 1)]
            with m.Else():
                sync += [lg.eq(lg + 1), mrow.eq(mrow + 1),
                         gi.eq(Mux(gi == per_word - 1, 0, gi + 1))]
        with m.If(hold_load):
            sync += [hold_valid.eq(1), lg.eq(0), gi.eq(0),
                     hold.eq(Cat(*[s[:ab] for s in sums]))]
        with m.If(start):
            sync += [hold_valid.eq(0), lg.eq(0), ln.eq(0), gi.eq(0), lfirst.eq(1), mrow.eq(0)]

        # L2 (READ_LATENCY - 1 stages after L1): the membrane row has arrived: s = V + A.
        l2_valid, l2_first, l2_wlast, l2_lastg = l1_valid, l1_first, l1_wlast, l1_lastg
        l2_gi, l2_row, l2_x = l1_gi, l1_row, l1_x
        l_valids = [l1_valid]
        for k in range(READ_LATENCY - 1):
            late = [Signal.like(v, name=f"l{k + 2}_{n}", reset_less=n == "x") for v, n in (
                (l2_valid, "valid"), (l2_first, "first"), (l2_wlast, "wlast"),
                (l2_lastg, "lastg"), (l2_gi, "gi"), (l2_row, "row"), (l2_x, "x"))]
            sync += [a.eq(b) for a, b in zip(late, (l2_valid, l2_first, l2_wlast, l2_lastg,
                                                    l2_gi, l2_row, l2_x))]
            l2_valid, l2_first, l2_wlast, l2_lastg, l2_gi, l2_row, l2_x = late
            l_valids.append(l2_valid)
        l3_valid, l3_wlast, l3_lastg = Signal(), Signal(), Signal()
        l3_gi, l3_row = Signal(range(per_word)), Signal(maddr)
        l3_s = Signal(data.ArrayLayout(unsigned(sbits), P), reset_less=True)
        sync += [l3_valid.eq(l2_valid), l3_wlast.eq(l2_wlast), l3_lastg.eq(l2_lastg),
                 l3_gi.eq(l2_gi), l3_row.eq(l2_row)]
        sync += [l3_s[l].eq(Mux(l2_first, 0, mp.r_data[l].as_unsigned()[:vbits]) + l2_x[l])
                 for l in range(P)]
        # L3: fire, reset, membrane write; the spikes registered.
        fire = [(l3_s[l] & fire_mask).any() for l in range(P)]
        comb += [mp.w_en.eq(l3_valid), mp.w_addr.eq(l3_row)]
        comb += [mp.w_data[l].eq(Mux(fire[l], 0, l3_s[l][1:])) for l in range(P)]
        l4_valid, l4_wlast, l4_lastg = Signal(), Signal(), Signal()
        l4_gi, l4_sp = Signal(range(per_word)), Signal(P, reset_less=True)
        sync += [l4_valid.eq(l3_valid), l4_wlast.eq(l3_wlast), l4_lastg.eq(l3_lastg),
                 l4_gi.eq(l3_gi), l4_sp.eq(Cat(*fire))]
        # L4: the word's groups gathered; written after its last group (or the token's).
        wordreg = Signal(WB, reset_less=True)
        word_out = Cat(*[Mux(l4_gi == r, l4_sp, Mux(l4_gi > r, wordreg[r * P:(r + 1) * P], 0))
                         for r in range(per_word)])
        with m.If(l4_valid):
            sync += wordreg.eq(word_out)
        with m.If(start):
            sync += [v.eq(0) for v in (*l_valids, l3_valid, l4_valid)]
        l_empty = ~(Cat(hold_valid, *l_valids, l3_valid, l4_valid).any())

        # -- the output word writer: dst_base + t * dst_step + n * dst_token + w ---------------
        wr = Mux(product, l4_valid & l4_wlast, v1_busy)
        wr_last = Mux(product, l4_lastg, v1_lastw)
        dcur, dtok, dstep = Signal(saddr), Signal(saddr), Signal(saddr)
        dn = Signal(_field("in_tokens"))
        ndt, nds = dtok + dst_token, dstep + dst_step
        comb += [sp.w_en.eq(wr), sp.w_addr.eq(dcur),
                 sp.w_data.eq(Mux(product, word_out, v1_out[:WB]))]
        with m.If(start):
            sync += [dcur.eq(d.dst_base), dtok.eq(d.dst_base), dstep.eq(d.dst_base), dn.eq(0)]
        with m.Elif(wr):
            with m.If(~wr_last):
                sync += dcur.eq(dcur + 1)
            with m.Elif(dn != n_m1):
                sync += [dn.eq(dn + 1), dtok.eq(ndt), dcur.eq(ndt)]
            with m.Else():
                sync += [dn.eq(0), dstep.eq(nds), dtok.eq(nds), dcur.eq(nds)]

        # -- phase control ---------------------------------------------------------------------
        with m.If(pop):
            sync += [c_left.eq(c_left - 1), c_any.eq(c_left != 1)]
        # The phase ends the cycle after its last token is consumed (and, product, drained):
        # `turn` is a register, so its wide fan-out (the mask and the written flags) starts
        # at a flip-flop.
        turn = Signal()
        sync += turn.eq(~c_any & ~c_fin & (~product | s_drained) & ~turn & ~start)
        with m.If(turn):
            with m.If(~c_q):
                sync += [c_q.eq(1), c_left.eq(n_m1 + 1), c_any.eq(1)]
            with m.Elif(c_t == t_m1):
                sync += c_fin.eq(1)
            with m.Else():
                sync += [c_q.eq(0), c_t.eq(c_t + 1), c_left.eq(n_m1 + 1), c_any.eq(1),
                         mask.eq(0), written.eq(0)]
        # No tokens or no steps: nothing to read or write.
        empty = (d.in_tokens == 0) | (d.steps == 0)
        with m.If(start):
            sync += [c_q.eq(0), c_fin.eq(empty), c_left.eq(d.in_tokens),
                     c_any.eq(d.in_tokens != 0), c_t.eq(0)]
            with m.If(empty):
                sync += r_active.eq(0)

        done = c_fin & s_drained & l_empty & ~v1_busy
        with m.If(start):
            sync += self.busy.eq(1)
        with m.Elif(done):
            sync += self.busy.eq(0)
        return m
