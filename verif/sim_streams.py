"""Amaranth-simulator testbench helpers for ``lib.stream`` ports, with random idle and stalls.

For unit tests that run in ``amaranth.sim`` (the cocotb testbenches use :mod:`.stream`).
Both helpers follow the stream rules: ``valid`` and the payload hold until the transfer.
"""

__all__ = ["put_stream", "get_stream"]


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
