"""The accelerator's golden model (golden/accelerator.py) runs the compiled program and memory
images, and equals the golden integer model layer by layer and in scores."""

from pathlib import Path

import pytest
import torch

from spikeforge.compiler import compile_model
from spikeforge.compiler.evaluate import run_accelerator
from spikeforge.contract.program import pack
from spikeforge.golden.accelerator import (Accelerator, compare, decode_program,
                                           golden_layer_outputs)
from spikeforge.golden.data import load_digits
from spikeforge.golden.integer_model import run_program
from spikeforge.golden.modelfile import load_model, save_model
from spikeforge.golden.models.variants import arch_config, build_model
from spikeforge.golden.quantize import quantize

MODELS = Path(__file__).resolve().parents[1] / "golden" / "models"


@pytest.fixture(scope="module")
def test_images():
    _, test = load_digits()
    return test.head(12)


def _model(arch, tmp_path_factory):
    """The shipped model of ``arch`` when it exists, else a freshly initialised one."""
    shipped = {"metaspikformer-tiny": "default.npz", "sdt-v1-tiny": "sdt-v1.npz",
               "spikformer-tiny": "spikformer.npz"}[arch]
    if (MODELS / shipped).exists():
        return load_model(MODELS / shipped)
    torch.manual_seed(0)
    config = arch_config(arch)
    model = build_model(config)
    path = tmp_path_factory.mktemp("models") / f"{arch}.npz"
    save_model(path, config=config, state_dict=model.state_dict(), program=quantize(model))
    return load_model(path)


def _run(model, config, images):
    compiled = compile_model(model, config)
    run = Accelerator(compiled.config, compiled.images).run(images)
    names = [layer["name"] for layer in compiled.layers]
    return compiled, run, compare(run, golden_layer_outputs(model, images), names)


@pytest.mark.parametrize("arch", ["metaspikformer-tiny", "sdt-v1-tiny", "spikformer-tiny"])
@pytest.mark.parametrize("config", ["ulx3s-85f", "sim-small"])
def test_equals_golden_integer_model(arch, config, test_images, tmp_path_factory):
    model = _model(arch, tmp_path_factory)
    compiled, run, (layers, scores) = _run(model, config, test_images.images)
    assert layers == dict.fromkeys(layers, 0) and scores == 0
    assert len(layers) == len(model.layers)
    assert torch.equal(run.scores, run_program(model, test_images.images))
    assert all(c >= b >= 0 for b, c in zip(run.bound, run.cycles))


def test_covers_every_op_and_variant(tmp_path_factory):
    ops, variants, modes = set(), set(), set()
    for arch in ("metaspikformer-tiny", "sdt-v1-tiny", "spikformer-tiny"):
        for layer in _model(arch, tmp_path_factory).layers:
            ops.add(layer["op"])
            variants.add(layer.get("variant"))
            modes.add(layer.get("mode"))
    assert ops == {"conv", "lif", "add", "attention", "sum_tokens", "readout"}
    assert {"v1", "ssa"} <= variants and {"membrane", "sew"} <= modes


def test_qk_first_order(test_images):
    model = load_model()
    for layer in model.layers:
        if layer["op"] == "attention":
            layer["variant"] = "qk_first"
    _, _, (layers, scores) = _run(model, "ulx3s-85f", test_images.images)
    assert sum(layers.values()) == 0 and scores == 0


@pytest.mark.parametrize("memory, row", [("weights", 100), ("thresholds", 0), ("biases", 0)])
def test_corrupted_image_is_a_mismatch(memory, row, test_images):
    model = load_model()
    compiled = compile_model(model, "ulx3s-85f")
    images = {k: v.copy() for k, v in compiled.images.items()}
    images[memory][row] += 7 if memory != "thresholds" else -100
    run = Accelerator(compiled.config, images).run(test_images.images)
    names = [layer["name"] for layer in compiled.layers]
    layers, _ = compare(run, golden_layer_outputs(model, test_images.images), names)
    assert sum(layers.values()) > 0


def test_decode_refuses_bad_programs():
    with pytest.raises(ValueError, match="version 2, expected 1"):
        decode_program(pack({"op": 1, "version": 2}) + pack({}))
    with pytest.raises(ValueError, match="no END"):
        decode_program(pack({"op": 1}))
    with pytest.raises(ValueError, match="start with an INPUT"):
        decode_program(pack({"op": 2}) + pack({"op": 0}))
    with pytest.raises(ValueError, match="unknown opcode 12"):
        decode_program(pack({"op": 12}))


def test_run_accelerator_figures(test_images):
    out = run_accelerator(load_model(), test_images, config="ulx3s-85f", batch_size=5)
    assert out["mismatches"] == 0 and out["samples"] == 12
    assert out["accuracy"] > 0.8
    assert out["cycles_per_inference"] >= out["bound_cycles"] > 0
    assert abs(sum(r["bound_cycles"] for r in out["layers"]) - out["bound_cycles"]) < 1
