"""Formal harness of :class:`~spikeforge.hdl.engine.encoder.SpikeEncoder`: 4-bit words, 6
channels (a partial second word), 2 planes, one item per beat."""

from amaranth.hdl import Const, Mux, Signal

from spikeforge.contract.sizes import ceil_div
from spikeforge.hdl.engine.encoder import SpikeEncoder

from .harness import Harness, Mutation, valid_drops
from .properties import (counter, delta, drops_last, implies, popcount, stream_sink, stream_source,
                         transfer)

__all__ = ["EncoderHarness"]


def _no_mask(dut, m, internals):
    # bits of channels past the last one are not ignored
    m.d.comb += internals("masked").eq(dut.i.payload.data)


def _drops_rest(dut, m, internals):
    # the items after the one on offer are forgotten
    m.d.sync += internals("rest").eq(0)


def _repeats_addr(dut, m, internals):
    # the next beat of a word repeats the address on offer
    with m.If(dut.o.ready & internals("more")):
        m.d.sync += internals("hot").eq(internals("hot"))


def _plane_stuck(dut, m, internals):
    # the plane counter never advances: every word is taken as plane 0
    m.d.sync += internals("in_plane").eq(0)


def _offers_empty(dut, m, internals):
    # every word handed to W2 is offered, a zero word that does not close a token included
    with m.If((~internals("offer") | (dut.o.ready & ~internals("more")))
              & internals("w1_valid")):
        m.d.sync += internals("offer").eq(1)


def _more_stuck(dut, m, internals):
    # the flag "items left behind the one on offer" is never raised
    m.d.sync += internals("more").eq(0)


class EncoderHarness(Harness):
    """Input: spike words framed as tokens (assumed: ``planes`` planes of
    ``ceil(channels / word_bits)`` words, ``last`` on the final word); output: item beats."""

    unit = "encoder"
    component = SpikeEncoder
    params = {"word_bits": 4, "channels": 6, "planes": 2, "count": 1, "chunk": 1}
    # a token is 4 words: the base case must see one close
    prove_depth = 10
    bound_depth = 16
    cover_depth = 12
    mutations = {
        "valid_drops": valid_drops(comb=True),
        "no_mask": Mutation(catches=("items_conserved", "addr_in_range"),
                            text="bits past the last channel are encoded as items",
                            after=_no_mask),
        "drops_rest": Mutation(catches="items_conserved",
                               text="the items after the one on offer are forgotten",
                               after=_drops_rest),
        "repeats_addr": Mutation(catches="addr_increasing",
                                 text="the next item of a word repeats the address on offer",
                                 after=_repeats_addr),
        "drops_last": Mutation(catches="tokens_conserved",
                               text="the closing beat of a token loses its last flag",
                               after=drops_last("o", comb=True)),
        "plane_stuck": Mutation(catches="position_tracks",
                                text="the plane counter never advances",
                                after=_plane_stuck),
        "offers_empty": Mutation(catches="empty_beat_closes",
                                 text="a zero word that does not close a token is offered as "
                                      "an empty beat",
                                 after=_offers_empty),
        "more_stuck": Mutation(catches="rest_lemma",
                               text="the flag of items left behind the offered one is never "
                                    "raised",
                               after=_more_stuck),
    }
    suite_mutation = "drops_rest"

    def check(self, m, checks, dut, internals):
        word_bits, channels, planes = dut.word_bits, dut.channels, dut.planes
        per_plane = ceil_div(channels, word_bits)
        stream_source(m, checks, dut.i, name="i")
        stream_sink(m, checks, dut.o, name="o")

        # Token framing of the producer: word `word` of plane `plane`.
        word = Signal(range(per_plane), name="in_word")
        plane = Signal(range(planes), name="in_plane")
        final_word = word == per_plane - 1
        final_plane = plane == planes - 1
        with m.If(transfer(dut.i)):
            m.d.sync += word.eq(Mux(final_word, 0, word + 1))
            with m.If(final_word):
                m.d.sync += plane.eq(Mux(final_plane, 0, plane + 1))
        checks.assume(implies(dut.i.valid, dut.i.payload.last == (final_word & final_plane)))
        checks.prove("position_tracks", (word < per_plane) & (plane < planes)
                     & (internals("in_word") == word) & (internals("in_plane") == plane),
                     "the unit's word and plane counters are the harness's (and in range)")

        tail = channels - (per_plane - 1) * word_bits
        mask = Mux(final_word, Const((1 << tail) - 1, word_bits), (1 << word_bits) - 1)
        items_in = Signal(5, name="items_in")
        with m.If(transfer(dut.i)):
            m.d.sync += items_in.eq(items_in + popcount(dut.i.payload.data & mask))
        out = dut.o.payload
        items_out = counter(m, transfer(dut.o) & out.valid[0], bits=5, name="items_out")
        w1_valid, offer = internals("w1_valid"), internals("offer")
        rest, sel = internals("rest"), internals("sel")
        held = (Mux(w1_valid, popcount(internals("w1_items")), 0) + popcount(rest)
                + (offer & sel))
        checks.prove("items_conserved", delta(items_in, items_out) == held[:5],
                     "spikes taken (bits of real channels) = items delivered + items held")

        tokens_in = counter(m, transfer(dut.i) & dut.i.payload.last, bits=4, name="tokens_in")
        tokens_out = counter(m, transfer(dut.o) & out.last, bits=4, name="tokens_out")
        pending = (w1_valid & internals("w1_last")) + (offer & internals("last"))
        checks.prove("tokens_conserved", delta(tokens_in, tokens_out) == pending,
                     "tokens taken = tokens closed by a last beat + tokens held")
        checks.prove("empty_beat_closes", implies(offer & ~sel, out.last),
                     "a beat without an item is a token's closing beat")
        hot = internals("hot")
        checks.prove("rest_lemma", (internals("more") == rest.any())
                     & implies(~offer, rest == 0)
                     & implies(offer & sel, (rest & (hot | (hot - 1))) == 0),
                     "items are left behind the offered one only while a beat is offered, "
                     "all at higher addresses")

        addr = out.addr[0]
        checks.bound("addr_in_range", implies(offer & sel, addr < channels),
                     f"every item's address is a real channel (< {channels})")
        last_addr = Signal.like(addr, name="last_addr")
        started = Signal(name="plane_started")
        last_plane = Signal.like(out.plane, name="last_plane")
        with m.If(transfer(dut.o) & out.valid[0]):
            m.d.sync += [last_addr.eq(addr), started.eq(~out.last), last_plane.eq(out.plane)]
        with m.Elif(transfer(dut.o) & out.last):
            m.d.sync += started.eq(0)
        checks.bound("addr_increasing",
                     implies(offer & sel & started & (out.plane == last_plane), addr > last_addr),
                     "within a plane of a token the items leave in increasing address order "
                     "(none twice)")
        checks.cover("token_done", transfer(dut.o) & out.last & (items_out == 3),
                     "a token's closing beat after three items")
