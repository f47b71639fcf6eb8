"""UART receiver and transmitter (8 data bits, no parity, 1 stop bit) on byte streams.

The board builds bridge a host's serial port to the units with these: bytes in become lane beats,
results go back as bytes. Bit timing counts ``divisor`` clock cycles per bit
(:func:`uart_divisor` rounds ``clk_hz / baud``).
"""

from amaranth.hdl import Module, Signal, Cat
from amaranth.lib import wiring, stream
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

from .params import check_int

__all__ = ["UARTReceiver", "UARTTransmitter", "UARTLoopback", "uart_divisor"]

DATA_BITS = 8
# The receiver waits half a bit before sampling the start bit: at least two cycles.
MIN_DIVISOR = 4


def uart_divisor(*, clk_hz, baud):
    """Clock cycles per bit, rounded; raises if the clock is too slow for the baud rate."""
    divisor = round(clk_hz / baud)
    if divisor < MIN_DIVISOR:
        raise ValueError(f"baud must be at most clk_hz / {MIN_DIVISOR}, not {baud!r}")
    return divisor


class _BitTimed(wiring.Component):
    """A UART part timed in bit periods of ``divisor`` clock cycles (at least 4)."""

    def __init__(self, members, *, divisor):
        self._divisor = check_int("divisor", divisor, min=MIN_DIVISOR)
        super().__init__(members)

    divisor = property(lambda self: self._divisor)


class UARTReceiver(_BitTimed):
    """Serial line → byte stream.

    The line is synchronized by two flip-flops. A falling edge starts a frame; the start bit is
    checked half a bit later (a shorter low pulse is ignored as a glitch); the data bits (LSB
    first) and the stop bit are sampled at their middles. A frame whose stop bit is low is
    dropped, as is a byte that arrives while the previous one still waits on ``o``; either
    raises ``error`` for one cycle.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit, at least 4.

    Members
    -------
    rx : In(1), idle high
        Serial line.
    o : Out(stream.Signature(8))
        Received bytes; the payload holds until accepted.
    error : Out(1)
        One-cycle pulse on a framing error or an overrun.
    """

    def __init__(self, *, divisor):
        super().__init__({
            "rx": In(1, init=1),
            "o": Out(stream.Signature(DATA_BITS)),
            "error": Out(1),
        }, divisor=divisor)

    def elaborate(self, platform):
        m = Module()
        line = Signal(init=1)
        m.submodules.sync_rx = FFSynchronizer(self.rx, line, init=1)

        timer = Signal(range(self._divisor))
        bit = Signal(range(DATA_BITS))
        shift = Signal(DATA_BITS)
        tick = timer == 0

        with m.If(~tick):
            m.d.sync += timer.eq(timer - 1)
        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        m.d.sync += self.error.eq(0)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(~line):
                    m.d.sync += timer.eq(self._divisor // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                with m.If(tick):
                    with m.If(line):
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += [timer.eq(self._divisor - 1), bit.eq(0)]
                        m.next = "DATA"
            with m.State("DATA"):
                with m.If(tick):
                    m.d.sync += [timer.eq(self._divisor - 1), shift.eq(Cat(shift[1:], line)),
                                 bit.eq(bit + 1)]
                    with m.If(bit == DATA_BITS - 1):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(tick):
                    free = ~self.o.valid | self.o.ready
                    with m.If(line & free):
                        m.d.sync += [self.o.payload.eq(shift), self.o.valid.eq(1)]
                    with m.Else():
                        m.d.sync += self.error.eq(1)
                    m.next = "IDLE"
        return m


class UARTTransmitter(_BitTimed):
    """Byte stream → serial line: start bit, 8 data bits LSB first, stop bit, each ``divisor``
    cycles long. The next byte is taken in the last cycle of the stop bit (or at once when
    idle), so bytes offered back to back leave with no gap between frames.

    ``divisor``: clock cycles per bit, as for :class:`UARTReceiver`.

    Members
    -------
    i : In(stream.Signature(8))
        Bytes to send.
    tx : Out(1), idle high
        Serial line (registered).
    """

    def __init__(self, *, divisor):
        super().__init__({
            "i": In(stream.Signature(DATA_BITS)),
            "tx": Out(1, init=1),
        }, divisor=divisor)

    def elaborate(self, platform):
        m = Module()
        timer = Signal(range(self._divisor))
        # Bit periods left in the frame, the one on the line included.
        left = Signal(range(DATA_BITS + 3))
        # Bits still to put on the line: data then stop; ones shift in behind them.
        shift = Signal(DATA_BITS + 1)

        # Take the next byte in the stop bit's last cycle, so back-to-back frames keep the line
        # at its full rate (10 bits per byte, no idle gap).
        m.d.comb += self.i.ready.eq((left == 0) | ((left == 1) & (timer == 0)))
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [
                self.tx.eq(0),
                shift.eq(Cat(self.i.payload, 1)),
                left.eq(DATA_BITS + 2),
                timer.eq(self._divisor - 1),
            ]
        with m.Elif(left != 0):
            with m.If(timer == 0):
                m.d.sync += [
                    self.tx.eq(shift[0]),
                    shift.eq(Cat(shift[1:], 1)),
                    left.eq(left - 1),
                    timer.eq(self._divisor - 1),
                ]
            with m.Else():
                m.d.sync += timer.eq(timer - 1)
        return m


class UARTLoopback(_BitTimed):
    """Transmitter → serial line → receiver: a byte stream carried over one UART line.

    The path bytes take between a host and a board wrapper, as one unit that the stream
    testbenches can drive: what leaves ``o`` equals what ``i`` accepted, as long as ``o`` is
    drained within a frame time (else the receiver's overrun drops a byte and pulses ``error``).

    ``divisor``: clock cycles per bit, as for :class:`UARTReceiver`.

    Members
    -------
    i : In(stream.Signature(8))
        Bytes to send.
    o : Out(stream.Signature(8))
        Bytes received.
    line : Out(1)
        The serial line between them (idle high).
    error : Out(1)
        The receiver's framing-error/overrun pulse.
    """

    def __init__(self, *, divisor):
        super().__init__({
            "i": In(stream.Signature(DATA_BITS)),
            "o": Out(stream.Signature(DATA_BITS)),
            "line": Out(1, init=1),
            "error": Out(1),
        }, divisor=divisor)

    def elaborate(self, platform):
        m = Module()
        m.submodules.tx = tx = UARTTransmitter(divisor=self._divisor)
        m.submodules.rx = rx = UARTReceiver(divisor=self._divisor)
        wiring.connect(m, wiring.flipped(self.i), tx.i)
        wiring.connect(m, rx.o, wiring.flipped(self.o))
        m.d.comb += [rx.rx.eq(tx.tx), self.line.eq(tx.tx), self.error.eq(rx.error)]
        return m
