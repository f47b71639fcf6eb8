"""The whole accelerator (``hdl/accelerator/core.py``) in its cocotb system testbench
(``verif/tb_accelerator.py``), driven only through the host port: every layer of one test image
of each shipped model on ``sim-small`` (Verilator; the small model on Icarus too) and of the default model on
``ulx3s-85f`` (Verilator), each layer's output against the accelerator's golden model; a bad-CRC
WRITE that changes nothing; ``spikeforge run --backend rtl``; and a deliberately broken design
the testbench must catch.

These are the suite's slowest simulations (the full design runs at about 10⁵ cycles per second
on Verilator with only its ports public, ``verif/runner.py``, and about 10³ on Icarus; one
default-model image is about 8 · 10⁵ cycles layer by layer): marked ``slow``, and one xdist
group per build (simulator and configuration), so parallel workers never build the same folder
at once and each build is made once.
"""

import functools
import json

import pytest

from spikeforge.cli import main
from spikeforge.compiler import compile_model
from spikeforge.golden.data import load_digits
from spikeforge.golden.modelfile import load_model
from spikeforge.hdl.accelerator.core import Accelerator
from spikeforge.verif.accel_cases import shipped_model_path
from spikeforge.verif.bench_accelerator import simulate_model
from spikeforge.verif.broken import broken_variant
from spikeforge.verif.runner import SIMULATORS

MODELS = ("default", "sdt-v1", "spikformer")
#: Host link idle / stall probabilities of these runs (each stall costs simulated cycles).
STALLS = {"in_idle": 0.1, "out_stall": 0.1}


def build(simulator, config):
    """Marks of a test that simulates ``config`` on ``simulator``."""
    return [pytest.mark.slow, pytest.mark.xdist_group(f"accelerator-{simulator}-{config}")]


@functools.cache
def compiled(model, config):
    return compile_model(load_model(shipped_model_path(model)), config)


def images(count=1):
    return load_digits()[1].images[:count].numpy()


def layer_table(case, sample, key="layer_cycles"):
    """Per layer: name, op, RTL cycles, bound, cost model (printed with -s)."""
    lines = [f"{'layer':24} {'op':10} {'rtl':>7} {'bound':>7} {'model':>7}"]
    for layer, rtl, bound, model in zip(case.layers, sample[key], sample["bound"],
                                        sample["model_cycles"]):
        lines.append(f"{layer['name']:24} {layer['op']:10} {rtl:7d} {bound:7d} {model:7d}")
    return "\n".join(lines)


def check_sample(case, sample):
    """No layer output differs; every layer's RTL cycles are at least its bound."""
    assert sample["layer_mismatches"] == []
    assert len(sample["layer_cycles"]) == len(case.layers)
    for layer, rtl, bound in zip(case.layers, sample["layer_cycles"], sample["bound"]):
        assert rtl >= bound, f"{layer['name']}: {rtl} RTL cycles below the bound {bound}"


# Icarus runs the small model only (the default one takes ~25 min there; `spikeforge run
# --backend rtl --simulator icarus` runs any model).
ICARUS_MODELS = ("spikformer",)


@pytest.mark.parametrize("model,simulator", [
    pytest.param(model, simulator, marks=build(simulator, "sim-small"))
    for simulator in SIMULATORS for model in MODELS
    if simulator != "icarus" or model in ICARUS_MODELS])
def test_layer_by_layer_sim_small(model, simulator):
    """Every layer of one image, run alone (START i, i + 1) and read back, equals the golden
    model's memory after it; the scores too."""
    case = compiled(model, "sim-small")
    detail, _ = simulate_model(case, images(), simulator=simulator, mode="layers", seed=3,
                               **STALLS)
    assert "error" not in detail and "failure" not in detail, detail.get("error")
    assert detail["mismatches"] == 0 and detail["checked"] > 0
    (sample,) = detail["samples"]
    print(f"\n{model} sim-small {simulator}: {detail['seconds']} s, {detail['cycles']} cycles\n"
          + layer_table(case, sample))
    check_sample(case, sample)
    assert sample["layers_scores"] == sample["golden_scores"]


