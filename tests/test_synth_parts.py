"""``spikeforge synth parts``: every part of the accelerator (host port, sequencer, executors)
synthesized alone through the unit flow; the tools are replaced here (the real runs are a
benchmark: minutes each)."""

import json

import pytest
from click.testing import CliRunner

from spikeforge.cli import cli
from spikeforge.hdl.accelerator.core import PARTS, build_part
from spikeforge.hdl.accelerator.host import HostPort
from spikeforge.hdl.accelerator.lif import LifExecutor
from spikeforge.synth import flow
from spikeforge.synth.flow import SynthResult


def synth(*args):
    return CliRunner().invoke(cli, ["synth", "parts", *args], standalone_mode=False)


@pytest.fixture
def runs(monkeypatch):
    """The flow replaced: every call recorded, each part with its own figures."""
    calls = []

    def fake(name, build, *, params, device, freq, seed, cache, **kwargs):
        component = build()
        calls.append((name, type(component).__name__, params, device, freq, seed, cache))
        k = len(calls)
        return SynthResult(
            unit=name, params=params, device=device, part="LFE5U-85F", speed_grade="6",
            lut=100 * k, ff=50 * k, bram=k % 2, dsp=0, fmax_mhz=150.0 + k,
            freq_target_mhz=150.0, seed=seed, critical_path=None, seconds=1.0, rtl_ff_bits=1,
            cells={}, placed={}, wrapper={}, tools={})

    monkeypatch.setattr(flow, "synthesize_component", fake)
    return calls


def test_every_part_alone(runs):
    result = synth("--config", "sim-small", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["config"] == "sim-small" and out["device"] == "ecp5-85k"
    assert [row["part"] for row in out["parts"]] == list(PARTS)
    assert [row["lut"] for row in out["parts"]] == [100 * (k + 1) for k in range(len(PARTS))]
    assert [name for name, *_ in runs] == [f"accelerator-{p}" for p in PARTS]
    assert [kind for _, kind, *_ in runs][:3] == ["HostPort", "Sequencer", "ConvExecutor"]
    assert all(params == {"config": "sim-small", "part": p}
               for (_, _, params, *_), p in zip(runs, PARTS))


def test_chosen_parts_and_options(runs):
    result = synth("-p", "lif", "-p", "host", "--freq", "120", "--seed", "3", "--no-cache")
    assert result.exit_code == 0, result.output
    assert [(name, freq, seed, cache) for name, _, _, _, freq, seed, cache in runs] == [
        ("accelerator-lif", 120.0, 3, False), ("accelerator-host", 120.0, 3, False)]
    lines = result.output.splitlines()
    assert lines[0].split()[:3] == ["part", "LUT", "FF"]
    assert lines[1].split()[:3] == ["lif", "100", "50"]


def test_unknown_part_is_one_line(runs):
    result = synth("--part", "nothing")
    assert "unknown part 'nothing'" in str(result.exception) and not runs


def test_build_part():
    assert isinstance(build_part("ulx3s-85f", "host"), HostPort)
    assert isinstance(build_part("sim-small", "lif"), LifExecutor)
    with pytest.raises(ValueError, match="part"):
        build_part("sim-small", "memories")
    with pytest.raises(ValueError, match="config"):
        build_part("nothing", "lif")
