"""AND-popcount of spike words: the per-head ``K^T V`` product of SDSA-3 / Spikformer SSA
(the ``kv_first`` order), built event by event into a scratch memory."""

from amaranth.hdl import Module, Signal, Mux, unsigned
from amaranth.lib import wiring, stream, data
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..bits import count_bits, count_to_three, lowest_set_blocked, one_hot_index, select_block
from ..layouts import kv_pair
from ..params import check_int
from .base import check_heads

__all__ = ["KVPopcount"]


class KVPopcount(wiring.Component):
    """Per-head ``K^T V`` of ``tokens`` spike tokens by AND-popcount, into a scratch memory.

    Each beat of ``i`` is one token's K and V words. For every K spike ``i`` of the token (in
    increasing ``i``, zero skipping), row ``i`` of the scratch memory gains the token's V bits of
    the head of ``i``: after ``tokens`` beats, lane ``j`` of row ``i`` holds
    ``KV[h, i % D_h, j] = sum_n K[n, i] & V[n, h * D_h + j]`` with ``h = i // D_h``
    (golden: :func:`spikeforge.golden.attention.kv_int`). Counters are ``count_bits(tokens)``
    bits: no entry can exceed ``tokens``, so the sum never overflows.

    ``done`` rises when the product is complete; the unit then takes no beats and serves reads
    (``rd_en``/``rd_addr``, data on ``rd_data`` the next cycle, held while ``rd_en`` is low).
    A one-cycle ``release`` forgets the product (rows not yet written read as 0, so no clearing
    pass is needed) and lets the next ``tokens`` beats in.

    Cost: a token with ``k`` K spikes takes ``max(1, k)`` cycles (one read-modify-write per
    event, pipelined; a row written while it is read again is forwarded by a transparent port).

    Parameters
    ----------
    tokens : int
        N, tokens per product.
    channels : int
        D, channels of K and V.
    heads : int
        Heads; must divide ``channels`` (``D_h = channels // heads``).

    Members
    -------
    i : In(stream.Signature(kv_pair(word_bits=channels)))
    done : Out(1)
    release : In(1)
    rd_en : In(1)
    rd_addr : In(range(channels))
    rd_data : Out(data.ArrayLayout(unsigned(count_bits(tokens)), D_h))
    """

    def __init__(self, *, tokens, channels, heads):
        self._tokens = check_int("tokens", tokens, min=1)
        self._channels = check_int("channels", channels, min=1)
        self._heads = check_heads(heads, channels)
        self._row = data.ArrayLayout(unsigned(count_bits(tokens)), channels // heads)
        super().__init__({
            "i": In(stream.Signature(kv_pair(word_bits=channels))),
            "done": Out(1),
            "release": In(1),
            "rd_en": In(1),
            "rd_addr": In(range(channels)),
            "rd_data": Out(self._row),
        })

    tokens = property(lambda self: self._tokens)
    channels = property(lambda self: self._channels)
    heads = property(lambda self: self._heads)
    head_channels = property(lambda self: self._channels // self._heads)

    def elaborate(self, platform):
        m = Module()
        dh, channels = self.head_channels, self._channels
        m.submodules.rows = rows = Memory(shape=self._row, depth=channels, init=[])
        wr = rows.write_port()
        rd = rows.read_port(transparent_for=(wr,))

        # Rows written since the last release; the others read as zero.
        written = Signal(channels)

        # Stage 0: the token being scanned and its pending K spikes.
        kbits = Signal(channels)
        vword = Signal(channels)
        taken = Signal(range(self._tokens))
        closing = Signal()                  # the product's last token has been taken
        more = Signal()                     # kbits has two spikes or more (registered)
        event = Signal()                    # kbits has a spike (registered: after an event
        #                                     the rest has one exactly when `more` was set)
        hot, head_hot = lowest_set_blocked(m, kbits, dh)
        rest = kbits & ~hot

        m.d.comb += self.i.ready.eq(~closing & ~self.done & ~more)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [kbits.eq(self.i.payload.k), vword.eq(self.i.payload.v),
                         more.eq(count_to_three(m, self.i.payload.k) >= 2)]
            with m.If(taken == self._tokens - 1):
                m.d.sync += [taken.eq(0), closing.eq(1)]
            with m.Else():
                m.d.sync += taken.eq(taken + 1)
        with m.Elif(event):
            m.d.sync += [kbits.eq(rest), more.eq(count_to_three(m, kbits) == 3)]
        m.d.sync += event.eq(Mux(self.i.valid & self.i.ready, self.i.payload.k.any(),
                                 event & more))

        # Stage 1: the event's row address and V bits, registered; the row is read.
        s1_valid, s1_addr, s1_v = Signal(), Signal(range(channels)), Signal(dh)
        m.d.sync += [s1_valid.eq(event), s1_addr.eq(one_hot_index(hot)),
                     s1_v.eq(select_block(head_hot, vword, dh))]

        # Stage 2: the row arrives and is registered; where it comes from in stage 3 is decided
        # here from registers: the write in flight in stage 3 (same row: forward it), the memory
        # (a row written before, the transparent port covering a write in the read cycle), or
        # zero (a row not written since the release).
        s2_valid, s2_addr, s2_v = Signal(), Signal(range(channels)), Signal(dh)
        s3_valid, s3_addr, s3_v = Signal(), Signal(range(channels)), Signal(dh)
        s3_raw = Signal(self._row)
        s3_fwd, s3_mem = Signal(), Signal()
        m.d.sync += [s2_valid.eq(s1_valid), s2_addr.eq(s1_addr), s2_v.eq(s1_v)]
        forward = s3_valid & (s3_addr == s2_addr)
        m.d.sync += [
            s3_valid.eq(s2_valid), s3_addr.eq(s2_addr), s3_v.eq(s2_v),
            s3_raw.eq(rd.data),
            s3_fwd.eq(forward),
            s3_mem.eq(~forward & written.bit_select(s2_addr, 1)),
        ]

        # Stage 3: read-modify-write of the event's row.
        new = Signal(self._row)
        last = Signal(self._row)            # the row written in the previous cycle
        m.d.comb += [wr.en.eq(s3_valid), wr.addr.eq(s3_addr), wr.data.eq(new)]
        for j in range(dh):
            old = (Mux(s3_mem, s3_raw[j], 0) | Mux(s3_fwd, last[j], 0))
            m.d.comb += new[j].eq(old + s3_v[j])
        m.d.sync += last.eq(new)
        with m.If(s3_valid):
            m.d.sync += written.bit_select(s3_addr, 1).eq(1)

        # The read port serves the events while building and the consumer once done; the
        # consumer's zero mask for unwritten rows is decided when the read is issued.
        fresh = Signal()
        m.d.comb += [rd.addr.eq(Mux(self.done, self.rd_addr, s1_addr)),
                     rd.en.eq(Mux(self.done, self.rd_en, 1))]
        with m.If(self.done & self.rd_en):
            m.d.sync += fresh.eq(written.bit_select(self.rd_addr, 1))
        m.d.comb += self.rd_data.eq(Mux(fresh, rd.data.as_value(), 0))

        # Done once the last write has landed: reads from then on see the whole product.
        with m.If(closing & ~event & ~s1_valid & ~s2_valid):
            m.d.sync += [closing.eq(0), self.done.eq(1)]
        with m.If(self.release):
            m.d.sync += [self.done.eq(0), written.eq(0)]
        return m