@pytest.mark.parametrize("simulator", [
    pytest.param("verilator", marks=build("verilator", "ulx3s-85f"))])
def test_default_model_ulx3s(simulator):
    """The default model on the board's configuration: layer by layer, then the whole program
    in one START (the speed mode), with the same scores and the same cycles per layer."""
    case = compiled("default", "ulx3s-85f")
    detail, _ = simulate_model(case, images(), simulator=simulator, mode="both", seed=5,
                               **STALLS)
    assert "error" not in detail and "failure" not in detail, detail.get("error")
    assert detail["mismatches"] == 0
    (sample,) = detail["samples"]
    print(f"\ndefault ulx3s-85f {simulator}: {detail['seconds']} s, inference "
          f"{sample['inference_cycles']} cycles (bound {sum(sample['bound'])})\n"
          + layer_table(case, sample, "whole_layer_cycles"))
    check_sample(case, sample)
    assert sample["scores"] == sample["golden_scores"]
    assert sample["whole_layer_cycles"] == sample["layer_cycles"]
    assert sample["inference_cycles"] >= sum(sample["whole_layer_cycles"])


@pytest.mark.parametrize("simulator", [
    pytest.param("verilator", marks=build("verilator", "sim-small"))])
def test_bad_crc_write_changes_nothing(simulator):
    """Random rows written to every memory read back equal; a WRITE of other rows over them
    with a bad CRC is answered BAD_CHECKSUM and every row still reads back as before."""
    detail, _ = simulate_model(compiled("spikformer", "sim-small"), None, simulator=simulator,
                               mode="link", seed=9, **STALLS)
    assert "error" not in detail and "failure" not in detail, detail.get("error")
    assert detail["mismatches"] == 0 and detail["checked"] > 8


@pytest.mark.parametrize("simulator", [
    pytest.param("verilator", marks=build("verilator", "sim-small"))])
def test_run_rtl_backend(simulator, capsys):
    """``spikeforge run --backend rtl --json``: the figures of one image."""
    with pytest.raises(SystemExit) as exit_status:
        main(["run", "--backend", "rtl", "--simulator", simulator, "--config", "sim-small",
              "--model", str(shipped_model_path("spikformer")), "--samples", "1", "--json"])
    assert exit_status.value.code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["backend"] == "rtl" and out["simulator"] == simulator
    assert out["samples"] == 1 and out["mismatches"] == 0 and out["score_mismatches"] == 0
    assert out["cycles_per_inference"] >= out["bound_cycles"] > 0
    case = compiled("spikformer", "sim-small")
    assert [row["name"] for row in out["layers"]] == [layer["name"] for layer in case.layers]
    assert all(row["cycles"] >= row["bound_cycles"] for row in out["layers"])


class BrokenAccelerator(Accelerator):
    """An accelerator whose scores memory is never written (the READOUT's rows are lost)."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        # the last assignment in the module that drives the memory's port wins
        m.d.comb += m.submodules["scores_memory"].w_en.eq(0)
        return m


@pytest.mark.slow
@pytest.mark.xdist_group("accelerator-broken")
def test_broken_design_fails():
    """The system testbench catches wrong scores (one whole run of the small model)."""
    case = compiled("spikformer", "sim-small")
    with broken_variant("accelerator", f"{__name__}:BrokenAccelerator") as name:
        detail, _ = simulate_model(case, images(), simulator="icarus", mode="whole", seed=2,
                                   in_idle=0.0, out_stall=0.0, bad_crc=False, unit=name)
    assert "error" not in detail, detail["error"]      # it ran to the end ...
    assert detail["mismatches"] == 1 and "failure" in detail     # ... and failed on the scores
    (sample,) = detail["samples"]
    assert sample["scores"] != sample["golden_scores"]
