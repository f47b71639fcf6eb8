"""UART receiver/transmitter (``hdl/uart.py``) in the Amaranth simulator against a bit-level line
model; the cocotb loopback testbench on both simulators, and a deliberately broken loopback it
must catch. (The accelerator behind these UART pins, what a board runs, is unit ``board``.)"""

import random

import pytest
from amaranth.sim import Simulator

from spikeforge.hdl.uart import UARTReceiver, UARTTransmitter, UARTLoopback, uart_divisor
from spikeforge.verif.runner import simulate, SimulationFailed, SIMULATORS
from spikeforge.verif.broken import broken_variant, ignoring_back_pressure


def frame_bits(byte, stop=1):
    """Line levels of one frame: start, 8 data bits LSB first, stop."""
    return [0, *((byte >> i) & 1 for i in range(8)), stop]


async def send_frame(ctx, line, byte, bit_cycles, *, stop=1):
    for level in frame_bits(byte, stop):
        ctx.set(line, level)
        await ctx.tick().repeat(bit_cycles)
    ctx.set(line, 1)


def run(dut, *benches, deadline=10**6):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    for bench in benches:
        sim.add_testbench(bench)
    sim.run_until(deadline * 1e-8)


@pytest.mark.parametrize("divisor", [4, 7, 16])
def test_transmitter_waveform(divisor):
    """The line, cycle by cycle, equals the frames of the accepted bytes, each bit ``divisor``
    cycles long, frames back to back when bytes are offered back to back."""
    dut = UARTTransmitter(divisor=divisor)
    rng = random.Random(divisor)
    data = [rng.randrange(256) for _ in range(30)]
    accepted, trace = [], []
    finished = []

    async def source(ctx):
        for byte in data:
            while rng.random() < 0.2:
                await ctx.tick().repeat(rng.randrange(1, 3 * divisor))
            ctx.set(dut.i.payload, byte)
            ctx.set(dut.i.valid, 1)
            await ctx.tick().until(dut.i.ready)
            ctx.set(dut.i.valid, 0)
        await ctx.tick().repeat(12 * divisor)
        finished.append(True)

    async def monitor(ctx):
        cycle = 0
        async for _, _, valid, ready, payload, tx in ctx.tick().sample(
                dut.i.valid, dut.i.ready, dut.i.payload, dut.tx):
            trace.append(tx)
            if valid and ready:
                accepted.append((cycle, payload))
            cycle += 1

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(source)
    sim.add_process(monitor)
    sim.run_until(len(data) * 40 * divisor * 1e-8)
    assert finished and [b for _, b in accepted] == data
    want = [1] * len(trace)
    for cycle, byte in accepted:
        for j, level in enumerate(frame_bits(byte)):
            for k in range(divisor):
                want[cycle + 1 + j * divisor + k] = level
    assert trace == want
    # Back-to-back offers leave no idle cycle between frames.
    gaps = [b - a for (a, _), (b, _) in zip(accepted, accepted[1:])]
    assert min(gaps) == 10 * divisor


@pytest.mark.parametrize("bit_cycles", [31, 32, 33])
def test_receiver_tolerates_baud_error(bit_cycles):
    """Divisor 32 receives frames sent 3 % slow or fast, with random gaps and stalls."""
    dut = UARTReceiver(divisor=32)
    rng = random.Random(bit_cycles)
    data = [rng.randrange(256) for _ in range(20)]
    got = []

    async def host(ctx):
        for byte in data:
            await ctx.tick().repeat(rng.randrange(1, 40))
            await send_frame(ctx, dut.rx, byte, bit_cycles)

    async def sink(ctx):
        while len(got) < len(data):
            ctx.set(dut.o.ready, rng.random() < 0.5)
            await ctx.tick()

    async def monitor(ctx):
        async for _, _, valid, ready, payload, error in ctx.tick().sample(
                dut.o.valid, dut.o.ready, dut.o.payload, dut.error):
            assert not error
            if valid and ready:
                got.append(payload)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(host)
    sim.add_testbench(sink)
    sim.add_process(monitor)
    sim.run_until(len(data) * 400 * 1e-8)
    assert got == data


def test_receiver_errors():
    """A glitch is ignored; a low stop bit and an overrun drop the byte and pulse ``error``."""
    divisor = 8
    dut = UARTReceiver(divisor=divisor)
    got, errors = [], []

    async def host(ctx):
        ctx.set(dut.rx, 0)                       # glitch shorter than half a bit
        await ctx.tick().repeat(2)
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(3 * divisor)
        await send_frame(ctx, dut.rx, 0x5A, divisor, stop=0)     # framing error
        await ctx.tick().repeat(3 * divisor)
        await send_frame(ctx, dut.rx, 0xA5, divisor)             # kept, never read ...
        await send_frame(ctx, dut.rx, 0x3C, divisor)             # ... so this one overruns
        await ctx.tick().repeat(3 * divisor)
        ctx.set(dut.o.ready, 1)
        await ctx.tick().repeat(2)

    async def monitor(ctx):
        cycle = 0
        async for _, _, valid, ready, payload, error in ctx.tick().sample(
                dut.o.valid, dut.o.ready, dut.o.payload, dut.error):
            if valid and ready:
                got.append(payload)
            if error:
                errors.append(cycle)
            cycle += 1

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(host)
    sim.add_process(monitor)
    sim.run_until(100 * divisor * 1e-8)
    assert got == [0xA5]
    assert len(errors) == 2


def test_loopback_at_full_rate():
    """Transmitter → receiver at the same divisor, bytes offered back to back."""
    from amaranth.hdl import Module
    divisor = 5
    m = Module()
    m.submodules.tx = tx = UARTTransmitter(divisor=divisor)
    m.submodules.rx = rx = UARTReceiver(divisor=divisor)
    m.d.comb += rx.rx.eq(tx.tx)
    data = list(range(0, 256, 7))
    got = []

    async def source(ctx):
        for byte in data:
            ctx.set(tx.i.payload, byte)
            ctx.set(tx.i.valid, 1)
            await ctx.tick().until(tx.i.ready)
        ctx.set(tx.i.valid, 0)

    async def sink(ctx):
        ctx.set(rx.o.ready, 1)
        while len(got) < len(data):
            await ctx.tick()
            if ctx.get(rx.o.valid):
                got.append(ctx.get(rx.o.payload))

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(source)
    sim.add_testbench(sink)
    sim.run_until((len(data) + 3) * 10 * divisor * 1e-8)
    assert got == data


def test_parameters_are_checked():
    with pytest.raises(ValueError, match="divisor"):
        UARTReceiver(divisor=3)
    with pytest.raises(TypeError, match="divisor"):
        UARTTransmitter(divisor=8.0)
    assert uart_divisor(clk_hz=25e6, baud=115200) == 217
    with pytest.raises(ValueError, match="baud"):
        uart_divisor(clk_hz=1e6, baud=500_000)


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_cocotb_loopback(simulator):
    """The cocotb testbench (random idle and stalls, line decoded at bit centres) on both
    simulators."""
    result = simulate("uart", simulator=simulator, seed=11)
    assert result.mismatches == 0 and result.checked > 0


# Takes a byte while the transmitter is still sending one.
BrokenLoopback = ignoring_back_pressure(UARTLoopback, "i")


def test_broken_design_fails():
    """The cocotb testbench catches a loopback that loses bytes."""
    with broken_variant("uart", f"{__name__}:BrokenLoopback", bytes=30) as name, \
            pytest.raises(SimulationFailed, match="mismatches"):
        simulate(name, simulator="icarus", seed=7)
