"""Spike packer: lane beats of spikes → packed spike words for the spike memory."""

from amaranth.hdl import Module, Signal, Mux, Const
from amaranth.lib import wiring, stream
from amaranth.lib.wiring import In, Out

from spikeforge.contract.sizes import ceil_div

from .layouts import lane_beat, spike_word
from .params import check_int

__all__ = ["SpikePacker"]


class SpikePacker(wiring.Component):
    """Collects the P-spike beats of each token into ``word_bits``-bit words.

    A token of ``channels`` channels arrives as ``ceil(channels / lanes)`` beats
    (``first``/``last`` framed) and leaves as ``ceil(channels / word_bits)`` words; channel ``c``
    is bit ``c % word_bits`` of word ``c // word_bits``. Lanes past ``channels`` in the last beat
    are forced to 0, and a token's last word is zero-padded. Golden function:
    :func:`spikeforge.golden.spikes.pack_words`.

    Parameters
    ----------
    lanes : int
        Spikes per input beat (P).
    channels : int
        Channels per token (C).
    word_bits : int
        Bits per output word; a multiple of ``lanes``.

    Members
    -------
    i : In(stream.Signature(lane_beat(lanes, 1, lane_groups)))
        ``lane_groups = ceil(channels / lanes)``.
    o : Out(stream.Signature(spike_word(word_bits)))
    """

    def __init__(self, *, lanes, channels, word_bits):
        self._lanes = check_int("lanes", lanes, min=1)
        self._channels = check_int("channels", channels, min=1)
        self._word_bits = check_int("word_bits", word_bits, min=lanes)
        if word_bits % lanes:
            raise ValueError(f"word_bits must be a multiple of lanes ({lanes}), "
                             f"not {word_bits!r}")
        self._lane_groups = ceil_div(channels, lanes)
        super().__init__({
            "i": In(stream.Signature(lane_beat(lanes=lanes, shape=1,
                                               lane_groups=self._lane_groups))),
            "o": Out(stream.Signature(spike_word(word_bits=word_bits))),
        })

    lanes = property(lambda self: self._lanes)
    channels = property(lambda self: self._channels)
    word_bits = property(lambda self: self._word_bits)
    lane_groups = property(lambda self: self._lane_groups)

    def elaborate(self, platform):
        m = Module()
        beats_per_word = self._word_bits // self._lanes
        # Lanes of the token's last beat that carry real channels.
        tail_lanes = self._channels - (self._lane_groups - 1) * self._lanes
        tail_mask = Const((1 << tail_lanes) - 1, self._lanes)

        word = Signal(self._word_bits)
        slot = Signal(range(beats_per_word))
        spikes = Mux(self.i.payload.last, self.i.payload.data.as_value() & tail_mask,
                     self.i.payload.data.as_value())
        merged = Signal(self._word_bits)
        m.d.comb += merged.eq(word)
        m.d.comb += merged.word_select(slot, self._lanes).eq(spikes)
        closes_word = self.i.payload.last | (slot == beats_per_word - 1)

        # The output register can take a word when it is empty or being emptied this cycle.
        m.d.comb += self.i.ready.eq(~self.o.valid | self.o.ready)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(self.i.valid & self.i.ready):
            with m.If(closes_word):
                m.d.sync += [
                    self.o.valid.eq(1),
                    self.o.payload.data.eq(merged),
                    self.o.payload.last.eq(self.i.payload.last),
                    word.eq(0),
                    slot.eq(0),
                ]
            with m.Else():
                m.d.sync += [word.eq(merged), slot.eq(slot + 1)]
        return m
