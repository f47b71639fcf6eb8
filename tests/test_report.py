"""``spikeforge report``: per-layer figures of one inference, every layer of the compiled program
on the accelerator's RTL, bit-exact check against the accelerator's golden model."""

import json

import pytest
from click.testing import CliRunner

from spikeforge.cli import cli
from spikeforge.errors import UserError
from spikeforge.verif import layer_rtl
from spikeforge.verif.layer_rtl import merge_layers


def report(*args):
    return CliRunner().invoke(cli, ["report", *args], standalone_mode=False)


def last_json(result):
    return json.loads(result.output.strip().splitlines()[-1])


def test_golden_figures_without_rtl():
    result = report("--no-rtl", "--sample", "5", "--json")
    assert result.exit_code == 0, result.output
    out = last_json(result)
    assert out["cycles"] is None and out["mismatches"] is None and out["simulator"] is None
    assert out["sops"] > 0 and out["energy_uj"] > 0 and out["label"] == out["predicted"]
    assert all(0 <= row["firing_rate"] <= 1 for row in out["layers"] if row["op"] == "lif")
    assert all("cycles" not in row for row in out["layers"])
    # the compiled program's cost model, per layer and in total (nothing measured)
    counted = [row for row in out["layers"] if "model_cycles" in row]
    assert counted and all(row["model_cycles"] >= row["bound_cycles"] >= 0 for row in counted)
    assert out["model_cycles"] == sum(row["model_cycles"] for row in counted)
    assert out["model_cycles"] > out["bound_cycles"] == sum(r["bound_cycles"] for r in counted)
    text = report("--no-rtl", "--sample", "5")
    assert f"{out['model_cycles']:.0f} cycles by the cost model" in text.output


def test_merge_keeps_program_order_and_golden_only_rows():
    golden = [{"name": "a", "op": "conv"}, {"name": "a.lif", "op": "lif"},
              {"name": "att", "op": "attention"}, {"name": "att.lif", "op": "lif"},
              {"name": "p", "op": "conv"}]
    program = [{"name": n, "op": op, "rtl": {"cycles": i}} for i, (n, op) in enumerate(
        [("a", "conv"), ("a.lif", "lif"), ("att", "attention"), ("p", "conv"),
         ("add", "add"), ("logits", "readout")])]
    rows = merge_layers(golden, program)
    assert [r["name"] for r in rows] == ["a", "a.lif", "att", "att.lif", "p", "add", "logits"]
    assert [r.get("cycles") for r in rows] == [0, 1, 2, None, 3, 4, 5]


def fake_run(mismatch_layer=None):
    """A stand-in for the RTL run: every layer at its cost model's cycles, one layer wrong."""
    def run(compiled, pixels, **kwargs):
        assert kwargs["mode"] == "layers" and pixels.shape[0] == 1
        import torch
        from spikeforge.golden.accelerator import Accelerator
        gold = Accelerator(compiled.config, compiled.images).run(torch.from_numpy(pixels))
        layers = [{"name": layer["name"], "op": layer["op"],
                   "mismatches": int(layer["name"] == mismatch_layer),
                   "cycles": float(c), "bound_cycles": float(b), "model_cycles": float(c)}
                  for layer, b, c in zip(compiled.layers, gold.bound, gold.cycles)]
        return {"mismatches": sum(r["mismatches"] for r in layers), "layers": layers}
    return run


@pytest.mark.parametrize("wrong", [None, "head.fc"])
def test_rtl_rows_and_exit_status(monkeypatch, wrong):
    """The command's plumbing with the RTL run replaced (the real run is the system tests' and
    test_report_on_the_rtl's): every program layer gets its figures, a mismatch exits 1."""
    monkeypatch.setattr(layer_rtl, "run_rtl", fake_run(wrong))
    result = report("--config", "sim-small", "--json")
    assert result.exit_code == (1 if wrong else 0), result.output
    out = last_json(result)
    rows = {row["name"]: row for row in out["layers"]}
    assert {"stem", "s0.b0.sep.add", "s1.b0.attn.sdsa", "logits"} <= rows.keys()
    assert "firing_rate" in rows["s1.b0.attn.sdsa.lif"] and "cycles" not in rows[
        "s1.b0.attn.sdsa.lif"]
    assert rows["stem"]["sops"] >= 0 and rows["stem"]["cycles"] >= rows["stem"]["bound_cycles"]
    assert out["cycles"] == sum(r["cycles"] for r in out["layers"] if "cycles" in r)
    assert out["mismatches"] == (1 if wrong else 0)
    assert out["config"] == "sim-small" and out["simulator"] == "verilator"


def test_a_failed_rtl_run_is_a_user_error(monkeypatch):
    """The CLI prints a UserError as one line (tests/test_fuzz_cli.py)."""
    monkeypatch.setattr(layer_rtl, "run_rtl", lambda *a, **k: {"failure": "no byte moved"})
    result = report("--config", "sim-small")
    assert isinstance(result.exception, UserError)
    assert "no byte moved" in str(result.exception)


@pytest.mark.slow
@pytest.mark.xdist_group("accelerator-verilator-sim-small")
def test_report_on_the_rtl():
    """The real thing: the spikformer model's every layer on the sim-small accelerator
    (Verilator), 0 mismatches, the first LIF layer's membranes after every step equal to the
    golden model's, every layer at or above its bound."""
    from spikeforge.verif.accel_cases import shipped_model_path
    result = report("--model", str(shipped_model_path("spikformer")), "--config", "sim-small",
                    "--json")
    assert result.exit_code == 0, result.output
    out = last_json(result)
    assert out["mismatches"] == 0 and out["cycles"] >= out["bound_cycles"] > 0
    trace = out["membrane"]     # read back after each step, the steps differ
    assert trace["rtl_mismatches"] == 0 and trace["rtl"] == trace["golden"]
    assert any(len(set(values)) > 1 for values in trace["golden"])
    measured = [row for row in out["layers"] if "cycles" in row]
    assert measured and all(row["cycles"] >= row["bound_cycles"] for row in measured)


@pytest.mark.parametrize("args, message", [
    (["--sample", "100000"], "--sample"),
    (["--config", "nothing"], "--config"),
])
def test_bad_report_options_name_the_option(args, message):
    result = report(*args, "--no-rtl")
    error = result.exception
    assert result.exit_code != 0
    assert message in getattr(error, "format_message", error.__str__)()
