"""The compiler: the shipped model compiles for every configuration it fits; each refusal is one
line naming the layer, the limit and the value."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from spikeforge.cli import main
from spikeforge.compiler import CompileError, compile_model
from spikeforge.contract.configs import get_config
from spikeforge.contract.program import DESCRIPTOR_WORDS
from spikeforge.golden.modelfile import load_model, save_model
from spikeforge.golden.models.variants import arch_config, build_model


@pytest.fixture(scope="module")
def shipped():
    return load_model()


@pytest.mark.parametrize("config", ["ulx3s-85f", "sim-small"])
def test_shipped_model_compiles(shipped, config):
    compiled = compile_model(shipped, config)
    summary = compiled.summary()
    assert summary["fits"] and summary["config"] == config
    assert summary["layers"] == len(shipped.layers)
    assert summary["program_words"] == DESCRIPTOR_WORDS * (len(shipped.layers) + 2)
    weights = sum(np.count_nonzero(shipped.arrays[f"{l['name']}.weight"])
                  for l in shipped.layers if l["op"] == "conv")
    assert np.count_nonzero(compiled.images["weights"]) == weights
    for memory in summary["memories"].values():
        assert 0 < memory["used"] <= memory["capacity"]


def test_compile_writes_images_and_manifest(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["compile", "--config", "sim-small", "-o", str(tmp_path), "--json"])
    assert exit_.value.code == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"model", "config", "layers", "program_words", "memories", "fits"}
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["format_version"] == 1 and manifest["config"] == "sim-small"
    program = np.load(tmp_path / "program.npy")
    assert len(program) == out["program_words"]
    assert np.load(tmp_path / "weights.npy").shape[1] == get_config("sim-small").lanes


def _refused(model, config, *parts):
    with pytest.raises(CompileError) as info:
        compile_model(model, config)
    message = str(info.value)
    assert "\n" not in message
    for part in parts:
        assert part in message, message
    return message


def _small(**changes):
    return dataclasses.replace(get_config("ulx3s-85f"), **changes)


def test_refuses_memory_too_small(shipped):
    _refused(shipped, _small(values_depth=1024), "layer s0.b0.ch.conv1 (conv)",
             "memory values needs 1600 words", "values_depth 1024")
    _refused(shipped, _small(weights_depth=4096), "memory weights", "weights_depth 4096")


def test_refuses_width_too_narrow(shipped):
    _refused(shipped, "icebreaker-up5k", "layer stem (conv)", "acc_bits 24 exceeds acc_bits 16")
    _refused(shipped, _small(membrane_bits=28), "layer s0.b0.sep.lif1 (lif)",
             "membrane_bits 29 exceeds membrane_bits 28")
    _refused(shipped, _small(threshold_bits=11), "layer head.lif (lif)", "threshold 1840",
             "threshold_bits 11")


def test_refuses_too_many_channels(shipped):
    _refused(shipped, _small(max_channels=32), "layer s0.b0.ch.conv1 (conv)",
             "channels 64 exceeds max_channels 32")


def test_refuses_too_many_tokens(shipped):
    _refused(shipped, _small(max_tokens=16), "layer input", "tokens 64 exceeds max_tokens 16")


def test_refuses_too_many_steps(shipped):
    _refused(shipped, _small(max_steps=2), "time steps 4 exceeds max_steps 2")


def test_refuses_non_spike_driven(tmp_path):
    torch.manual_seed(0)
    config = arch_config("spikeformer-tiny")
    path = tmp_path / "spikeformer.npz"
    save_model(path, config=config, state_dict=build_model(config).state_dict())
    model = load_model(path)
    assert not model.spike_driven
    _refused(model, "ulx3s-85f", "spikeformer.npz", "'spikeformer' is not spike-driven")
    with pytest.raises(SystemExit) as exit_:
        main(["compile", "--model", str(path)])
    assert exit_.value.code == 2
