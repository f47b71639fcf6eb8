"""Formal harness of :class:`~spikeforge.hdl.uart.UARTLoopback` at the smallest divisor (4
cycles per bit, 40 per frame): transmitter, line and receiver together."""

from amaranth.hdl import Cat, Signal

from spikeforge.hdl.uart import UARTLoopback

from .harness import Harness, Mutation, valid_drops
from .properties import (ShadowQueue, counter, delta, forces_ready, implies, stream_sink,
                         stream_source, transfer)

__all__ = ["UARTHarness"]

# Bytes in flight at most: one in the transmitter, one being received, one on offer.
IN_FLIGHT = 3


def _msb_first(dut, m, internals):
    # the transmitter loads its byte reversed: data bits leave MSB first
    with m.If(transfer(dut.i)):
        m.d.sync += internals("shift", under=("tx",)).eq(Cat(dut.i.payload[::-1], 1))


def _low_stop_bit(dut, m, internals):
    # the transmitter sends a low stop bit: the receiver sees a framing error
    with m.If(transfer(dut.i)):
        m.d.sync += internals("shift", under=("tx",)).eq(Cat(dut.i.payload, 0))


class UARTHarness(Harness):
    """Input: bytes from an arbitrary producer; output: to a consumer that may stall, but for
    less than a frame (the receiver drops a byte that finds ``o`` still full, by design)."""

    unit = "uart"
    component = UARTLoopback
    params = {"divisor": 4}
    # the base case must reach the first delivered byte (step 42), the bounded check the
    # second byte received behind it
    prove_depth = 46
    bound_depth = 60
    cover_depth = 50
    # the bounded check takes minutes (16 min to depth 96): benchmark set only
    suite_groups = ("prove", "cover")
    mutations = {
        "valid_drops": valid_drops(comb=True),
        "msb_first": Mutation(catches="bytes_in_order",
                              text="the transmitter sends the data bits MSB first",
                              after=_msb_first, under=("tx",)),
        "ready_while_busy": Mutation(catches=("in_flight", "bytes_in_order"),
                                     text="i.ready stays high while a frame is being sent",
                                     after=forces_ready("i")),
        "low_stop_bit": Mutation(catches="no_overrun",
                                 text="the transmitter sends a low stop bit (a framing error)",
                                 after=_low_stop_bit, under=("tx",)),
    }
    suite_mutation = "msb_first"

    def check(self, m, checks, dut, internals):
        stream_source(m, checks, dut.i, name="i")
        stream_sink(m, checks, dut.o, name="o")
        frame = 10 * dut.divisor
        stall = Signal(range(frame + 1), name="o_stall")
        m.d.sync += stall.eq(0)
        with m.If(dut.o.valid & ~dut.o.ready):
            m.d.sync += stall.eq(stall + 1)
        checks.assume(stall < frame - 2 * dut.divisor)

        sent = counter(m, transfer(dut.i), bits=4, name="sent")
        received = counter(m, transfer(dut.o), bits=4, name="received")
        checks.bound("in_flight", delta(sent, received) <= IN_FLIGHT,
                     f"bytes taken - bytes delivered <= {IN_FLIGHT}")
        checks.bound("no_overrun", ~dut.error,
                     "with a consumer that waits less than a frame, no byte is dropped and no "
                     "framing error is seen")
        shadow = ShadowQueue(m, push=transfer(dut.i), pop=transfer(dut.o),
                             data=dut.i.payload, capacity=IN_FLIGHT + 1, name="sent_bytes")
        checks.bound("bytes_in_order",
                     implies(dut.o.valid, (shadow.count != 0)
                             & (dut.o.payload == shadow.entries[0])),
                     "the byte on offer is the oldest byte sent and not yet delivered")
        checks.cover("byte_done", transfer(dut.o) & (dut.o.payload == 0xA5),
                     "a byte (0xA5) goes through the line and is delivered")
