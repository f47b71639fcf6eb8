"""Spike-driven self-attention units: SDT-V1 SDSA and SDSA-3 / Spikformer SSA in both orders.

Every variant has the same ports and the same input contract, so :class:`SDSA` can pick one by
parameter. Per time step, the unit first takes the ``tokens`` K/V beats of the step on ``kv``
(one token's K and V words per beat, :func:`~.layouts.kv_pair`), then the ``tokens`` Q words of
the step on ``q`` (:func:`~.layouts.spike_word` of ``channels`` bits: one word per token), and
sends one output spike word per Q word on ``o``, in token order. ``steps`` time steps make a
sample; the attention LIF's membranes start at 0 with every sample. Q, K, V and the output are
binary spikes; channel ``c`` is bit ``c`` of a word, and head ``h`` owns channels
``h * D_h ... (h + 1) * D_h - 1``. All streams tolerate any stall pattern.
"""

from amaranth.hdl import Module, Signal, Mux, Cat, Const, unsigned
from amaranth.lib import wiring, stream, data
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .encoder import lowest_set, one_hot_index
from .layouts import kv_pair, spike_word
from .lif import LIFArray
from .packer import SpikePacker
from .params import check_int, check_choice
from .popcount import KVPopcount, count_width, count_to_three, lowest_set_blocked

__all__ = ["SDSA", "SDSAv1", "SSAKVFirst", "SSAQKFirst", "VARIANTS"]

VARIANTS = ("v1", "ssa", "qk_first")


