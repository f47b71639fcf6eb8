"""SDSA-3 / Spikformer SSA in the ``kv_first`` order, ``A = Q @ (K^T @ V)`` (variant ``ssa``)."""

from amaranth.hdl import Signal, Mux
from amaranth.lib import wiring

from ..bits import count_to_three, lowest_set, one_hot_index
from .popcount import KVPopcount
from .ssa import SSABackEnd

__all__ = ["SSAKVFirst"]


class SSAKVFirst(SSABackEnd):
    """SDSA-3 / Spikformer SSA, ``A = Q @ (K^T @ V)`` per head, then ``LIF(A * 2**-shift)``.

    K/V phase: :class:`~.popcount.KVPopcount` builds the ``D x D_h`` product (row ``i`` = K
    channel ``i``, lanes = V channels of its head), ``max(1, k)`` cycles per token with ``k`` K
    spikes. Q phase, a spike-accumulate engine with the product as its weight memory: for each
    token and head, every Q spike ``i`` of the head reads row ``i`` and adds it into ``D_h``
    accumulators (zero skipping); the head's sums leave as one score beat (lanes ``D_h``,
    group = head), ``max(1, q)`` cycles per head with ``q`` Q spikes in it. Then the shared
    attention LIF and packer (:class:`~.ssa.SSABackEnd`). Golden:
    ``ssa_int(order="kv_first")``. Parameters and ports: :class:`~.base.AttentionUnit`.
    """

    @property
    def score_lanes(self):
        return self.head_channels

    def _scores(self, m, beats):
        dh, heads, tokens = self.head_channels, self._heads, self._tokens
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
        self._accumulate(m, beats, advance, q3_valid, q3_last, [row[j] for j in range(dh)],
                         q3_head)
