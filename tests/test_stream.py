"""hdl/stream.py: StreamBuffer, SkidBuffer (both forms) and Queue in the Amaranth simulator.

Random idle cycles on the input and random back-pressure on the output: every beat comes out
once, in order; the output keeps the stream rules (a beat on offer holds until it is taken);
with no stalls, one beat per cycle after the stated latency; and the skid buffer's ``i.ready``
does not follow ``o.ready`` within a cycle. A broken skid buffer (one that lets ``o.ready`` into
``i.ready``, taking a beat while its spare is full) must fail the ordering test.
"""

import random

import pytest
from amaranth.hdl import Module
from amaranth.lib import data
from amaranth.sim import Simulator

from spikeforge.hdl.stream import StreamBuffer, SkidBuffer, Queue
from spikeforge.verif.sim_streams import (fork_rng, get_stream, put_stream, run_bounded,
                                          SimulationTimeout)

LAYOUT = data.StructLayout({"value": 12, "last": 1})

DESIGNS = {
    "buffer": (lambda: StreamBuffer(LAYOUT), 1),
    "skid": (lambda: SkidBuffer(LAYOUT), 0),
    "skid-registered": (lambda: SkidBuffer(LAYOUT, registered=True), 1),
    "queue": (lambda: Queue(shape=LAYOUT, depth=4), 2),
    "queue-1": (lambda: Queue(shape=LAYOUT, depth=1), None),     # half rate: no throughput
}


def run(dut, count, *, seed, idle, stall):
    """Send ``count`` beats through ``dut``; return (sent, received, transfer cycles in,
    transfer cycles out, stream-rule violations seen on ``o``)."""
    rng = random.Random(seed)
    sent = [{"value": rng.getrandbits(12), "last": rng.random() < 0.3} for _ in range(count)]
    in_rng, out_rng = fork_rng(rng, 2)
    stamps_in, stamps_out, received, violations = [], [], [], []

    async def producer(ctx):
        await put_stream(ctx, dut.i, [LAYOUT.const(b) for b in sent], rng=in_rng, idle=idle,
                         stamps=stamps_in)

    async def consumer(ctx):
        for beat in await get_stream(ctx, dut.o, count, rng=out_rng, stall=stall,
                                     stamps=stamps_out):
            received.append({"value": int(beat.value), "last": bool(beat.last)})

    async def rules(ctx):
        held = None                     # the beat on offer that was not taken
        async for _, _, valid, ready, payload in ctx.tick().sample(
                dut.o.valid, dut.o.ready, dut.o.payload.as_value()):
            if held is not None and (not valid or payload != held):
                violations.append((valid, payload, held))
            held = payload if valid and not ready else None

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.add_process(rules)
    run_bounded(sim, max_cycles=40 * count + 100)
    return sent, received, stamps_in, stamps_out, violations


@pytest.mark.parametrize("name", sorted(DESIGNS))
@pytest.mark.parametrize("idle, stall", [(0.3, 0.3), (0.0, 0.7), (0.7, 0.0), (0.5, 0.5)])
def test_order_no_loss_no_duplicate(name, idle, stall):
    make, _ = DESIGNS[name]
    sent, received, _, _, violations = run(make(), 300, seed=hash((name, idle)) & 0xFFFF,
                                           idle=idle, stall=stall)
    assert received == sent
    assert not violations


@pytest.mark.parametrize("name", sorted(n for n, (_, latency) in DESIGNS.items() if latency
                                         is not None))
def test_full_throughput(name):
    """No stalls: the k-th beat leaves ``latency`` cycles after it entered, one per cycle."""
    make, latency = DESIGNS[name]
    sent, received, stamps_in, stamps_out, _ = run(make(), 50, seed=1, idle=0.0, stall=0.0)
    assert received == sent
    assert stamps_in == list(range(1, 51))
    assert [b - a for a, b in zip(stamps_in, stamps_out)] == [latency] * 50


@pytest.mark.parametrize("registered", [False, True])
def test_skid_ready_is_registered(registered):
    """``i.ready`` is the same whatever ``o.ready`` is in the current cycle."""
    dut = SkidBuffer(LAYOUT, registered=registered)
    seen = []

    async def bench(ctx):
        ctx.set(dut.i.valid, 1)
        for cycle in range(12):
            ctx.set(dut.o.ready, 0)
            before = ctx.get(dut.i.ready)
            ctx.set(dut.o.ready, 1)
            seen.append(before == ctx.get(dut.i.ready))
            ctx.set(dut.o.ready, cycle % 3 == 0)
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert all(seen)


class BrokenSkidBuffer(SkidBuffer):
    """Takes a beat while its spare is still full whenever ``o`` is ready: that beat is lost."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        m.d.comb += self.i.ready.eq(1)
        return m


def test_broken_skid_buffer_fails():
    """Beats are lost: the consumer waits for ever (a timeout) or sees the wrong ones."""
    try:
        sent, received, *_ = run(BrokenSkidBuffer(LAYOUT), 300, seed=3, idle=0.2, stall=0.5)
    except SimulationTimeout:
        return
    assert received != sent


def test_bad_parameters():
    with pytest.raises(ValueError, match="depth"):
        Queue(shape=8, depth=0)
    with pytest.raises(TypeError, match="registered"):
        SkidBuffer(8, registered=1)


def test_queue_level():
    """``level`` counts the beats held (the registered output included)."""
    dut = Queue(shape=8, depth=3)
    levels = []

    async def bench(ctx):
        for value in range(4):
            ctx.set(dut.i.valid, 1)
            ctx.set(dut.i.payload, value)
            await ctx.tick()
            levels.append(ctx.get(dut.level))
        ctx.set(dut.i.valid, 0)
        levels.append(ctx.get(dut.i.ready))

    m = Module()
    m.submodules.dut = dut
    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert levels == [1, 2, 3, 3, 0]
