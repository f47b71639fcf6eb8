"""Formal harness of :class:`~spikeforge.hdl.packer.SpikePacker`: 2 lanes, 5 channels, 4-bit
words (3 beats and 2 words per token, a partial last beat and a padded last word)."""

from amaranth.hdl import Cat, Mux, Signal

from spikeforge.contract.sizes import ceil_div
from spikeforge.hdl.packer import SpikePacker

from .harness import Harness, Mutation, valid_drops
from .properties import (counter, delta, drops_last, implies, lane_beat_framing, stream_sink,
                         stream_source, transfer)

__all__ = ["PackerHarness"]


def _slot_stuck(dut, m, internals):
    # the word slot never advances: beats of a word overwrite each other
    m.d.sync += internals("slot").eq(0)


def _keeps_word(dut, m, internals):
    # the partial word is not cleared when a token's last word closes
    with m.If(transfer(dut.i) & dut.i.payload.last):
        m.d.sync += internals("word").eq(internals("merged"))


def _pads_with_one(dut, m, internals):
    with m.If(transfer(dut.i) & dut.i.payload.last):
        m.d.sync += dut.o.payload.data.eq(internals("merged") | (1 << (dut.word_bits - 1)))


class PackerHarness(Harness):
    """Input: lane beats of spikes framed as tokens (assumed); output: spike words."""

    unit = "packer"
    component = SpikePacker
    params = {"lanes": 2, "channels": 5, "word_bits": 4}
    cover_depth = 10
    mutations = {
        "valid_drops": valid_drops(),
        "drops_last": Mutation(catches=("tokens_conserved", "words_per_token", "word_position"),
                               text="the last word of a token loses its last flag",
                               after=drops_last("o")),
        "slot_stuck": Mutation(catches=("words_conserved", "words_per_token", "slot_tracks"),
                               text="the word slot never advances (beats overwrite each other)",
                               after=_slot_stuck),
        "pads_with_one": Mutation(catches="padding_zero",
                                  text="a token's last word has its top (padding) bit set",
                                  after=_pads_with_one),
        "keeps_word": Mutation(catches="word_clear_above",
                               text="the partial word is not cleared after a token",
                               after=_keeps_word),
    }
    suite_mutation = "slot_stuck"

    def check(self, m, checks, dut, internals):
        lanes, word_bits = dut.lanes, dut.word_bits
        groups = dut.lane_groups
        per_word = word_bits // lanes
        words = ceil_div(dut.channels, word_bits)
        stream_source(m, checks, dut.i, name="i")
        stream_sink(m, checks, dut.o, name="o")

        group = lane_beat_framing(m, checks, dut.i, lane_groups=groups, name="i")
        beat = dut.i.payload

        tokens_in = counter(m, transfer(dut.i) & beat.last, bits=4, name="tokens_in")
        tokens_out = counter(m, transfer(dut.o) & dut.o.payload.last, bits=4, name="tokens_out")
        checks.prove("tokens_conserved",
                     delta(tokens_in, tokens_out) == (dut.o.valid & dut.o.payload.last),
                     "tokens taken = tokens delivered + the last word on offer")

        slot = group % per_word
        closes = transfer(dut.i) & (beat.last | (slot == per_word - 1))
        closed = counter(m, closes, bits=4, name="words_closed")
        delivered = counter(m, transfer(dut.o), bits=4, name="words_out")
        checks.prove("words_conserved", delta(closed, delivered) == dut.o.valid,
                     f"words delivered + the word on offer = beats that close a word (a "
                     f"word's {per_word}th beat, a token's last)")

        out_word = Signal(range(words), name="out_word")
        with m.If(transfer(dut.o)):
            m.d.sync += out_word.eq(Mux(dut.o.payload.last, 0, out_word + 1))
        checks.prove("words_per_token",
                     implies(transfer(dut.o), dut.o.payload.last == (out_word == words - 1)),
                     f"every token leaves as exactly {words} words, last flag on the final one")

        tail = dut.channels - (words - 1) * word_bits
        checks.prove("padding_zero",
                     implies(dut.o.valid & dut.o.payload.last,
                             dut.o.payload.data[tail:] == 0),
                     f"bits {tail}.. of a token's last word (past its channels) are 0")

        # Lemmas: the unit's slot and partial word follow the harness's position.
        word = internals("word")
        checks.prove("slot_tracks", internals("slot") == slot,
                     "the unit's word slot is the beat's position in its word")
        checks.prove("word_clear_above",
                     Cat(*[implies(slot == s, word[s * lanes:] == 0)
                           for s in range(per_word)]).all(),
                     "the partial word holds no bit at or above the next beat's lanes")
        owed = dut.o.valid & dut.o.payload.last
        checks.prove("word_position",
                     implies(owed, (out_word == words - 1) & (group < per_word))
                     & implies(~owed, out_word + dut.o.valid == group // per_word),
                     "words delivered of the current token + the word on offer = words it "
                     "has closed")
        checks.cover("token_done", transfer(dut.o) & dut.o.payload.last & (tokens_out == 1),
                     "a second token's last word is delivered")
