"""The model file: round trip, the shipped file, and one clear message for every bad file."""

import io
import json

import numpy as np
import pytest
import torch

from spikeforge.golden.modelfile import (VERSION, ModelFileError, default_model_path, load_model,
                                         save_model)
from spikeforge.golden.models import arch_config, build_model
from spikeforge.golden.quantize import quantize


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    torch.manual_seed(0)
    config = arch_config("metaspikformer-tiny", time_steps=2)
    model = build_model(config).eval()
    program = quantize(model)
    path = tmp_path_factory.mktemp("model") / "small.npz"
    save_model(path, config=config, state_dict=model.state_dict(), program=program,
               metrics={"float_accuracy": 0.1})
    return path, program, model


def _rewrite(src, dst, *, manifest=None, arrays=None, drop=()):
    with np.load(src) as archive:
        content = {k: archive[k] for k in archive.files if k not in drop}
    m = json.loads(content["manifest"].tobytes())
    if manifest:
        manifest(m)
    content["manifest"] = np.frombuffer(json.dumps(m).encode(), dtype=np.uint8)
    content.update(arrays or {})
    np.savez(dst, **content)
    return dst


def test_round_trip(small):
    path, program, model = small
    loaded = load_model(path)
    assert loaded.layers == json.loads(json.dumps(program.layers))
    for key, value in program.arrays.items():
        assert np.allclose(loaded.arrays[key], value, atol=1e-6), key
    assert loaded.manifest["version"] == VERSION and loaded.spike_driven
    reloaded = loaded.float_model()
    x = torch.randint(0, 17, (3, 1, 8, 8)).float()
    with torch.no_grad():
        assert torch.equal(reloaded(x), model(x))


def test_shipped_model_is_valid():
    model = load_model(default_model_path())
    assert model.config.arch == "metaspikformer" and model.spike_driven
    assert model.manifest["quant"]["weight_bits"] == 8


def test_shipped_model_is_what_train_with_defaults_makes():
    """The cheap half of "training again reproduces it": the shipped file was made by
    ``spikeforge train`` with every default (no option recorded as overridden), so the same
    command, torch build and thread count retrain the same weights (training is deterministic:
    ``tests/test_golden_train.py::test_training_is_reproducible``)."""
    from spikeforge.golden.quantize import QUANT_DEFAULTS
    from spikeforge.golden.train import DEFAULTS
    model = load_model(default_model_path())
    assert model.manifest["config"] == arch_config("metaspikformer-tiny").to_dict()
    training = model.manifest["training"]
    assert training["epochs"] == DEFAULTS["epochs"] and training["seed"] == DEFAULTS["seed"]
    assert training["threads"] == 2 and training["train_samples"] is None
    assert not {"batch_size", "lr", "shift"} & set(training)          # none overridden
    assert model.manifest["quant"] == QUANT_DEFAULTS


def _refused(path, needle):
    with pytest.raises(ModelFileError) as info:
        load_model(path)
    message = str(info.value)
    assert needle in message and str(path) in message and "\n" not in message
    assert isinstance(info.value, ValueError)


def test_truncated_file(small, tmp_path):
    data = small[0].read_bytes()
    bad = tmp_path / "cut.npz"
    bad.write_bytes(data[:len(data) // 2])
    _refused(bad, "truncated or not an .npz")


def test_missing_and_garbage_files(tmp_path):
    _refused(tmp_path / "nope.npz", "file: cannot be read")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"hello world")
    _refused(junk, "truncated or not an .npz")
    buffer = io.BytesIO()
    np.savez(buffer, weights=np.zeros(3))
    other = tmp_path / "other.npz"
    other.write_bytes(buffer.getvalue())
    _refused(other, "manifest: missing")


@pytest.mark.parametrize("edit,needle", [
    (lambda m: m.update(version=VERSION + 1), "version: is 2"),
    (lambda m: m.update(format="onnx"), "format:"),
    (lambda m: m["config"].update(time_steps=0), "config.time_steps: 0 is out of range"),
    (lambda m: m["config"].pop("attention_shift"), "config.attention_shift: missing"),
    (lambda m: m.update(time_steps=3), "time_steps: 3 differs"),
    (lambda m: m["quant"].update(weight_bits=40), "quant.weight_bits: 40 is out of range"),
    (lambda m: m["layers"][1].update(threshold=0), "threshold: 0 is out of range"),
    (lambda m: m["layers"][1].update(threshold=1.5), "threshold: must be an integer"),
    (lambda m: m["layers"][0].update(op="matmul"), "op: must be one of"),
    (lambda m: m["layers"][2].update(input="nowhere"), "'nowhere' is not an earlier layer"),
    (lambda m: m["layers"][0].update(in_channels=3), "in_channels: 3 but its input has 1"),
    (lambda m: m["layers"].pop(), "the last layer must be a readout"),
])
def test_malformed_manifest(small, tmp_path, edit, needle):
    _refused(_rewrite(small[0], tmp_path / "bad.npz", manifest=edit), needle)


def test_bad_json(small, tmp_path):
    bad = _rewrite(small[0], tmp_path / "bad.npz",
                   arrays={"manifest": np.frombuffer(b"{not json", dtype=np.uint8)})
    _refused(bad, "manifest: is not valid JSON")


def test_out_of_range_and_missing_arrays(small, tmp_path):
    path = small[0]
    with np.load(path) as archive:
        weight = archive["stem.weight"].copy()
    weight.flat[0] = 200
    _refused(_rewrite(path, tmp_path / "w.npz", arrays={"stem.weight": weight}),
             "array 'stem.weight': holds values outside ±127 (quant.weight_bits)")
    _refused(_rewrite(path, tmp_path / "m.npz", drop=("stem.bias",)),
             "array 'stem.bias': missing")
    _refused(_rewrite(path, tmp_path / "s.npz", arrays={"stem.bias": np.zeros(3, np.int64)}),
             "array 'stem.bias': has shape (3,)")
    _refused(_rewrite(path, tmp_path / "f.npz",
                      arrays={"stem.weight": weight.astype(np.float32)}),
             "array 'stem.weight': must hold integers")


def test_state_that_does_not_fit_the_config(small, tmp_path):
    path = small[0]
    _refused(_rewrite(path, tmp_path / "st.npz", drop=("state/head.fc.weight",)),
             "state: does not fit the config")
    _refused(_rewrite(path, tmp_path / "cf.npz",
                      manifest=lambda m: m["config"].update(stages=[{"width": 16}])),
             "config.stages[0].downsample: missing")
