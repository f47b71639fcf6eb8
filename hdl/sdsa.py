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

from amaranth.hdl import Module, Signal, Mux, unsigned
from amaranth.lib import wiring, stream, data
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .encoder import lowest_set, one_hot_index
from .layouts import kv_pair, spike_word
from .lif import LIFArray
from .packer import SpikePacker
from .params import check_int, check_choice
from .popcount import KVPopcount, popcount, count_width, count_to_three

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


class SSAQKFirst(_SSA):
    """Spikformer SSA in the other order, ``A = (Q @ K^T) @ V`` per head (CIFAR/DVS models).

    K/V phase: tokens whose K word has a spike are stored (K and V words); a token without K
    spikes contributes nothing and is dropped, one cycle per token. Q phase: for a Q word with a
    spike, every stored token ``m`` is read once; for all heads at once, ``s_h = popcount(Q_h AND
    K_m,h)`` and each V spike ``j`` of token ``m`` adds ``s_h`` of its head into accumulator
    ``j`` (select-and-add, no multiplier). The token's ``D`` sums leave as one score beat
    (lanes ``D``, one group). A Q word costs ``max(1, M)`` cycles with ``M`` stored tokens, or one
    cycle if it has no spike. Golden: ``ssa_int(order="qk_first")``.
    """

    def _beat_lanes(self):
        return self._channels

    def _scores(self, m, beats):
        dh, tokens, channels = self.head_width, self._tokens, self._channels
        m.submodules.store = store = Memory(shape=kv_pair(width=channels), depth=tokens, init=[])
        wr = store.write_port()
        rd = store.read_port()

        # K/V phase: keep the tokens with a K spike.
        loaded = Signal(range(tokens + 1))
        stored = Signal(range(tokens + 1))
        m.d.comb += [
            self.kv.ready.eq(loaded != tokens),
            wr.addr.eq(stored),
            wr.data.eq(self.kv.payload),
            wr.en.eq(self.kv.valid & self.kv.ready & self.kv.payload.k.any()),
        ]
        with m.If(self.kv.valid & self.kv.ready):
            m.d.sync += loaded.eq(loaded + 1)
            with m.If(wr.en):
                m.d.sync += stored.eq(stored + 1)

        advance = ~beats.valid | beats.ready

        # Stage 1: sweep the stored tokens for the current Q word.
        qword = Signal(channels)
        have = Signal()
        index = Signal(range(tokens))
        taken = Signal(range(tokens + 1))
        empty = (qword == 0) | (stored == 0)
        item_last = have & (empty | (index == stored - 1))
        m.d.comb += [
            self.q.ready.eq(advance & (loaded == tokens) & (taken != tokens) &
                            (~have | item_last)),
            rd.addr.eq(index),
            rd.en.eq(advance & have & ~empty),
        ]
        with m.If(self.q.valid & self.q.ready):
            m.d.sync += [qword.eq(self.q.payload.data), have.eq(1), index.eq(0),
                         taken.eq(taken + 1)]
        with m.Elif(advance & have):
            with m.If(item_last):
                m.d.sync += have.eq(0)
            with m.Else():
                m.d.sync += index.eq(index + 1)

        # Stage 2: the token read arrives; Q AND K and V are registered (zero without a read).
        s2_valid, s2_read, s2_last, s2_end = Signal(), Signal(), Signal(), Signal()
        s2_q = Signal(channels)
        with m.If(advance):
            m.d.sync += [
                s2_valid.eq(have),
                s2_read.eq(~empty),
                s2_last.eq(item_last),
                s2_end.eq(item_last & (taken == tokens)),
                s2_q.eq(qword),
            ]
        s3_valid, s3_last = Signal(), Signal()
        s3_both, s3_v = Signal(channels), Signal(channels)
        with m.If(advance):
            m.d.sync += [
                s3_valid.eq(s2_valid), s3_last.eq(s2_last),
                s3_both.eq(Mux(s2_read, s2_q & rd.data.k, 0)),
                s3_v.eq(Mux(s2_read, rd.data.v, 0)),
            ]
        # The step's last token is in hand: the next step's K/V may come in.
        with m.If(advance & s2_valid & s2_end):
            m.d.sync += [loaded.eq(0), stored.eq(0), taken.eq(0)]

        # Stage 3: popcount per head, registered.
        s4_valid, s4_last = Signal(), Signal()
        s4_v = Signal(channels)
        overlap = [Signal(count_width(dh)) for _ in range(self._heads)]
        with m.If(advance):
            m.d.sync += [s4_valid.eq(s3_valid), s4_last.eq(s3_last), s4_v.eq(s3_v)]
            m.d.sync += [overlap[h].eq(popcount(s3_both[h * dh:(h + 1) * dh]))
                         for h in range(self._heads)]

        # Stage 4: select-and-add per V spike; a Q token's last key emits its sums.
        acc = Signal(data.ArrayLayout(unsigned(self._score_width()), channels))
        sums = [acc[j] + Mux(s4_v[j], overlap[j // dh], 0) for j in range(channels)]
        with m.If(advance & s4_valid):
            for j in range(channels):
                m.d.sync += acc[j].eq(Mux(s4_last, 0, sums[j]))
        self._emit(m, beats, advance, s4_valid & s4_last, sums, 0)


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
