"""cocotb testbench: UARTLoopback. Bytes out equal the bytes the transmitter accepted, and the
line carries each as a standard 8N1 frame (decoded here at the bit centres); ``error`` never
pulses while the sink drains within a frame time."""

import cocotb
from cocotb.triggers import RisingEdge, ReadOnly, ClockCycles

from spikeforge.verif.stream import StreamSource, StreamSink
from spikeforge.verif.tb import Testbench, Scoreboard, params, stimulus


@cocotb.test()
async def uart_loopback_matches(dut):
    p, s = params(), stimulus()
    divisor = p["divisor"]
    tb = Testbench(dut)
    await tb.reset()
    data = Scoreboard(dut._log, "byte")
    frames = Scoreboard(dut._log, "frame")
    errors = Scoreboard(dut._log, "error")
    source = StreamSource(dut, "i", tb.clk, rng=tb.rng, idle=s["in_idle"])
    StreamSink(dut, "o", tb.clk, rng=tb.rng, stall=s["out_stall"], on_beat=data.check)

    def on_accept(byte):
        data.expect(byte)
        frames.expect(byte)

    source.on_accept = on_accept
    cocotb.start_soon(_decode_line(dut, tb.clk, divisor, frames))
    error_pulses = []
    cocotb.start_soon(_watch_errors(dut, tb.clk, error_pulses))
    for _ in range(s["bytes"]):
        source.send(tb.rng.randrange(256))
    await source.wait_drained()
    await tb.until(lambda: data.pending == 0 and frames.pending == 0,
                   timeout_cycles=20 * divisor + 50)
    errors.expect(0)
    errors.check(len(error_pulses))
    tb.report(data, frames, errors)


async def _decode_line(dut, clk, divisor, board):
    """The host's receiver: frames found on ``line`` by their start bit, sampled mid-bit."""
    while True:
        await RisingEdge(clk)
        await ReadOnly()
        if int(dut.line.value):
            continue
        await ClockCycles(clk, divisor // 2)
        await ReadOnly()
        bits = [int(dut.line.value)]                    # start bit
        for _ in range(9):
            await ClockCycles(clk, divisor)
            await ReadOnly()
            bits.append(int(dut.line.value))
        if bits[0] != 0 or bits[9] != 1:
            dut._log.error("bad frame on the line: %s", bits)
            board.check(None)
            continue
        board.check(sum(bit << i for i, bit in enumerate(bits[1:9])))


async def _watch_errors(dut, clk, pulses):
    while True:
        await RisingEdge(clk)
        await ReadOnly()
        if int(dut.error.value):
            pulses.append(1)
