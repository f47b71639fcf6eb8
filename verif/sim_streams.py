"""Amaranth-simulator testbench helpers for ``lib.stream`` ports, with random idle and stalls.

For unit tests that run in ``amaranth.sim`` (the cocotb testbenches use :mod:`.stream`).
Both helpers follow the stream rules: ``valid`` and the payload hold until the transfer.
"""

__all__ = ["put_stream", "get_stream", "run_bounded"]


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


async def put_stream(ctx, port, payloads, *, rng, idle=0.0, on_accept=None):
    """Send ``payloads`` (layout consts or ints) into ``port``, idling before each with
    probability ``idle``; ``on_accept(payload)`` runs after each transfer."""
    for payload in payloads:
        while rng.random() < idle:
            await ctx.tick()
        ctx.set(port.valid, 1)
        ctx.set(port.payload, payload)
        await ctx.tick().until(port.ready)
        ctx.set(port.valid, 0)
        if on_accept is not None:
            on_accept(payload)


async def get_stream(ctx, port, count, *, rng, stall=0.0):
    """Receive ``count`` payloads from ``port``, dropping ``ready`` with probability ``stall``
    each cycle; returns the sampled payloads in order."""
    received = []
    while len(received) < count:
        if rng.random() < stall:
            ctx.set(port.ready, 0)
            await ctx.tick()
            continue
        ctx.set(port.ready, 1)
        _, _, valid, payload = await ctx.tick().sample(port.valid, port.payload)
        if valid:
            received.append(payload)
    ctx.set(port.ready, 0)
    return received
