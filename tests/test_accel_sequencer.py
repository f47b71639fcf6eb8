"""The accelerator's sequencer in Amaranth's simulator: a compiled program is checked and run
descriptor by descriptor, each op handed to its executor, which owns the memories (``active``)
from the cycle after its ``run`` to the first with its ``busy`` low and never outside that;
every program error is refused before anything runs; START ranges and the per-descriptor cycle
counters."""

import pytest
from amaranth.hdl import Elaboratable, Module, Signal
from amaranth.sim import Simulator

from spikeforge.compiler import compile_model
from spikeforge.contract.configs import get_config
from spikeforge.contract.program import (DESCRIPTOR_WORDS, Error, Op, pack, unpack)
from spikeforge.golden.modelfile import load_model
from spikeforge.hdl.accelerator.ports import READ_LATENCY
from spikeforge.hdl.accelerator.sequencer import EXECUTOR_OPS, Sequencer
from spikeforge.verif.accel_cases import shipped_model_path
from spikeforge.verif.accel_harness import ReadableMemory

CONFIG = get_config("sim-small")
# Cycles each fake executor stays busy: distinct, so the counters show who ran.
BUSY = {"conv": 7, "lif": 3, "elementwise": 5, "attention": 11}


class _Bench(Elaboratable):
    def __init__(self, words):
        self.seq = Sequencer(CONFIG)
        self.program = ReadableMemory(32, CONFIG.program_depth, words)
        self.log = []

    def elaborate(self, platform):
        m = Module()
        m.submodules.seq = seq = self.seq
        self.program.port = seq.program
        m.submodules.program = self.program
        for k, name in enumerate(EXECUTOR_OPS):
            left = Signal(8, name=f"{name}_left")
            with m.If(seq.run[k]):
                m.d.sync += left.eq(BUSY[name])
            with m.Elif(left != 0):
                m.d.sync += left.eq(left - 1)
            m.d.comb += seq.executor_busy[k].eq(left != 0)
        return m


def _simulate(words, *, first=1, stop=0, reads=()):
    bench = _Bench(words)
    seq = bench.seq
    out = {"runs": [], "cycles": {}}

    async def testbench(ctx):
        ctx.set(seq.first, first)
        ctx.set(seq.stop, stop)
        ctx.set(seq.start, 1)
        await ctx.tick()
        ctx.set(seq.start, 0)
        owner = None                  # the executor that must own the memories this cycle
        for _ in range(200_000):
            if ctx.get(seq.check_done):
                out["check"] = Error(ctx.get(seq.check_error))
            # the window of ports.py (the executors' side: verif/accel_harness.py): from the
            # cycle after `run` to the first with `busy` low, and never outside it
            want = 0 if owner is None else 1 << owner
            assert ctx.get(seq.active) == want, \
                f"layer {ctx.get(seq.layer)}: active {ctx.get(seq.active):04b}, not {want:04b}"
            if owner is not None and not ctx.get(seq.executor_busy[owner]):
                owner = None
            for k, name in enumerate(EXECUTOR_OPS):
                if ctx.get(seq.run[k]):
                    out["runs"].append((ctx.get(seq.layer), name, Op(ctx.get(seq.desc.op))))
                    owner = k
            await ctx.tick()
            if "check" in out and not ctx.get(seq.busy) and not ctx.get(seq.owns):
                break
        # every run ends idle, the memories handed back to the host port
        assert not ctx.get(seq.owns) and not ctx.get(seq.busy), "the sequencer kept the memories"
        out["done"] = ctx.get(seq.done)
        out["error"] = Error(ctx.get(seq.error))
        for layer in reads:
            ctx.set(seq.cycles_layer, layer)
            await ctx.tick().repeat(2)
            out["cycles"][layer] = ctx.get(seq.cycles_value)

    sim = Simulator(bench)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return out


@pytest.fixture(scope="module")
def program():
    return [int(w) for w in compile_model(load_model(shipped_model_path("spikformer")),
                                          CONFIG).program]


def _descriptors(words):
    return [unpack(words[i:i + DESCRIPTOR_WORDS]) for i in range(0, len(words), DESCRIPTOR_WORDS)]


def _executor_of(op):
    return next(name for name, ops in EXECUTOR_OPS.items() if op in ops)


def test_runs_every_descriptor_on_its_executor(program):
    descs = _descriptors(program)
    layers = range(1, len(descs) - 1)
    out = _simulate(program, reads=layers)
    assert out["check"] == Error.OK and out["done"] and out["error"] == Error.OK
    want = [(i, _executor_of(Op(descs[i]["op"])), Op(descs[i]["op"])) for i in layers]
    assert out["runs"] == want
    for i in layers:
        # fetch (16 reads + latency) + dispatch + executor + wait/next
        assert out["cycles"][i] == DESCRIPTOR_WORDS + READ_LATENCY + 2 + BUSY[_executor_of(
            Op(descs[i]["op"]))] + 1, i


def test_range(program):
    out = _simulate(program, first=3, stop=5)
    assert [layer for layer, _, _ in out["runs"]] == [3, 4]
    assert out["done"]


def _with(program, index, **fields):
    words = list(program)
    d = unpack(words[index * DESCRIPTOR_WORDS:(index + 1) * DESCRIPTOR_WORDS])
    d.update(fields)
    words[index * DESCRIPTOR_WORDS:(index + 1) * DESCRIPTOR_WORDS] = pack(d)
    return words


@pytest.mark.parametrize("fields, error", [
    ({"version": 2}, Error.BAD_VERSION),
    ({"op": 12}, Error.BAD_OPCODE),
    ({"out_channels": CONFIG.max_channels + 1}, Error.CAPACITY),
    ({"in_tokens": CONFIG.max_tokens + 1}, Error.CAPACITY),
    ({"steps": CONFIG.max_steps + 1}, Error.CAPACITY),
    ({"kernel": CONFIG.max_kernel + 1}, Error.CAPACITY),
    ({"dst_base": CONFIG.values_depth}, Error.CAPACITY),
    ({"weight_base": CONFIG.weights_depth}, Error.CAPACITY),
])
def test_refused_before_anything_runs(program, fields, error):
    out = _simulate(_with(program, 5, **fields))
    assert out["check"] == error and out["error"] == error
    assert out["runs"] == [] and not out["done"]


def test_no_end():
    words = pack({"op": Op.INPUT}) * (CONFIG.program_depth // DESCRIPTOR_WORDS)
    out = _simulate(words)
    assert out["check"] == Error.NO_END and out["runs"] == []
