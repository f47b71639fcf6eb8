"""Amaranth-simulator testbench helpers for ``lib.stream`` ports, with random idle and stalls.

For unit tests that run in ``amaranth.sim`` (the cocotb testbenches use :mod:`.stream`).
Both helpers follow the stream rules: ``valid`` and the payload hold until the transfer.
"""

import random

__all__ = ["put_stream", "get_stream", "run_bounded", "run_testbenches", "stream_through",
           "StreamRun", "fork_rng"]


def fork_rng(rng, count):
    """``count`` independent generators seeded from ``rng``, one per concurrent testbench.

    The order in which the simulator resumes testbenches within one cycle is not fixed across
    processes, so testbenches that share one generator draw in a varying order and the same seed
    gives different stimuli from run to run. Forking before the simulation starts makes every
    testbench's draws depend only on the seed."""
    return [random.Random(rng.getrandbits(64)) for _ in range(count)]


class SimulationTimeout(AssertionError):
    """The testbenches did not finish within the cycle budget (a hang is a failure)."""


def run_bounded(sim, *, max_cycles, domain="sync"):
    """Run ``sim`` until its testbenches finish; fail after ``max_cycles`` clock cycles so that a
    broken design (a stream that never becomes ready or valid) fails instead of hanging.

    Returns the number of cycles run."""
    count = [0]

    async def counter(ctx):
        while True:
            await ctx.tick(domain)
            count[0] += 1

    sim.add_testbench(counter, background=True)
    while sim.advance():
        if count[0] > max_cycles:
            raise SimulationTimeout(f"simulation did not finish within {max_cycles} cycles")
    return count[0]


def run_testbenches(dut, *testbenches, max_cycles):
    """Simulate ``dut`` (clock period 10 ns) until every testbench has finished, within
    ``max_cycles`` (:func:`run_bounded`); returns the number of cycles run."""
    from amaranth.sim import Simulator

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    for bench in testbenches:
        sim.add_testbench(bench)
    return run_bounded(sim, max_cycles=max_cycles)


async def put_stream(ctx, port, payloads, *, rng, idle=0.0, on_accept=None, stamps=None):
    """Send ``payloads`` (layout consts or ints) into ``port``, idling before each with
    probability ``idle``; ``on_accept(payload)`` runs after each transfer. With a list
    ``stamps``, the cycle of each transfer (clock ticks since the call began) is appended."""
    cycle = 0
    for payload in payloads:
        while rng.random() < idle:
            await ctx.tick()
            cycle += 1
        ctx.set(port.valid, 1)
        ctx.set(port.payload, payload)
        ready = False
        while not ready:
            _, _, ready = await ctx.tick().sample(port.ready)
            cycle += 1
        ctx.set(port.valid, 0)
        if stamps is not None:
            stamps.append(cycle)
        if on_accept is not None:
            on_accept(payload)


async def get_stream(ctx, port, count, *, rng, stall=0.0, stamps=None):
    """Receive ``count`` payloads from ``port``, dropping ``ready`` with probability ``stall``
    each cycle; returns the sampled payloads in order. With a list ``stamps``, the cycle of each
    transfer (clock ticks since the call began) is appended."""
    received = []
    cycle = 0
    while len(received) < count:
        cycle += 1
        if rng.random() < stall:
            ctx.set(port.ready, 0)
            await ctx.tick()
            continue
        ctx.set(port.ready, 1)
        _, _, valid, payload = await ctx.tick().sample(port.valid, port.payload)
        if valid:
            received.append(payload)
            if stamps is not None:
                stamps.append(cycle)
    ctx.set(port.ready, 0)
    return received


class StreamRun:
    """What :func:`stream_through` saw.

    Attributes
    ----------
    payloads : list
        The payloads taken from the drained port, in order.
    accepted : list of list of int
        Per feed, the cycle of each transfer into the DUT.
    delivered : list of int
        The cycle of each transfer out of the DUT.
    cycles : int
        Cycles simulated.
    """

    def __init__(self, feeds):
        self.payloads = []
        self.accepted = [[] for _ in feeds]
        self.delivered = []
        self.cycles = 0


def stream_through(dut, *, feeds, drain, count, rng, idle=0.0, stall=0.0, max_cycles,
                   setup=None):
    """Simulate ``dut`` (clock period 10 ns) with every ``(port, payloads)`` of ``feeds`` sent
    by its own testbench (:func:`put_stream`, random ``idle``) while ``count`` payloads are taken
    from the ``drain`` port (:func:`get_stream`, random ``stall``); fail after ``max_cycles``
    (:func:`run_bounded`). ``setup`` (an ``async`` function of ``ctx``), if given, runs in the
    first feed's testbench before its payloads; the cycle stamps then count from its end for
    that feed. Returns a :class:`StreamRun`; all stamps count clock ticks from the start."""
    from amaranth.sim import Simulator

    run = StreamRun(feeds)
    *feed_rngs, drain_rng = fork_rng(rng, len(feeds) + 1)

    def feeder(index, port, payloads):
        async def bench(ctx):
            if setup is not None and index == 0:
                await setup(ctx)
            await put_stream(ctx, port, payloads, rng=feed_rngs[index], idle=idle,
                             stamps=run.accepted[index])
        return bench

    async def drainer(ctx):
        run.payloads.extend(await get_stream(ctx, drain, count, rng=drain_rng, stall=stall,
                                             stamps=run.delivered))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    for index, (port, payloads) in enumerate(feeds):
        sim.add_testbench(feeder(index, port, payloads), background=True)
    sim.add_testbench(drainer)
    run.cycles = run_bounded(sim, max_cycles=max_cycles)
    return run
