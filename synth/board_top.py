"""The design the board builds put on the FPGA: a serial link to the spike packer.

Bytes from the host's serial port are spikes: byte ``g`` of a token carries channels
``8g … 8g+7`` (bit ``i`` = channel ``8g+i``), one lane beat of 8 lanes per byte. The
:class:`~spikeforge.hdl.packer.SpikePacker` packs each token into ``word_bits``-bit words, which
go back to the host least significant byte first. So a host sends ``ceil(channels / 8)`` bytes
per token and reads back ``ceil(channels / word_bits) * word_bits / 8`` bytes, equal to
:func:`spikeforge.golden.spikes.pack_words` of the same spikes; the same path a layer program
would take through the host port.
"""

from amaranth.hdl import Elaboratable, Module, Mux, Signal
from amaranth.lib import io, wiring, stream
from amaranth.lib.wiring import In, Out

from spikeforge.contract.sizes import ceil_div
from spikeforge.hdl.layouts import lane_beat
from spikeforge.hdl.packer import SpikePacker
from spikeforge.hdl.params import check_int
from spikeforge.hdl.uart import UARTReceiver, UARTTransmitter, uart_divisor

__all__ = ["SpikeLink", "BoardTop", "LANES", "BAUD"]

LANES = 8                 # one byte = one beat of 8 spikes
BAUD = 115_200


def _check_word_bits(word_bits):
    check_int("word_bits", word_bits, min=8)
    if word_bits % 8:
        raise ValueError(f"word_bits must be a multiple of 8, not {word_bits!r}")
    return word_bits


class _BytesToBeats(wiring.Component):
    """Frames bytes into lane beats: ``group`` counts the bytes of a token, ``first``/``last``
    mark its first and last byte."""

    def __init__(self, *, lane_groups):
        self._lane_groups = check_int("lane_groups", lane_groups, min=1)
        layout = lane_beat(lanes=LANES, shape=1, lane_groups=lane_groups)
        super().__init__({"i": In(stream.Signature(8)), "o": Out(stream.Signature(layout))})

    def elaborate(self, platform):
        m = Module()
        group = Signal(range(self._lane_groups))
        m.d.comb += [
            self.o.valid.eq(self.i.valid),
            self.i.ready.eq(self.o.ready),
            self.o.payload.data.eq(self.i.payload),
            self.o.payload.group.eq(group),
            self.o.payload.first.eq(group == 0),
            self.o.payload.last.eq(group == self._lane_groups - 1),
        ]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += group.eq(Mux(group == self._lane_groups - 1, 0, group + 1))
        return m


class _WordsToBytes(wiring.Component):
    """Sends each ``word_bits``-bit word as ``word_bits / 8`` bytes, least significant first."""

    def __init__(self, *, word_bits):
        self._word_bits = _check_word_bits(word_bits)
        super().__init__({"i": In(stream.Signature(word_bits)), "o": Out(stream.Signature(8))})

    def elaborate(self, platform):
        m = Module()
        count = self._word_bits // 8
        word = Signal(self._word_bits)
        left = Signal(range(count + 1))
        m.d.comb += [
            self.i.ready.eq(left == 0),
            self.o.valid.eq(left != 0),
            self.o.payload.eq(word[:8]),
        ]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [word.eq(self.i.payload), left.eq(count)]
        with m.Elif(self.o.valid & self.o.ready):
            m.d.sync += [word.eq(word >> 8), left.eq(left - 1)]
        return m


class SpikeLink(wiring.Component):
    """UART → lane beats → :class:`~spikeforge.hdl.packer.SpikePacker` → bytes → UART.

    Parameters
    ----------
    divisor : int
        Clock cycles per UART bit.
    channels : int
        Channels per token.
    word_bits : int
        Bits per packed spike word, a multiple of 8.

    Members
    -------
    rx : In(1), idle high
        Serial line from the host.
    tx : Out(1), idle high
        Serial line to the host.
    error : Out(1)
        Pulses on a UART framing error or overrun.
    """

    def __init__(self, *, divisor, channels=32, word_bits=16):
        self._divisor = check_int("divisor", divisor, min=4)
        self._channels = check_int("channels", channels, min=1)
        self._word_bits = _check_word_bits(word_bits)
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1), "error": Out(1)})

    channels = property(lambda self: self._channels)
    word_bits = property(lambda self: self._word_bits)

    def elaborate(self, platform):
        m = Module()
        m.submodules.rx = rx = UARTReceiver(divisor=self._divisor)
        m.submodules.frame = frame = _BytesToBeats(lane_groups=ceil_div(self._channels, LANES))
        m.submodules.packer = packer = SpikePacker(lanes=LANES, channels=self._channels,
                                                   word_bits=self._word_bits)
        m.submodules.split = split = _WordsToBytes(word_bits=self._word_bits)
        m.submodules.tx = tx = UARTTransmitter(divisor=self._divisor)
        wiring.connect(m, rx.o, frame.i)
        wiring.connect(m, frame.o, packer.i)
        m.d.comb += [
            split.i.valid.eq(packer.o.valid),
            split.i.payload.eq(packer.o.payload.data),
            packer.o.ready.eq(split.i.ready),
        ]
        wiring.connect(m, split.o, tx.i)
        m.d.comb += [
            rx.rx.eq(self.rx),
            self.tx.eq(tx.tx),
            self.error.eq(rx.error),
        ]
        return m


class BoardTop(Elaboratable):
    """:class:`SpikeLink` on a board's UART at :data:`BAUD`; LED 0 lights after a UART error,
    LED 1 shows the transmit line."""

    def __init__(self, *, channels=32, word_bits=16, baud=BAUD):
        self.channels, self.word_bits, self.baud = channels, word_bits, baud

    def elaborate(self, platform):
        m = Module()
        divisor = uart_divisor(clk_hz=platform.default_clk_frequency, baud=self.baud)
        m.submodules.link = link = SpikeLink(divisor=divisor, channels=self.channels,
                                             word_bits=self.word_bits)
        uart = platform.request("uart", 0, dir="-")
        m.submodules.rx_buffer = rx_buffer = io.Buffer("i", uart.rx)
        m.submodules.tx_buffer = tx_buffer = io.Buffer("o", uart.tx)
        m.d.comb += [link.rx.eq(rx_buffer.i), tx_buffer.o.eq(link.tx)]
        m.submodules.led_error = led_error = io.Buffer("o", platform.request("led", 0, dir="-"))
        m.submodules.led_tx = led_tx = io.Buffer("o", platform.request("led", 1, dir="-"))
        seen_error = Signal()
        with m.If(link.error):
            m.d.sync += seen_error.eq(1)
        m.d.comb += [led_error.o.eq(seen_error), led_tx.o.eq(~link.tx)]
        return m
