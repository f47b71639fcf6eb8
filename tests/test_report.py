"""``spikeforge report``: per-layer figures, model layers on the engine RTL, bit-exact check."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from spikeforge.cli import cli
from spikeforge.golden.data import load_digits
from spikeforge.golden.integer_model import run_program
from spikeforge.golden.modelfile import load_model
from spikeforge.verif import engine_model
from spikeforge.verif.layer_rtl import LayerTrace, engine_params, run_layer


def report(*args):
    result = CliRunner().invoke(cli, ["report", *args], standalone_mode=False)
    return result


@pytest.fixture(scope="module")
def traced():
    model = load_model(None)
    _, test = load_digits()
    trace = LayerTrace()
    run_program(model, test.images[3:4], counter=trace)
    return model, trace


def test_report_json_runs_linear_and_conv_layers_on_rtl():
    result = report("--layers", "head.fc", "--sample", "5", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output.strip().splitlines()[-1])
    assert out["mismatches"] == 0 and out["bound_cycles"] > 0
    assert out["bound_cycles"] <= out["cycles"] <= 3 * out["bound_cycles"] + 100
    rows = {row["name"]: row for row in out["layers"]}
    assert rows["head.fc"]["kind"] == "linear" and "cycles" in rows["head.fc"]
    assert all("cycles" not in row for name, row in rows.items() if name != "head.fc")
    assert all(0 <= row["firing_rate"] <= 1 for row in rows.values() if row["op"] == "lif")
    assert out["sops"] > 0 and out["energy_uj"] > 0


def test_conv_layer_on_rtl_matches_golden(traced):
    model, trace = traced
    layer = next(l for l in model.layers if l["name"] == "s1.ds.conv")
    run = run_layer(layer, model.arrays, trace.inputs["s1.ds.conv"], lanes=16)
    assert run.kind == "conv" and run.beats > 0 and run.mismatches == 0
    assert run.bound_cycles <= run.cycles


def test_a_wrong_golden_output_is_reported(traced, monkeypatch):
    model, trace = traced
    layer = next(l for l in model.layers if l["name"] == "head.fc")
    honest = engine_model.golden_output
    monkeypatch.setattr(engine_model, "golden_output",
                        lambda *a, **k: honest(*a, **k) + (np.arange(10) == 3))
    run = run_layer(layer, model.arrays, trace.inputs["head.fc"], lanes=16)
    assert run.mismatches > 0


def test_engine_params_by_layer_shape():
    layer = {"name": "x", "out_channels": 8, "kernel": 3, "stride": 2, "padding": 1,
             "groups": 1, "input_bits": 1, "acc_bits": 20}
    p = engine_params(layer, np.array([-128, 127]), np.array([5]), (4, 8, 8), lanes=4)
    assert p["kind"] == "conv" and p["weight_bits"] == 8 and p["in_height"] == 8
    p = engine_params({**layer, "kernel": 1, "stride": 1, "padding": 0},
                      np.array([-129]), np.array([0]), (4, 8, 8), lanes=4)
    assert p["kind"] == "linear" and p["weight_bits"] == 9
    with pytest.raises(ValueError, match="groups"):
        engine_params({**layer, "groups": 2}, np.array([1]), np.array([0]), (4, 8, 8), lanes=4)


@pytest.mark.parametrize("args, message", [
    (["--layers", "nothing*"], "--layers"),
    (["--sample", "100000"], "--sample"),
    (["--lanes", "0"], "--lanes"),
])
def test_bad_report_options_name_the_option(args, message):
    result = report(*args, "--no-rtl")
    assert result.exit_code != 0 and message in str(result.exception)
