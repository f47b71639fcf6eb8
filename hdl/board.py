"""The accelerator behind a UART: what a board runs between its serial pins, and what
``spikeforge run --backend uart --port sim`` simulates (the same pins, the same bytes).

::

    rx ─▶ UARTReceiver ─▶ FIFO ─▶ Accelerator.i    Accelerator.o ─▶ UARTTransmitter ─▶ tx

The FIFO (:data:`RX_FIFO_DEPTH` bytes) takes the receiver's bytes whenever the host port is
slow to accept one, so a byte is only lost when a host sends more than that while the port
holds its answer back (the protocol's one-request-at-a-time rule; see
:mod:`spikeforge.contract.host`). The link adds nothing to the protocol: the bytes on the pins
are the host port's frames, 8N1, ``divisor`` clock cycles per bit.
"""

from amaranth.hdl import Module
from amaranth.lib import fifo, wiring
from amaranth.lib.wiring import In, Out

from .accelerator.core import Accelerator
from .uart import UARTReceiver, UARTTransmitter

__all__ = ["AcceleratorLink", "RX_FIFO_DEPTH"]

#: Bytes the receive FIFO holds.
RX_FIFO_DEPTH = 32


class AcceleratorLink(wiring.Component):
    """The :class:`~.accelerator.core.Accelerator` of configuration ``config`` on a serial line
    of ``divisor`` clock cycles per bit (at least 4; else ``ValueError`` naming ``divisor``).

    Members
    -------
    rx : In(1), idle high
        Serial line from the host.
    tx : Out(1), idle high
        Serial line to the host.
    busy, done : Out(1)
        A program runs; the last run reached its end.
    error : Out(4)
        The last START's error code (0: none).
    line_error : Out(1)
        Set by a UART framing error or a byte lost to a full FIFO; cleared by reset.
    """

    def __init__(self, *, config="ulx3s-85f", divisor=16):
        self._receiver = UARTReceiver(divisor=divisor)      # checks divisor first
        self._accelerator = Accelerator(config)
        super().__init__({
            "rx": In(1, init=1), "tx": Out(1, init=1),
            "busy": Out(1), "done": Out(1), "error": Out(4), "line_error": Out(1),
        })

    config = property(lambda self: self._accelerator.config)
    divisor = property(lambda self: self._receiver.divisor)

    def elaborate(self, platform):
        m = Module()
        m.submodules.rx = rx = self._receiver
        m.submodules.rx_fifo = rx_fifo = fifo.SyncFIFOBuffered(width=8, depth=RX_FIFO_DEPTH)
        m.submodules.accelerator = acc = self._accelerator
        m.submodules.tx = tx = UARTTransmitter(divisor=self.divisor)

        m.d.comb += [rx.rx.eq(self.rx), self.tx.eq(tx.tx)]
        m.d.comb += [rx_fifo.w_data.eq(rx.o.payload), rx_fifo.w_en.eq(rx.o.valid),
                     rx.o.ready.eq(rx_fifo.w_rdy)]
        m.d.comb += [acc.i.payload.eq(rx_fifo.r_data), acc.i.valid.eq(rx_fifo.r_rdy),
                     rx_fifo.r_en.eq(acc.i.ready)]
        wiring.connect(m, acc.o, tx.i)
        m.d.comb += [self.busy.eq(acc.busy), self.done.eq(acc.done), self.error.eq(acc.error)]
        with m.If(rx.error):
            m.d.sync += self.line_error.eq(1)
        return m
