"""AND-popcount of spike words: the per-head ``K^T V`` product of SDSA-3 / Spikformer SSA, built
event by event into a scratch memory, and the combinational popcount and block-select helpers the
attention units share."""

from amaranth.hdl import Module, Signal, Mux, Cat, Const, unsigned
from amaranth.lib import wiring, stream, data
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .encoder import lowest_set, one_hot_index
from .layouts import kv_pair
from .params import check_int

__all__ = ["KVPopcount", "popcount", "block_any", "select_block", "count_width"]


def count_width(limit):
    """Bits of an unsigned counter that never exceeds ``limit``."""
    return max(1, limit.bit_length())


def popcount(value):
    """Number of set bits of ``value``, as a balanced adder tree (combinational)."""
    terms = [value[i] for i in range(len(value))]
    if not terms:
        return Const(0, 1)
    while len(terms) > 1:
        pairs = [terms[i] + terms[i + 1] for i in range(0, len(terms) - 1, 2)]
        terms = pairs + ([terms[-1]] if len(terms) % 2 else [])
    return terms[0]


def block_any(value, width):
    """One bit per ``width``-bit block of ``value``: whether the block has a set bit."""
    return Cat(*[value[b * width:(b + 1) * width].any() for b in range(len(value) // width)])


def select_block(block_hot, word, width):
    """Block ``b`` of ``word`` where ``block_hot`` is one-hot at ``b`` (an AND-OR, no index)."""
    picked = Const(0, width)
    for b in range(len(block_hot)):
        picked = picked | Mux(block_hot[b], word[b * width:(b + 1) * width], 0)
    return picked


class KVPopcount(wiring.Component):
    """Per-head ``K^T V`` of ``tokens`` spike tokens by AND-popcount, into a scratch memory.

    Each beat of ``i`` is one token's K and V words. For every K spike ``i`` of the token (in
    increasing ``i``, zero skipping), row ``i`` of the scratch memory gains the token's V bits of
    the head of ``i``: after ``tokens`` beats, lane ``j`` of row ``i`` holds
    ``KV[h, i % D_h, j] = sum_n K[n, i] & V[n, h * D_h + j]`` with ``h = i // D_h``
    (golden: :func:`spikeforge.golden.attention.kv_int`). Counters are ``count_width(tokens)``
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
    i : In(stream.Signature(kv_pair(width=channels)))
    done : Out(1)
    release : In(1)
    rd_en : In(1)
    rd_addr : In(range(channels))
    rd_data : Out(data.ArrayLayout(unsigned(count_width(tokens)), D_h))
    """

    def __init__(self, *, tokens, channels, heads):
        self._tokens = check_int("tokens", tokens, min=1)
        self._channels = check_int("channels", channels, min=1)
        self._heads = check_int("heads", heads, min=1, max=channels)
        if channels % heads:
            raise ValueError(f"heads must divide channels ({channels}), not {heads!r}")
        self._row = data.ArrayLayout(unsigned(count_width(tokens)), channels // heads)
        super().__init__({
            "i": In(stream.Signature(kv_pair(width=channels))),
            "done": Out(1),
            "release": In(1),
            "rd_en": In(1),
            "rd_addr": In(range(channels)),
            "rd_data": Out(self._row),
        })

    tokens = property(lambda self: self._tokens)
    channels = property(lambda self: self._channels)
    heads = property(lambda self: self._heads)
    head_width = property(lambda self: self._channels // self._heads)

    def elaborate(self, platform):
        m = Module()
        dh, channels = self.head_width, self._channels
        m.submodules.rows = rows = Memory(shape=self._row, depth=channels, init=[])
        wr = rows.write_port()
        rd = rows.read_port(transparent_for=(wr,))

        # Rows written since the last release; the others read as zero.
        written = Signal(channels)
        rd_row = Signal(range(channels))

        # Stage 1: the token being scanned and its pending K spikes.
        kbits = Signal(channels)
        vword = Signal(channels)
        taken = Signal(range(self._tokens))
        closing = Signal()                  # the product's last token has been taken
        hot = lowest_set(kbits)
        rest = kbits & ~hot
        event = kbits.any()
        v_of_head = select_block(block_any(hot, dh), vword, dh)

        m.d.comb += self.i.ready.eq(~closing & ~self.done & ~rest.any())
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [kbits.eq(self.i.payload.k), vword.eq(self.i.payload.v)]
            with m.If(taken == self._tokens - 1):
                m.d.sync += [taken.eq(0), closing.eq(1)]
            with m.Else():
                m.d.sync += taken.eq(taken + 1)
        with m.Elif(event):
            m.d.sync += kbits.eq(rest)

        # The read port serves the events while building and the consumer once done.
        addr = Mux(self.done, self.rd_addr, one_hot_index(hot))
        read = Mux(self.done, self.rd_en, event)
        m.d.comb += [rd.addr.eq(addr), rd.en.eq(read)]
        with m.If(read):
            m.d.sync += rd_row.eq(addr)
        fresh = written.bit_select(rd_row, 1)
        m.d.comb += self.rd_data.eq(Mux(fresh, rd.data.as_value(), 0))

        # Stage 2: read-modify-write of the event's row.
        s2_valid = Signal()
        s2_v = Signal(dh)
        m.d.sync += [s2_valid.eq(event), s2_v.eq(v_of_head)]
        m.d.comb += [wr.en.eq(s2_valid), wr.addr.eq(rd_row)]
        for j in range(dh):
            m.d.comb += wr.data[j].eq(self.rd_data[j] + s2_v[j])
        with m.If(s2_valid):
            m.d.sync += written.bit_select(rd_row, 1).eq(1)

        with m.If(closing & ~event & ~s2_valid):
            m.d.sync += [closing.eq(0), self.done.eq(1)]
        with m.If(self.release):
            m.d.sync += [self.done.eq(0), written.eq(0)]
        return m
