"""Run one accelerator executor on one :class:`~.accel_cases.LayerCase` in Amaranth's Python
simulator: the memories it names in its signature are built with the case's contents (the
accelerator's input register, then the read timing of
:class:`spikeforge.hdl.memory.RegisteredReadMemory`: read latency 3 in all, as
:data:`~spikeforge.hdl.accelerator.ports.READ_LATENCY`), the descriptor is set,
``start`` pulsed, and the memories are read back once ``busy`` falls. Every cycle it also
checks the executor's side of the ownership contract: a read or write enable high outside the
cycles the accelerator lets the executor own its memories (from the cycle after ``start`` to the
first with ``busy`` low, :class:`~spikeforge.hdl.accelerator.sequencer.Sequencer`'s
``active``) would be gated off there, so it fails the run (:class:`OwnershipError`).

For the executors' own tests; the whole design is checked through its host port by
``verif/tb_accelerator.py`` on Icarus and Verilator.
"""

import numpy as np
from amaranth.hdl import ClockDomain, Elaboratable, Module, Signal
from amaranth.lib.memory import Memory as LibMemory
from amaranth.sim import Simulator

from spikeforge.contract.program import Memory, memory_map
from spikeforge.hdl.accelerator.ports import descriptor_layout, row_shape

__all__ = ["run_case", "memory_names", "initial_rows", "ReadableMemory", "OwnershipError"]

#: Cycles after the first with ``busy`` low in which the enables must stay low (longer than
#: any executor's write pipeline: a write that trails ``busy`` shows within them).
AFTER_BUSY = 32


class OwnershipError(AssertionError):
    """An executor drove a memory enable in a cycle it does not own the memories."""


def memory_names(executor):
    """The memories an executor's signature has a port for, in signature order."""
    names = {m.name.lower() for m in Memory}
    return [name for name, _ in executor.signature.members.items() if name in names]


def initial_rows(case, name):
    """Initial contents of memory ``name`` for ``case``: its state before the layer (spikes,
    values, scores), the parameter images (weights, biases, thresholds), zeros otherwise; a
    list of ints (program, spikes) or of per-lane lists."""
    spec = memory_map(case.config)[name]
    source = case.before.get(name, case.params.get(name))
    lanes = spec.lanes
    if source is None:
        return []
    rows = np.asarray(source, dtype=np.int64)
    if lanes == 1:
        return [int(v) for v in rows.reshape(-1)[:spec.depth]]
    return [[int(v) for v in row] for row in rows.reshape(-1, lanes)[:spec.depth]]


class ReadableMemory(Elaboratable):
    """A memory with the timing of the accelerator's (input register, read register, output
    register) whose rows the simulation can read back (``storage.data``); ``port`` (a
    :func:`~.ports.memory_port` interface of the design under test) is set before
    elaboration."""

    def __init__(self, shape, depth, init=()):
        self.storage = LibMemory(shape=shape, depth=depth, init=list(init))
        self.port = None

    def elaborate(self, platform):
        m = Module()
        m.submodules.storage = self.storage
        read = self.storage.read_port(domain="sync")
        write = self.storage.write_port()
        p = self.port
        out = Signal.like(read.data, reset_less=True)
        m.d.sync += out.eq(read.data)
        # the accelerator's input stage (ports.INPUT_STAGES): every port input registered
        m.d.sync += [read.addr.eq(p.r_addr), read.en.eq(p.r_en), write.addr.eq(p.w_addr),
                     write.data.eq(p.w_data), write.en.eq(p.w_en)]
        m.d.comb += p.r_data.eq(out)
        return m


class _Bench(Elaboratable):
    def __init__(self, executor, memories):
        self.executor = executor
        self.memories = memories
        self.sync = ClockDomain("sync")

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = self.sync
        m.submodules.executor = self.executor
        for name, memory in self.memories.items():
            memory.port = getattr(self.executor, name)
            m.submodules[name] = memory
        return m


def _unpack_row(value, lanes):
    if lanes == 1:
        return int(value)
    return [int(value[i]) for i in range(lanes)]


def run_case(executor, case, *, timeout=2_000_000, read=None, interrupt=()):
    """Run ``executor`` (a fresh executor component for ``case.config``) on ``case``.

    Returns ``(memories, cycles)``: ``memories[name]`` is the NumPy array of every memory
    in ``read`` (default: all the executor uses) after ``busy`` fell (``(depth,)`` for
    program/spikes, ``(depth, lanes)`` otherwise) and ``cycles`` counts from the cycle after
    ``start`` to the first cycle ``busy`` is low. Raises ``TimeoutError`` after ``timeout``
    cycles.

    ``interrupt``: for each ``k`` in it, in order, a run is first started and ``sync`` reset
    in the ``k``-th cycle after ``start`` (the accelerator's RESET), then every memory is put
    back as it was; the figures are those of the run after the last.

    Raises :class:`OwnershipError` if a ``r_en`` or ``w_en`` is high in a cycle the executor
    does not own the memories: before its ``start`` is seen, in the :data:`AFTER_BUSY` cycles
    after the first with ``busy`` low, or after a reset.
    """
    names = memory_names(executor)
    specs = memory_map(case.config)
    initial = {name: initial_rows(case, name) for name in names}
    memories = {name: ReadableMemory(row_shape(case.config, Memory[name.upper()]),
                                     specs[name].depth, initial[name])
                for name in names}
    bench = _Bench(executor, memories)
    read = names if read is None else list(read)
    enables = [(f"{name}.{field}", getattr(getattr(executor, name), field))
               for name in names for field in ("r_en", "w_en")]
    result = {}

    def idle(ctx, when):
        high = [label for label, signal in enables if ctx.get(signal)]
        if high:
            raise OwnershipError(f"{type(executor).__name__} drives {', '.join(high)} {when}, "
                                 f"while it does not own the memories")

    async def begin(ctx):
        ctx.set(executor.desc, descriptor_layout().const(dict(case.desc)))
        idle(ctx, "before start")
        await ctx.tick()
        ctx.set(executor.start, 1)
        idle(ctx, "in the cycle of start")
        await ctx.tick()
        ctx.set(executor.start, 0)

    async def testbench(ctx):
        for k in interrupt:
            await begin(ctx)
            await ctx.tick().repeat(k)
            ctx.set(bench.sync.rst, 1)
            await ctx.tick()
            ctx.set(bench.sync.rst, 0)
            for name in names:
                rows, data = initial[name], memories[name].storage.data
                zero = 0 if specs[name].lanes == 1 else [0] * specs[name].lanes
                for i in range(specs[name].depth):
                    ctx.set(data[i], rows[i] if i < len(rows) else zero)
        await begin(ctx)
        cycles = 0
        while ctx.get(executor.busy):
            await ctx.tick()
            cycles += 1
            if cycles > timeout:
                raise TimeoutError(f"executor still busy after {timeout} cycles")
        result["cycles"] = cycles
        for k in range(AFTER_BUSY):                     # the last write lands in the first
            await ctx.tick()
            idle(ctx, f"{k + 1} cycle(s) after busy fell")
        for name in read:
            spec = specs[name]
            data = memories[name].storage.data
            rows = [_unpack_row(ctx.get(data[i]), spec.lanes) for i in range(spec.depth)]
            result[name] = np.asarray(rows, dtype=np.int64)

    sim = Simulator(bench)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    cycles = result.pop("cycles")
    return result, cycles
