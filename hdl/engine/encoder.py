"""Spike encoder (zero skipping): packed spike words → the addresses of their nonzero spikes."""

from amaranth.hdl import Module, Signal, Const, Cat, Mux, unsigned
from amaranth.lib import wiring, stream, data
from amaranth.lib.wiring import In, Out

from spikeforge.contract.sizes import ceil_div

from ..bits import lowest_set, one_hot_index, prefix_counts
from ..layouts import encoder_input, encoder_output
from ..params import check_int

__all__ = ["SpikeEncoder", "SLICE_ITEMS"]

# Items per slice of a wide word: the width of the encoder's one-item-per-cycle search loop.
SLICE_ITEMS = 16


class SpikeEncoder(wiring.Component):
    """Turns spike words into the addresses of their nonzero items, ``count`` per cycle.

    A token is ``planes * ceil(channels / word_bits)`` words (plane-major, the packer's word
    format for each plane; ``last`` on the token's final word). An *item* is one bit
    (``chunk = 1``) or one ``chunk``-bit slice of a word (``chunk > 1``: the engine's depthwise
    mode, where a slice is one lane group). Each nonzero item is emitted once, in increasing
    address order, ``count`` items per beat; ``addr`` is the item's index within its plane
    (``(w * word_bits + bit) // chunk`` for bit ``bit`` of the plane's word ``w``) and ``mask``
    the slice's bits. Bits of channels ``>= channels`` are ignored.

    Work is proportional to the spikes: a word with ``n`` nonzero items takes ``ceil(n / count)``
    cycles, an all-zero word one cycle, and the next word is taken in the cycle the current one
    is finished. A token whose last word has no item closes with one empty beat (``valid == 0``,
    ``last`` set), so every token ends with exactly one ``last`` beat.
    Golden function: :func:`spikeforge.golden.sops.spike_events`.

    Parameters
    ----------
    word_bits : int
        Bits per spike word; a multiple of ``chunk``.
    channels : int
        Channels per plane.
    planes : int
        Bit-planes per token (``input_bits`` of a multi-bit input).
    count : int
        Items per output beat, at most ``word_bits // chunk``.
    chunk : int
        Bits per item.
    tag_bits : int
        Bits of a per-word tag copied to the word's beats (0: none, the input is a plain
        :func:`~spikeforge.hdl.layouts.spike_word`).

    Members
    -------
    i : In(stream.Signature(encoder_input(word_bits, tag_bits)))
    o : Out(stream.Signature(encoder_output(count, addr_range, chunk, planes, tag_bits)))
        (:mod:`spikeforge.hdl.layouts`; ``addr_range = ceil(channels / word_bits) *
        (word_bits // chunk)``)
    """

    def __init__(self, *, word_bits, channels, planes=1, count=1, chunk=1, tag_bits=0):
        self._word_bits = check_int("word_bits", word_bits, min=1)
        self._channels = check_int("channels", channels, min=1)
        self._planes = check_int("planes", planes, min=1)
        self._chunk = check_int("chunk", chunk, min=1)
        if word_bits % chunk:
            raise ValueError(f"word_bits must be a multiple of chunk ({chunk}), "
                             f"not {word_bits!r}")
        self._count = check_int("count", count, min=1, max=word_bits // chunk)
        self._tag_bits = check_int("tag_bits", tag_bits, min=0)
        self._per_plane = ceil_div(channels, word_bits)
        self._items = word_bits // chunk
        addr_range = self._per_plane * self._items
        super().__init__({
            "i": In(stream.Signature(encoder_input(word_bits=word_bits, tag_bits=tag_bits))),
            "o": Out(stream.Signature(encoder_output(
                count=count, addr_range=addr_range, chunk=chunk, planes=planes,
                tag_bits=tag_bits))),
        })

    word_bits = property(lambda self: self._word_bits)
    channels = property(lambda self: self._channels)
    planes = property(lambda self: self._planes)
    count = property(lambda self: self._count)
    chunk = property(lambda self: self._chunk)
    tag_bits = property(lambda self: self._tag_bits)

    def elaborate(self, platform):
        m = Module()
        word_bits, chunk, items, count = self._word_bits, self._chunk, self._items, self._count
        addr_shape = self.o.payload.addr.shape().elem_shape
        plane_shape = self.o.payload.plane.shape()
        tag_shape = unsigned(max(1, self._tag_bits))
        # A wide word is handed from W1 to W2 one nonzero slice of `span` items at a time, so the
        # item-selection loop in W2 spans `span` items, not the whole word. (With count > 1, a
        # beat may hold items of different slices, so the word stays whole then.)
        sliced = count == 1 and chunk == 1 and items > SLICE_ITEMS and items % SLICE_ITEMS == 0
        span = SLICE_ITEMS if sliced else items
        slices = ceil_div(items, span)

        # Position of the next input word within its token.
        in_word = Signal(range(self._per_plane))
        in_base = Signal(addr_shape)
        in_plane = Signal(plane_shape)
        tail_bits = self._channels - (self._per_plane - 1) * word_bits
        channel_mask = Mux(in_word == self._per_plane - 1, Const((1 << tail_bits) - 1, word_bits),
                           Const((1 << word_bits) - 1, word_bits))

        # Stage W1: the accepted word, masked, with its nonzero-item bits; `w1_part` is the slice
        # to hand over next (the lowest nonzero one, at slice `w1_offset`), `w1_slices` the
        # nonzero slices after it and `w1_final` = no slice after it (all registered, so the
        # item selection in W2 starts from flip-flops).
        w1_valid = Signal()
        w1_word = Signal(word_bits)
        w1_items = Signal(items)
        w1_part = Signal(span)
        w1_offset = Signal(range(slices))
        w1_slices = Signal(slices)
        w1_final = Signal()
        w1_base = Signal(addr_shape)
        w1_plane = Signal(plane_shape)
        w1_last = Signal()
        w1_tag = Signal(tag_shape)

        # Stage W2: the slice being encoded. `sel`/`hot`/`masks` hold the items of the beat on
        # offer now, `rest` the items still to come after it, `more` = rest.any() and `offer` =
        # o.valid (registered, so the handshake never waits on the item selection).
        offer = Signal()                         # o.valid, registered
        sel = Signal(count)                      # slot s holds an item
        hot = Signal(data.ArrayLayout(unsigned(span), count))  # one-hot item of each slot
        rest = Signal(span)
        more = Signal()
        word = Signal(word_bits)
        base = Signal(addr_shape)
        plane = Signal(plane_shape)
        last = Signal()
        tag = Signal(tag_shape)
        masks = Signal(data.ArrayLayout(unsigned(chunk), count)) if chunk > 1 else None

        def wire(value, name):
            """``value`` as a combinational signal: every intermediate result is named once, so
            neither the netlist nor the simulator repeats the expression behind it."""
            sig = Signal(len(value), name=name)
            m.d.comb += sig.eq(value)
            return sig

        def take(source, source_word, closing, name):
            """Statements loading W2's beat from the item bits ``source``: its lowest
            ``count`` items, the rest, and whether any is left; ``closing``: the beat ends the
            token (so it is offered even with no item). Item ``i`` goes to slot
            ``s`` when ``s`` items lie below it (a log-depth prefix count, no carry chain
            through the items, no chain of find-first-set steps)."""
            below, total = prefix_counts(m, source, limit=count + 1, name=name)
            stmts = []
            for s in range(count):
                one = wire(Cat(*[source[i] & (below[i] == s) for i in range(len(source))]),
                           f"{name}_hot{s}")
                stmts += [sel[s].eq(total > s), hot[s].eq(one)]
                if chunk > 1:
                    # AND-OR with the one-hot select (a variable word_select would multiply).
                    stmts.append(masks[s].eq(Cat(*[
                        Cat(*[source_word[j * chunk + b] & one[j] for j in range(len(one))])
                        .any() for b in range(chunk)])))
            left = Cat(*[source[i] & (below[i] >= count) for i in range(len(source))])
            stmts += [rest.eq(left), more.eq(total > count), offer.eq((total > 0) | closing)]
            return stmts

        # The slot's item index is encoded from the registered one-hot on the way out (an OR
        # tree), so it is not on the path through the prefix counts.
        span_pow2 = span & (span - 1) == 0
        for s in range(count):
            index = one_hot_index(hot[s])
            if span_pow2 and span > 1:
                # base is a multiple of `span`: concatenate instead of adding
                high = base[(span - 1).bit_length():]
                addr = Cat(index, high)[:addr_shape.width]
            else:
                addr = base + index
            m.d.comb += [self.o.payload.addr[s].eq(addr), self.o.payload.valid[s].eq(sel[s])]
            if chunk > 1:
                m.d.comb += self.o.payload.mask[s].eq(masks[s])
        m.d.comb += [
            self.o.payload.plane.eq(plane),
            self.o.payload.last.eq(last & ~more),
            self.o.valid.eq(offer),
        ]
        if self._tag_bits:
            m.d.comb += self.o.payload.tag.eq(tag)

        # W2 frees when empty, when it holds a zero non-last slice, or when the beat leaving now
        # takes its last items; W1 hands over a slice in that cycle, and W1 takes a new word
        # whenever it is empty or handing over its final slice.
        free = ~offer | (self.o.ready & ~more)
        m.d.comb += self.i.ready.eq(~w1_valid | (free & w1_final))

        def next_slice(item_bits, nonzero, name):
            """Statements making the lowest slice in ``nonzero`` W1's next slice."""
            pick = wire(lowest_set(nonzero), f"{name}_pick")
            left = (nonzero & ~pick)[:slices]
            return [
                w1_part.eq(Cat(*[Cat(*[item_bits[c * span + b] & pick[c]
                                       for c in range(slices)]).any() for b in range(span)])),
                w1_offset.eq(one_hot_index(pick)),
                w1_slices.eq(left),
                w1_final.eq(~left.any()),
            ]

        # (the statement lists are built outside the conditions below, so their helper
        # signals are driven unconditionally)
        masked = wire(self.i.payload.data & channel_mask, "masked")
        nonzero = wire(Cat(*[masked[j * chunk:(j + 1) * chunk].any() for j in range(items)]),
                       "nonzero")
        if slices == 1:
            hand_over = [take(w1_items, w1_word, w1_last, "w1"), base.eq(w1_base),
                         last.eq(w1_last)]
        else:
            # Hand over the slice (an empty one for a zero word), line up the next.
            any_slice = Cat(*[nonzero[c * span:(c + 1) * span].any() for c in range(slices)])
            fresh = next_slice(nonzero, any_slice, "fresh")
            hand_over = [
                take(w1_part, w1_word, w1_last & w1_final, "part"),
                base.eq(w1_base | (w1_offset << (span - 1).bit_length())),
                last.eq(w1_last & w1_final),
                next_slice(w1_items, w1_slices, "ahead"),
            ]
        take_rest = take(rest, word, last, "rest")

        with m.If(free):
            m.d.sync += offer.eq(0)
            with m.If(w1_valid):
                m.d.sync += hand_over
                m.d.sync += [word.eq(w1_word), plane.eq(w1_plane), tag.eq(w1_tag)]
        with m.Elif(self.o.ready):
            # A beat leaves and the slice has more items: the next `count` of them.
            m.d.sync += take_rest

        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [
                w1_valid.eq(1),
                w1_word.eq(masked),
                w1_items.eq(nonzero),
                w1_base.eq(in_base),
                w1_plane.eq(in_plane),
                w1_last.eq(self.i.payload.last),
            ]
            if slices > 1:
                m.d.sync += fresh
            if self._tag_bits:
                m.d.sync += w1_tag.eq(self.i.payload.tag)
            with m.If(self.i.payload.last):
                m.d.sync += [in_word.eq(0), in_base.eq(0), in_plane.eq(0)]
            with m.Elif(in_word == self._per_plane - 1):
                # A conv window holds many tokens' worth of planes: wrap at `planes`.
                m.d.sync += [in_word.eq(0), in_base.eq(0),
                             in_plane.eq(Mux(in_plane == self._planes - 1, 0, in_plane + 1))]
            with m.Else():
                m.d.sync += [in_word.eq(in_word + 1), in_base.eq(in_base + items)]
        with m.Elif(free & w1_final):
            m.d.sync += w1_valid.eq(0)
        if slices == 1:
            m.d.comb += w1_final.eq(1)
        return m
