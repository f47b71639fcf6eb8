"""Spike packer: lane beats of spikes → packed spike words for the spike memory."""

from amaranth.hdl import Module, Signal, Mux, Const
from amaranth.lib import wiring, stream
from amaranth.lib.wiring import In, Out

from .layouts import lane_beat, spike_word
from .params import check_int

__all__ = ["SpikePacker"]


class SpikePacker(wiring.Component):
    """Collects the P-spike beats of each token into ``width``-bit words.

    A token of ``channels`` channels arrives as ``ceil(channels / lanes)`` beats (``first``/``last``
    framed) and leaves as ``ceil(channels / width)`` words; channel ``c`` is bit ``c % width`` of
    word ``c // width``. Lanes past ``channels`` in the last beat are forced to 0, and a token's
    last word is zero-padded. Golden function: :func:`spikeforge.golden.spikes.pack_words`.

    Parameters
    ----------
    lanes : int
        Spikes per input beat (P).
    channels : int
        Channels per token (C).
    width : int
        Bits per output word; a multiple of ``lanes``.

    Members
    -------
    i : In(stream.Signature(lane_beat(lanes, 1, groups)))
    o : Out(stream.Signature(spike_word(width)))
    """

    def __init__(self, *, lanes, channels, width):
        self._lanes = check_int("lanes", lanes, min=1)
        self._channels = check_int("channels", channels, min=1)
        self._width = check_int("width", width, min=lanes)
        if width % lanes:
            raise ValueError(f"width must be a multiple of lanes ({lanes}), not {width!r}")
        self._groups = -(-channels // lanes)
        super().__init__({
            "i": In(stream.Signature(lane_beat(lanes=lanes, shape=1, groups=self._groups))),
            "o": Out(stream.Signature(spike_word(width=width))),
        })

    lanes = property(lambda self: self._lanes)
    channels = property(lambda self: self._channels)
    width = property(lambda self: self._width)

    def elaborate(self, platform):
        m = Module()
        beats_per_word = self._width // self._lanes
        # Lanes of the token's last beat that carry real channels.
        tail_lanes = self._channels - (self._groups - 1) * self._lanes
        tail_mask = Const((1 << tail_lanes) - 1, self._lanes)

        word = Signal(self._width)
        slot = Signal(range(beats_per_word))
        spikes = Mux(self.i.payload.last, self.i.payload.data.as_value() & tail_mask,
                     self.i.payload.data.as_value())
        merged = Signal(self._width)
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
