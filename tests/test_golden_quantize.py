"""BN folding, RepConv/SepConv fusion, the integer program and its accuracy on the shipped model."""

import copy

import pytest
import torch

from spikeforge.golden.data import load_digits
from spikeforge.golden.energy import Counter
from spikeforge.golden.integer_model import evaluate, run_program
from spikeforge.golden.modelfile import load_model
from spikeforge.golden.models import arch_config, build_model
from spikeforge.golden.models.blocks import RepConvBN, SepConv
from spikeforge.golden.quantize import fuse_repconv, fuse_sepconv_tail, quantize
from spikeforge.golden.train import evaluate as evaluate_float

SPIKE_DRIVEN = ["metaspikformer-tiny", "sdt-v1-tiny", "spikformer-tiny"]


def _randomize_bn(model, seed=0):
    """Non-trivial BN statistics and affine parameters, so folding is really exercised."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.3)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.3 + 0.3)
    return model.eval()


def test_repconv_fuses_exactly():
    torch.manual_seed(0)
    rep = _randomize_bn(RepConvBN(6, 5))
    x = (torch.rand(1, 3, 6, 7, 7) < 0.4).double()
    w, b = fuse_repconv(rep)
    fused = torch.nn.functional.conv2d(x[0], w, b, padding=1)
    assert torch.allclose(rep.double()(x)[0], fused, atol=1e-10)


def test_sepconv_tail_fuses_exactly():
    torch.manual_seed(1)
    sep = _randomize_bn(SepConv(4, kernel=7)).double()
    x = (torch.rand(3, 8, 8, 8) < 0.4).double()
    w, b = fuse_sepconv_tail(sep)
    reference = sep.pw2.bn(sep.pw2.conv(sep.dw(x)))
    assert torch.allclose(torch.nn.functional.conv2d(x, w, b, padding=3), reference, atol=1e-10)


@pytest.mark.parametrize("arch", SPIKE_DRIVEN)
def test_folded_float_program_equals_the_module(arch):
    torch.manual_seed(3)
    model = _randomize_bn(build_model(arch_config(arch, time_steps=2)))
    images = torch.randint(0, 17, (6, 1, 8, 8))
    program = quantize(model)
    logits = run_program(program, images, backend="float") / 2
    with torch.no_grad():
        assert torch.allclose(logits, model(images.float()).double(), atol=1e-4)


@pytest.mark.parametrize("arch", SPIKE_DRIVEN)
def test_golden_ops_equal_float_ops_on_integer_weights(arch):
    """Run the float backend with the *integer* weights and thresholds (exact in float64): every
    neuron layer must fire exactly as in the golden integer model, and the logits must agree. So
    the integer model is exactly the quantized network; weight rounding is the only loss."""
    torch.manual_seed(4)
    model = _randomize_bn(build_model(arch_config(arch, time_steps=3)))
    program = quantize(model)
    as_ints = copy.deepcopy(program)
    for layer in as_ints.layers:
        if layer["op"] == "conv":
            for field in ("weight", "bias"):
                key = f"{layer['name']}.{field}"
                as_ints.arrays[key + "_f"] = as_ints.arrays[key].astype("float64")
        elif layer["op"] == "lif":
            layer["vth"] = float(layer["threshold"])
    images = torch.randint(0, 17, (5, 1, 8, 8))
    golden, floats = Counter(), Counter()
    logits_g = run_program(program, images, backend="golden", counter=golden)
    logits_f = run_program(as_ints, images, backend="float", counter=floats)
    assert torch.equal(logits_g.double(), logits_f)
    for name, count in golden.layers.items():
        assert count.spikes == floats.layers[name].spikes, name
        assert count.sops == floats.layers[name].sops, name


def test_weights_fit_and_thresholds_are_integers():
    torch.manual_seed(5)
    program = quantize(_randomize_bn(build_model(arch_config("metaspikformer-tiny"))),
                       weight_bits=6)
    for layer in program.layers:
        if layer["op"] == "conv":
            assert abs(program.arrays[layer["name"] + ".weight"]).max() <= 31
        if layer["op"] == "lif":
            assert isinstance(layer["threshold"], int) and layer["threshold"] >= 1
    head = next(l for l in program.layers if l["name"] == "head.lif")
    assert head["threshold"] == 16 * program.groups["s1.stream"]     # mean over 16 tokens


def test_bad_quantization_parameters_name_themselves():
    model = build_model(arch_config("metaspikformer-tiny"))
    with pytest.raises(ValueError, match="weight_bits"):
        quantize(model, weight_bits=1)


def test_shipped_model_accuracy():
    """The issue's targets on the whole test split: float ≥ 95 %, integer ≥ float − 1 point;
    and the figures recorded in the manifest (and docs/models.md) are the ones measured here."""
    model = load_model()
    _, test = load_digits()
    float_acc = evaluate_float(model.float_model(), test)
    golden_acc = evaluate(model, test, backend="golden")
    assert float_acc >= 0.95
    assert golden_acc >= float_acc - 0.01
    assert float_acc == pytest.approx(model.manifest["metrics"]["float_accuracy"], abs=1e-9)
    assert golden_acc == pytest.approx(model.manifest["metrics"]["golden_accuracy"], abs=1e-9)
