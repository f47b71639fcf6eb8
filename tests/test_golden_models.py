"""Float models: structure of the released configurations, the neurons, every named variant."""

import pytest
import torch

from spikeforge.golden.models import (ARCHS, NetConfig, NotSpikeDriven, arch_config, build_model,
                                      count_parameters, neuron_layers)
from spikeforge.golden.models.blocks import Conv2d, product_attention
from spikeforge.golden.neurons import LIF, PLIF

TINY = ["metaspikformer-tiny", "sdt-v1-tiny", "spikformer-tiny", "spikeformer-tiny"]


@pytest.mark.parametrize("arch,millions", [("metaspikformer-8-384", 31.33),
                                           ("metaspikformer-8-512", 55.35)])
def test_released_parameter_counts(arch, millions):
    with torch.device("meta"):
        model = build_model(arch_config(arch))
    assert round(count_parameters(model) / 1e6, 2) == millions


def test_lif_layer_matches_spikingjelly():
    neuron = pytest.importorskip("spikingjelly.activation_based.neuron")
    torch.manual_seed(0)
    x = torch.randn(6, 4, 33) * 1.5
    reference = neuron.LIFNode(tau=2.0, step_mode="m", detach_reset=True)
    ours = LIF().eval()
    assert torch.equal(ours(x), reference(x))


def test_lif_surrogate_gradient_is_sigmoid_alpha_4():
    lif = LIF().train()
    x = torch.tensor([[0.6, 2.0, 1.4]], requires_grad=True)       # T = 1
    lif(x).sum().backward()
    s = torch.sigmoid(4 * (x.detach() / 2 - 1))                    # H = X / 2 at t = 0
    assert torch.allclose(x.grad, 4 * s * (1 - s) / 2)


def test_plif_starts_as_lif():
    torch.manual_seed(1)
    x = torch.randn(5, 3, 10) * 2
    assert torch.equal(PLIF().eval()(x), LIF().eval()(x))


def test_bad_neuron_parameters_name_themselves():
    with pytest.raises(ValueError, match="v_threshold"):
        LIF(v_threshold=0)
    with pytest.raises(ValueError, match="init_tau"):
        PLIF(init_tau=1.0)


@pytest.mark.parametrize("arch", TINY)
def test_tiny_variants_train_and_record_rates(arch):
    torch.manual_seed(0)
    model = build_model(arch_config(arch, time_steps=2))
    x = torch.randint(0, 17, (4, 1, 8, 8)).float()
    logits = model(x)
    assert logits.shape == (4, 10)
    logits.sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)
    assert neuron_layers(model)
    assert count_parameters(model) < 50_000          # fits an ECP5-85 with room to spare


def test_seeds_head_and_attention_scale_in_the_released_configs():
    config = arch_config("metaspikformer-8-384")
    assert config.attention_shift == 3 and config.heads == 8


def test_attention_orders_agree():
    torch.manual_seed(2)
    q, k, v = ((torch.rand(2, 3, 8, 4, 4) < 0.3).float() for _ in range(3))
    a = product_attention(q, k, v, heads=2, order="kv_first")
    assert torch.equal(a, product_attention(q, k, v, heads=2, order="qk_first"))


def test_config_validation_names_the_field():
    with pytest.raises(ValueError, match="time_steps"):
        NetConfig(time_steps=0)
    with pytest.raises(ValueError, match="arch"):
        NetConfig(arch="resnet")
    with pytest.raises(ValueError, match="unknown arch"):
        arch_config("nosuch")
    with pytest.raises(ValueError, match="heads"):
        build_model(arch_config("metaspikformer-tiny", heads=3))
    with pytest.raises(ValueError, match="unknown config field 'depth'"):
        NetConfig.from_dict({"depth": 3})
    with pytest.raises(ValueError, match="attention_shift"):
        NetConfig(attention_shift=0)


def test_pointwise_conv_as_matmul_equals_conv2d():
    torch.manual_seed(6)
    conv = Conv2d(5, 7, 1, bias=True)
    x = torch.randn(3, 5, 4, 6).contiguous(memory_format=torch.channels_last)
    want = torch.nn.functional.conv2d(x, conv.weight, conv.bias)
    assert torch.allclose(conv(x), want, atol=1e-6)


def test_tiny_model_trains_from_a_live_start():
    """At initialisation the neuron layers of the tiny model fire (all but the head's, which
    reads the token mean of the stream) and the gradients are sane.

    Regression: with the seeds' attention scale 0.125 on 16 tokens and 4 heads the attention
    LIF never fired; the projection's BNs then normalised a constant (zero variance), their
    backward multiplied the gradient by ``1/sqrt(eps)`` twice, and the exploded gradient
    (|g|/|w| ~ 500 at the stem) left the float model at 91 % after 50 epochs."""
    from spikeforge.golden.data import load_digits
    train, _ = load_digits()
    torch.manual_seed(0)
    model = build_model(arch_config("metaspikformer-tiny")).train()
    for _, m in neuron_layers(model):
        m.record = True
    loss = torch.nn.functional.cross_entropy(model(train.images[:64].float()),
                                             train.labels[:64])
    loss.backward()
    assert all(m.last_rate > 0 for name, m in neuron_layers(model) if name != "head.lif")
    for name, p in model.named_parameters():
        assert float(p.grad.norm()) < 10 * max(float(p.detach().norm()), 1.0), name


def test_spikeformer_is_refused_by_the_quantizer():
    from spikeforge.golden.quantize import quantize
    model = build_model(arch_config("spikeformer-tiny"))
    with pytest.raises(NotSpikeDriven, match="not spike-driven"):
        quantize(model)


def test_arch_list_is_complete():
    assert set(TINY) <= set(ARCHS)