class _Attention(wiring.Component):
    """Parameters, checks and ports common to the attention units (see the module docstring).

    Parameters
    ----------
    tokens : int
        N, tokens per time step.
    channels : int
        D, channels of Q, K, V and of the output.
    heads : int
        Heads; must divide ``channels``.
    steps : int
        T, time steps per sample.
    shift : int
        Scale of the attention scores, ``2**-shift`` (3 for 0.125, 2 for 0.25).

    Members
    -------
    kv : In(stream.Signature(kv_pair(width=channels)))
    q : In(stream.Signature(spike_word(width=channels)))
    o : Out(stream.Signature(spike_word(width=channels)))
        ``last`` is always 1 (a word is a whole token).
    """

    def __init__(self, *, tokens, channels, heads=8, steps=4, shift=3):
        self._tokens = check_int("tokens", tokens, min=1, max=1 << 16)
        self._channels = check_int("channels", channels, min=1, max=4096)
        self._heads = check_int("heads", heads, min=1, max=channels)
        if channels % heads:
            raise ValueError(f"heads must divide channels ({channels}), not {heads!r}")
        self._steps = check_int("steps", steps, min=1, max=64)
        self._shift = check_int("shift", shift, min=1, max=16)
        super().__init__({
            "kv": In(stream.Signature(kv_pair(width=channels))),
            "q": In(stream.Signature(spike_word(width=channels))),
            "o": Out(stream.Signature(spike_word(width=channels))),
        })

    tokens = property(lambda self: self._tokens)
    channels = property(lambda self: self._channels)
    heads = property(lambda self: self._heads)
    steps = property(lambda self: self._steps)
    shift = property(lambda self: self._shift)
    head_width = property(lambda self: self._channels // self._heads)


class SDSAv1(_Attention):
    """SDT-V1 SDSA: ``out = Q AND m`` with ``m = OR_n (K AND V)`` over the step's tokens.

    ``m`` is the attention LIF (tau 2, Vth 0.5) of the column sums ``sum_n K AND V``: those are
    non-negative integers, so the LIF is stateless and fires exactly when a sum is at least 1,
    which is the 1-bit saturating column sum, an OR (golden:
    :func:`spikeforge.golden.attention.sdsa_v1_int`). ``heads``, ``steps`` and ``shift`` do not
    change the result. One K/V beat and one Q word per cycle: ``2 * tokens`` cycles per step.
    """

    def elaborate(self, platform):
        m = Module()
        mask = Signal(self._channels)
        loaded = Signal(range(self._tokens + 1))     # K/V beats of this step taken so far
        served = Signal(range(self._tokens))         # Q words of this step taken so far

        m.d.comb += self.kv.ready.eq(loaded != self._tokens)
        with m.If(self.kv.valid & self.kv.ready):
            both = self.kv.payload.k & self.kv.payload.v
            m.d.sync += [mask.eq(Mux(loaded == 0, 0, mask) | both), loaded.eq(loaded + 1)]

        m.d.comb += self.q.ready.eq((loaded == self._tokens) & (~self.o.valid | self.o.ready))
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(self.q.valid & self.q.ready):
            m.d.sync += [
                self.o.valid.eq(1),
                self.o.payload.data.eq(self.q.payload.data & mask),
                self.o.payload.last.eq(1),
            ]
            with m.If(served == self._tokens - 1):
                m.d.sync += [served.eq(0), loaded.eq(0)]
            with m.Else():
                m.d.sync += served.eq(served + 1)
        return m


class _SkidBuffer(wiring.Component):
    """A registered stream stage whose ``i.ready`` is a register (a two-entry skid buffer).

    Cuts the combinational ready path from ``o`` back to ``i``; full throughput, one cycle of
    latency, any stall pattern.

    Members
    -------
    i : In(stream.Signature(layout))
    o : Out(stream.Signature(layout))
    """

    def __init__(self, layout):
        self._layout = layout
        super().__init__({"i": In(stream.Signature(layout)), "o": Out(stream.Signature(layout))})

    def elaborate(self, platform):
        m = Module()
        spare = Signal(self._layout)
        full = Signal()
        m.d.comb += self.i.ready.eq(~full)
        # The spare copies the input whenever it is empty (its contents matter only once `full`
        # is set), so its wide enable is a register, not the downstream ready path.
        with m.If(~full):
            m.d.sync += spare.eq(self.i.payload)
        with m.If(~self.o.valid | self.o.ready):
            with m.If(full):
                m.d.sync += [self.o.payload.eq(spare), self.o.valid.eq(1), full.eq(0)]
            with m.Else():
                m.d.sync += [self.o.payload.eq(self.i.payload), self.o.valid.eq(self.i.valid)]
        with m.Elif(self.i.valid & ~full):
            m.d.sync += full.eq(1)
        return m


class _SSA(_Attention):
    """Shared back end of the SSA orders: scores ``A`` as lane beats → attention LIF → words.

    A subclass's ``_scores(m, beats)`` drives ``beats`` (the :class:`~.lif.LIFArray` input, behind
    a skid buffer that keeps the LIF's ready path out of the score pipeline: lane beats of ``A``
    in token order, channel groups in order) from ``kv`` and ``q``, and its
    ``_beat_lanes()`` gives the lanes of a score beat. The LIF array runs
    ``lif_int(A, threshold=2**(shift-1), frac_bits=steps)`` per neuron
    (:func:`spikeforge.golden.attention.ssa_int`) with a membrane of ``shift + steps + 1``
    signed bits: it saturates only where ``H >= 2**(shift+steps)``, above the threshold, where
    the neuron fires and resets whatever the exact value, so the spikes are exact. The packer
    turns each token's spike beats into one output word.
    """

    def _score_width(self):
        """Unsigned bits of a score: ``A <= tokens * D_h``."""
        return count_width(self._tokens * self.head_width)

    def elaborate(self, platform):
        m = Module()
        lanes = self._beat_lanes()
        groups = self._channels // lanes
        frac = self._steps
        m.submodules.lif = lif = LIFArray(
            lanes=lanes, neurons=self._tokens * self._channels, steps=self._steps,
            groups=groups, current_width=self._score_width() + 1, frac_bits=frac,
            tau_log2=1, reset="hard", membrane_width=self._shift + frac + 1,
            threshold_width=self._shift, thresholds=1 << (self._shift - 1))
        m.submodules.packer = packer = SpikePacker(
            lanes=lanes, channels=self._channels, width=self._channels)
        m.submodules.skid = skid = _SkidBuffer(lif.i.payload.shape())
        wiring.connect(m, skid.o, lif.i)
        wiring.connect(m, lif.o, packer.i)
        wiring.connect(m, packer.o, wiring.flipped(self.o))
        self._scores(m, skid.i)
        return m

    def _emit(self, m, beats, advance, fire, scores, group):
        """Register one score beat into ``beats`` when ``fire`` (under ``advance``)."""
        last_group = self._channels // self._beat_lanes() - 1
        with m.If(advance):
            m.d.sync += beats.valid.eq(fire)
            with m.If(fire):
                m.d.sync += [
                    beats.payload.group.eq(group),
                    beats.payload.first.eq(group == 0),
                    beats.payload.last.eq(group == last_group),
                ]
                for lane in range(len(scores)):
                    m.d.sync += beats.payload.data[lane].eq(scores[lane])


class SSAKVFirst(_SSA):
    """SDSA-3 / Spikformer SSA, ``A = Q @ (K^T @ V)`` per head, then ``LIF(A * 2**-shift)``.

    K/V phase: :class:`~.popcount.KVPopcount` builds the ``D x D_h`` product (row ``i`` = K
    channel ``i``, lanes = V channels of its head), ``max(1, k)`` cycles per token with ``k`` K
    spikes. Q phase, a spike-accumulate engine with the product as its weight memory: for each
    token and head, every Q spike ``i`` of the head reads row ``i`` and adds it into ``D_h``
    accumulators (zero skipping); the head's sums leave as one score beat (lanes ``D_h``,
    group = head), ``max(1, q)`` cycles per head with ``q`` Q spikes in it. Then the shared
    attention LIF and packer (:class:`_SSA`). Golden: ``ssa_int(order="kv_first")``.
    """

    def _beat_lanes(self):
        return self.head_width

    def _scores(self, m, beats):
        dh, heads, tokens = self.head_width, self._heads, self._tokens
        m.submodules.kv = kvp = KVPopcount(tokens=tokens, channels=self._channels, heads=heads)
        wiring.connect(m, wiring.flipped(self.kv), kvp.i)

        advance = ~beats.valid | beats.ready

        # Stage 0: the Q word being scanned; its current head's bits are `qbits[:dh]`.
        qbits = Signal(self._channels)
        have = Signal()
        head = Signal(range(heads))
        base = Signal(range(self._channels))         # head * D_h, kept by addition
        taken = Signal(range(tokens + 1))
        more = Signal()                              # `current` has two spikes or more
        current = qbits[:dh]
        hot = Signal(dh)                             # the lowest spike of the current head
        m.d.comb += hot.eq(lowest_set(current))
        rest = current & ~hot
        head_done = have & ~more
        token_done = head_done & (head == heads - 1)

        m.d.comb += self.q.ready.eq(advance & kvp.done & (taken != tokens) &
                                    (~have | token_done))
        with m.If(self.q.valid & self.q.ready):
            m.d.sync += [qbits.eq(self.q.payload.data), have.eq(1), head.eq(0), base.eq(0),
                         taken.eq(taken + 1),
                         more.eq(count_to_three(m, self.q.payload.data[:dh]) >= 2)]
        with m.Elif(advance & have):
            with m.If(head_done):
                m.d.sync += [qbits.eq(qbits[dh:]), head.eq(head + 1), base.eq(base + dh),
                             more.eq(count_to_three(m, qbits[dh:2 * dh]) >= 2)]
                with m.If(token_done):
                    m.d.sync += have.eq(0)
            with m.Else():
                m.d.sync += [qbits[:dh].eq(rest), more.eq(count_to_three(m, current) == 3)]

        # Stage 1: the item's row address, registered; its row is read.
        q1_valid, q1_read, q1_last, q1_end = Signal(), Signal(), Signal(), Signal()
        q1_addr, q1_head = Signal(range(self._channels)), Signal(range(heads))
        with m.If(advance):
            m.d.sync += [
                q1_valid.eq(have),
                q1_read.eq(current.any()),
                q1_last.eq(head_done),
                q1_end.eq(token_done & (taken == tokens)),
                q1_head.eq(head),
                q1_addr.eq(base + one_hot_index(hot)),
            ]
        m.d.comb += [kvp.rd_en.eq(advance & q1_valid & q1_read), kvp.rd_addr.eq(q1_addr)]

        # Stage 2: the row arrives and is registered (zero for an item without a Q spike).
        q2_valid, q2_read, q2_last, q2_end = Signal(), Signal(), Signal(), Signal()
        q2_head = Signal(range(heads))
        with m.If(advance):
            m.d.sync += [q2_valid.eq(q1_valid), q2_read.eq(q1_read), q2_last.eq(q1_last),
                         q2_end.eq(q1_end), q2_head.eq(q1_head)]
        q3_valid, q3_last = Signal(), Signal()
        q3_head = Signal(range(heads))
        row = Signal(kvp.rd_data.shape())
        with m.If(advance):
            m.d.sync += [q3_valid.eq(q2_valid), q3_last.eq(q2_last), q3_head.eq(q2_head),
                         row.eq(Mux(q2_read, kvp.rd_data.as_value(), 0))]
        # The step's last row is in hand: the product may go, the next step may come in.
        with m.If(advance & q2_valid & q2_end):
            m.d.comb += kvp.release.eq(1)
            m.d.sync += taken.eq(0)

        # Stage 3: add the row into the head's accumulators; a head's last item emits its sums.
        acc = Signal(data.ArrayLayout(unsigned(self._score_width()), dh))
        sums = [acc[j] + row[j] for j in range(dh)]
        with m.If(advance & q3_valid):
            for j in range(dh):
                m.d.sync += acc[j].eq(Mux(q3_last, 0, sums[j]))
        self._emit(m, beats, advance, q3_valid & q3_last, sums, q3_head)


def _select(m, hot, values, shape, name):
    """``values[i]`` where ``hot`` is one-hot at ``i`` (0 if ``hot`` is 0): an AND-OR, no index.

    Driven into a combinational signal of ``m`` so that every use refers to one copy."""
    picked = Signal(shape, name=name)
    term = Const(0, shape)
    for i, value in enumerate(values):
        term = term | Mux(hot[i], value, 0)
    m.d.comb += picked.eq(term)
    return picked


class SSAQKFirst(_SSA):
    """Spikformer SSA in the other order, ``A = (Q @ K^T) @ V`` per head (CIFAR/DVS models),
    with the keys indexed by channel so that a Q token visits only the keys it overlaps.

    K/V phase: each token whose K word has a spike gets the next index ``m`` of a token store
    (its V word, ``M <= tokens`` entries). Each K spike ``(channel i, token m)`` is appended to
    channel ``i``'s key list: entry ``count_i`` of the list of ``i``, ``count_i`` a per-channel
    counter. The lists of head ``h`` are one memory (address ``Cat(count_i, i % D_h)``, a
    power-of-two stride of ``2**ceil(log2(tokens))`` entries per channel), so the heads take one
    K spike each per cycle: a token costs ``max(1, max_h k_h)`` cycles, ``k_h`` its K spikes in
    head ``h``.

    Q phase: for each Q token, the spiking channels ``i`` with a non-empty list are picked in
    order, lowest first, and every entry ``m`` of each list is walked, one per cycle: the
    accumulators ``j`` of the head of ``i`` gain ``V_m,j`` (a 1-bit add). Summed over the
    channels of a head this is ``popcount(Q_h AND K_m,h) * V_m,j``, the golden's ``A``. A Q token
    costs ``max(1, sum_i Q_i * count_i)`` cycles. Its ``D`` sums leave as one score beat
    (lanes ``D``, one group). Golden: ``ssa_int(order="qk_first")``.

    Pipeline of the Q phase: the pick of the token's lowest remaining channel into a register
    (one-hot); its counter, selected by AND-OR from that register; the walk, whose registered
    entry and channel address the list memories (a registered flag marks a channel's last
    entry); the list outputs, registered; the token store read from that register; the V word,
    registered (no block-RAM output feeds logic before a register); the add. The next step's
    K/V beats are taken once the step's last token store read is issued. A counter never
    exceeds ``tokens`` and a score never exceeds ``tokens * D_h``, so their widths cannot
    overflow.
    """

    def _beat_lanes(self):
        return self._channels

    def _scores(self, m, beats):
        dh, tokens, channels, heads = self.head_width, self._tokens, self._channels, self._heads
        index_shape = unsigned(count_width(tokens - 1))      # a token index, an entry index
        count_shape = unsigned(count_width(tokens))
        stride = index_shape.width                           # entries per channel: 2**stride
        m.submodules.store = store = Memory(shape=channels, depth=tokens, init=[])
        st_wr, st_rd = store.write_port(), store.read_port()
        lists = []
        for h in range(heads):
            mem = Memory(shape=index_shape, depth=dh << stride, init=[])
            m.submodules[f"list{h}"] = mem
            lists.append((mem.write_port(), mem.read_port()))
        counts = [Signal(count_shape, name=f"count{i}") for i in range(channels)]
        nonempty = Signal(channels)                  # bit i: count_i != 0

        # K/V phase. The accepted token's V word goes into the store; its K spikes are pending
        # in `kbits`, and each head appends its lowest pending spike every cycle.
        loaded = Signal(range(tokens + 1))
        stored = Signal(range(tokens + 1))
        full = Signal()                              # the step's last K/V beat is taken
        kbits = Signal(channels)
        token = Signal(index_shape)                  # store index of the token in `kbits`
        pending = Signal()                           # `kbits` has a spike
        busy = Signal()                              # some head of `kbits` has two or more
        release = Signal()                           # the step's last store read is issued
        accept = Signal()
        m.d.comb += [
            self.kv.ready.eq(~full & ~busy),
            accept.eq(self.kv.valid & self.kv.ready),
            st_wr.addr.eq(stored),
            st_wr.data.eq(self.kv.payload.v),
            st_wr.en.eq(accept & self.kv.payload.k.any()),
        ]
        k_in = self.kv.payload.k
        blocks = range(heads)
        m.d.sync += [
            pending.eq(Mux(accept, k_in.any(), busy)),
            busy.eq(Mux(accept,
                        Cat(*[count_to_three(m, k_in[h * dh:(h + 1) * dh]) >= 2
                              for h in blocks]).any(),
                        Cat(*[count_to_three(m, kbits[h * dh:(h + 1) * dh]) == 3
                              for h in blocks]).any())),
        ]
        hots = []
        for h, (wr, _) in enumerate(lists):
            hot = Signal(dh, name=f"k_hot{h}")
            m.d.comb += hot.eq(lowest_set(kbits[h * dh:(h + 1) * dh]))
            hots.append(hot)
            at = _select(m, hot, counts[h * dh:(h + 1) * dh], count_shape, f"k_count{h}")
            m.d.comb += [wr.addr.eq(Cat(at[:stride], one_hot_index(hot))),
                         wr.data.eq(token), wr.en.eq(hot.any())]
        k_hot = Cat(*hots)
        with m.If(accept):
            m.d.sync += [kbits.eq(k_in), token.eq(stored), loaded.eq(loaded + 1)]
            with m.If(loaded == tokens - 1):
                m.d.sync += full.eq(1)
            with m.If(st_wr.en):
                m.d.sync += stored.eq(stored + 1)
        with m.Else():
            m.d.sync += kbits.eq(kbits & ~k_hot)
        with m.If(release):
            m.d.sync += [loaded.eq(0), stored.eq(0), full.eq(0), nonempty.eq(0)]
            m.d.sync += [c.eq(0) for c in counts]
        with m.Else():
            m.d.sync += [c.eq(c + k_hot[i]) for i, c in enumerate(counts)]
            m.d.sync += nonempty.eq(nonempty | k_hot)

        advance = ~beats.valid | beats.ready

        # Q phase, pick: the Q token's remaining channels with a non-empty list (`src`); the
        # lowest one is picked whenever the channel register is free or being passed on.
        src = Signal(channels)
        have = Signal()                              # `src` holds a token not fully picked
        more = Signal()                              # `src` has two channels or more
        q_open = Signal(init=1)                      # the step's Q words are not all taken
        # The Q word buffer, masked by the non-empty lists, with its "two channels or more"
        # flag, so that `src` and `more` load from registers.
        q_word = Signal(channels)
        q_valid, q_more = Signal(), Signal()
        pick_hot, pick_block = lowest_set_blocked(m, src, dh)
        pick_local = Signal(range(dh))
        m.d.comb += pick_local.eq(one_hot_index(
            Cat(*[pick_hot[i::dh].any() for i in range(dh)])))
        # Two pick registers: the picked channel (one-hot), then the same with its counter
        # (selected from the registered one-hot), so each step of the pick is a short path.
        h_valid, h_last, h_end = Signal(), Signal(), Signal()
        h_hot = Signal(channels)
        h_head = Signal(heads)                       # one-hot; 0 for a token with no work
        h_local = Signal(range(dh))
        p_valid, p_last, p_end = Signal(), Signal(), Signal()
        p_head = Signal(heads)
        p_local = Signal(range(dh))
        p_count = Signal(count_shape)

        # Walk: the current channel (head one-hot, list) and entry; `w_rest` entries are left,
        # `w_final` (a register) says the current one is the channel's last.
        w_valid, w_last, w_end, w_final = Signal(), Signal(), Signal(), Signal()
        w_head = Signal(heads)
        w_local = Signal(range(dh))
        w_rest = Signal(count_shape)
        w_entry = Signal(index_shape)
        take = Signal()                              # the walk takes the counted pick
        load = Signal()                              # the counted pick takes the channel
        pick = Signal()                              # the channel register takes a pick
        swap = Signal()                              # `src` takes the buffered Q word
        m.d.comb += [
            take.eq(advance & (~w_valid | w_final)),
            load.eq(~p_valid | take),
            pick.eq(~h_valid | load),
            self.q.ready.eq(full & ~pending & q_open & (~q_valid | swap)),
            swap.eq(q_valid & (~have | (pick & ~more))),
        ]
        with m.If(take):
            m.d.sync += [
                w_valid.eq(p_valid), w_head.eq(p_head), w_local.eq(p_local),
                w_rest.eq(p_count), w_final.eq(p_count[1:] == 0), w_entry.eq(0),
                w_last.eq(p_last), w_end.eq(p_end),
            ]
        with m.Elif(advance):
            m.d.sync += [w_entry.eq(w_entry + 1), w_rest.eq(w_rest - 1),
                         w_final.eq(w_rest == 2)]
        with m.If(load):
            m.d.sync += [
                p_valid.eq(h_valid), p_head.eq(h_head), p_local.eq(h_local),
                p_count.eq(_select(m, h_hot, counts, count_shape, "pick_count")),
                p_last.eq(h_last), p_end.eq(h_end),
            ]
        with m.If(pick):
            m.d.sync += [
                h_valid.eq(have), h_hot.eq(pick_hot), h_head.eq(pick_block),
                h_local.eq(pick_local), h_last.eq(~more),
                h_end.eq(~more & ~q_open & ~q_valid),
                src.eq(src & ~pick_hot), more.eq(count_to_three(m, src) == 3),
            ]
            with m.If(~more):
                m.d.sync += have.eq(0)
        with m.If(swap):
            m.d.sync += [src.eq(q_word), more.eq(q_more), have.eq(1), q_valid.eq(0)]
        taken = Signal(range(tokens))
        with m.If(self.q.valid & self.q.ready):
            word = self.q.payload.data & nonempty
            m.d.sync += [q_word.eq(word), q_more.eq(count_to_three(m, word) >= 2),
                         q_valid.eq(1)]
            with m.If(taken == tokens - 1):
                m.d.sync += [taken.eq(0), q_open.eq(0)]
            with m.Else():
                m.d.sync += taken.eq(taken + 1)
        for _, rd in lists:
            m.d.comb += [rd.addr.eq(Cat(w_entry[:stride], w_local)), rd.en.eq(advance)]

        # The items of the walk flow down the pipeline under `advance`.
        def stage(valid, head, last, end):
            regs = Signal(), Signal(heads), Signal(), Signal()
            with m.If(advance):
                m.d.sync += [r.eq(x) for r, x in zip(regs, (valid, head, last, end))]
            return regs

        item_last = w_last & w_final
        s2 = stage(w_valid, w_head, item_last, w_end & w_final)      # list outputs arrive
        s3 = stage(*s2)                                              # list outputs registered
        found = [Signal(index_shape, name=f"found{h}") for h in range(heads)]
        with m.If(advance):
            m.d.sync += [f.eq(rd.data) for f, (_, rd) in zip(found, lists)]
        m.d.comb += [st_rd.addr.eq(_select(m, s3[1], found, index_shape, "found_token")),
                     st_rd.en.eq(advance)]
        s4 = stage(*s3)                                              # V arrives
        s5 = stage(*s4)                                              # V registered
        v_word = Signal(channels)
        with m.If(advance):
            m.d.sync += v_word.eq(st_rd.data)
        # The step's last store read is being issued: the next step's K/V may come in (its
        # first store write lands in the next cycle at the earliest).
        m.d.comb += release.eq(advance & s3[0] & s3[3])
        with m.If(release):
            m.d.sync += q_open.eq(1)

        # Add: accumulator j gains V_m,j where j is in the head of the walked channel.
        s5_valid, s5_head, s5_last, _ = s5
        acc = Signal(data.ArrayLayout(unsigned(self._score_width()), channels))
        sums = [acc[j] + (v_word[j] & s5_head[j // dh]) for j in range(channels)]
        with m.If(advance & s5_valid):
            for j in range(channels):
                m.d.sync += acc[j].eq(Mux(s5_last, 0, sums[j]))
        self._emit(m, beats, advance, s5_valid & s5_last, sums, 0)


_CORES = {"v1": SDSAv1, "ssa": SSAKVFirst, "qk_first": SSAQKFirst}


class SDSA(_Attention):
    """The attention unit of ``variant``: ``"v1"`` (:class:`SDSAv1`), ``"ssa"``
    (:class:`SSAKVFirst`, ``Q @ (K^T @ V)``) or ``"qk_first"`` (:class:`SSAQKFirst`,
    ``(Q @ K^T) @ V``). Same ports and contract as every variant (module docstring); golden:
    :func:`spikeforge.golden.attention.sdsa_int`.

    Parameters
    ----------
    variant : str
        One of :data:`VARIANTS`.
    tokens, channels, heads, steps, shift
        As the variant takes them.
    """

    def __init__(self, *, variant="ssa", tokens, channels, heads=8, steps=4, shift=3):
        self._variant = check_choice("variant", variant, VARIANTS)
        self._core = _CORES[variant](tokens=tokens, channels=channels, heads=heads, steps=steps,
                                     shift=shift)
        super().__init__(tokens=tokens, channels=channels, heads=heads, steps=steps,
                         shift=shift)

    variant = property(lambda self: self._variant)

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = core = self._core
        wiring.connect(m, wiring.flipped(self.kv), core.kv)
        wiring.connect(m, wiring.flipped(self.q), core.q)
        wiring.connect(m, core.o, wiring.flipped(self.o))
        return m
