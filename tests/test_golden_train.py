"""``spikeforge train`` and ``spikeforge run`` end to end (small: a smoke train, a few samples)."""

import json
import subprocess
import sys

import pytest


def spikeforge(*args):
    return subprocess.run([sys.executable, "-m", "spikeforge", *args], capture_output=True,
                          text=True, timeout=600)


def _json(result):
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("backend", ["golden", "float"])
def test_run_shipped_model(backend):
    out = _json(spikeforge("run", "--backend", backend, "--samples", "24", "--json"))
    assert {"backend", "samples", "accuracy", "sops_per_inference", "firing_rates",
            "energy_uj_snn", "energy_uj_ann", "layers"} <= set(out)
    assert out["backend"] == backend and out["samples"] == 24
    assert out["accuracy"] >= 0.8
    assert out["sops_per_inference"] > 0 and 0 < out["energy_uj_snn"] < out["energy_uj_ann"]
    assert all(0 <= r <= 1 for r in out["firing_rates"].values())
    assert out["firing_rates"]["s1.b0.attn.sdsa.lif"] > 0.01      # the attention is alive
    assert all(row["description"] for row in out["layers"])
    convs = [row for row in out["layers"] if row["op"] == "conv"]
    assert convs[0]["counted_as"] == "MAC" and all(r["counted_as"] == "AC" for r in convs[1:])
    assert all(r["sops"] <= r["dense_ops"] * 4 for r in convs)


def test_run_text_output():
    result = spikeforge("run", "--samples", "8", "--no-progress")
    assert result.returncode == 0, result.stderr
    assert "accuracy" in result.stdout and "head.lif" in result.stdout


def test_train_smoke_then_run(tmp_path):
    path = tmp_path / "smoke.npz"
    out = _json(spikeforge("train", "--epochs", "1", "--train-samples", "64", "--steps", "2",
                           "-o", str(path), "--json"))
    assert out["output"] == str(path) and path.exists()
    assert out["golden_accuracy"] is not None and out["time_steps"] == 2
    ran = _json(spikeforge("run", "--model", str(path), "--samples", "8", "--json"))
    assert ran["time_steps"] == 2 and ran["samples"] == 8


def test_float_only_model_is_refused_by_golden(tmp_path):
    path = tmp_path / "sf.npz"
    out = _json(spikeforge("train", "--arch", "spikeformer-tiny", "--epochs", "1",
                           "--train-samples", "32", "--steps", "2", "-o", str(path), "--json"))
    assert out["golden_accuracy"] is None
    result = spikeforge("run", "--model", str(path), "--backend", "golden")
    assert result.returncode == 2
    assert "not spike-driven" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    ran = _json(spikeforge("run", "--model", str(path), "--backend", "float", "--samples", "8",
                           "--json"))
    assert ran["sops_per_inference"] is None and ran["firing_rates"]


@pytest.mark.parametrize("args,needle", [
    (["train", "--arch", "resnet"], "unknown arch 'resnet'"),
    (["train", "--epochs", "0"], "--epochs must be at least 1"),
    (["run", "--backend", "fpga"], "Invalid value for '--backend'"),
    (["run", "--samples", "0"], "--samples must be at least 1"),
])
def test_bad_input_is_one_line(args, needle):
    result = spikeforge(*args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], result.stderr


def test_bad_model_file_is_one_line(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 truncated")
    result = spikeforge("run", "--model", str(bad))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "truncated or not an .npz" in lines[0] and "Traceback" not in \
        result.stderr


def test_training_is_reproducible():
    import torch
    from spikeforge.golden.models import arch_config
    from spikeforge.golden.train import train
    config = arch_config("metaspikformer-tiny", time_steps=2)
    runs = [train(config, epochs=1, train_samples=48, seed=3).model.state_dict()
            for _ in range(2)]
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])
