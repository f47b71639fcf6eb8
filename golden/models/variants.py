"""Named architectures (``spikeforge train --arch NAME``) and the float-only Spikeformer.

=====================  ================================================================
name                   what it is
=====================  ================================================================
metaspikformer-tiny    Meta-SpikeFormer (V2) for 8×8 digits: stem, ConvBlock, DS, one
                       transformer block with SDSA-3, head. The default and shipped model.
sdt-v1-tiny            the same layout with Spike-driven Transformer V1's SDSA
                       (``Q ⊙ LIF(Σ K⊙V)``) and 1×1 Q/K/V/projection convs.
spikformer-tiny        Spikformer: spiking conv stem (assumed, see ``SpikingStem``), SSA,
                       SEW shortcuts (spike + spike), head without LIF.
spikeformer-tiny       Spikeformer: conv tokenizer with PLIF, spatio-temporal *softmax*
                       attention, LayerNorm. **Float only: not spike-driven**; the quantizer
                       and the compiler refuse it.
metaspikformer-8-384   released ImageNet model, 31.3 M parameters (structure only).
metaspikformer-8-512   released ImageNet model, 55.35 M parameters (structure only).
=====================  ================================================================
"""

import torch.nn.functional as F
from torch import nn

from ..neurons import LIF, PLIF
from .blocks import ConvBN
from .config import NetConfig
from .metaspikformer import SpikingTransformer, metaspikformer_config

__all__ = ["ARCHS", "arch_config", "build_model", "Spikeformer", "neuron_layers",
           "count_parameters"]


def _spiking_stem():
    return [{"width": 8, "kernel": 3, "stride": 1, "padding": 1},
            {"width": 16, "kernel": 3, "stride": 2, "padding": 1}]


def _one_transformer_stage():
    return [{"width": 16, "downsample": None, "block": "transformer", "depth": 1}]


ARCHS = {
    "metaspikformer-tiny": lambda: NetConfig(arch="metaspikformer"),
    "sdt-v1-tiny": lambda: NetConfig(arch="sdt-v1"),
    "spikformer-tiny": lambda: NetConfig(arch="spikformer", stem=_spiking_stem(),
                                         stages=_one_transformer_stage()),
    "spikeformer-tiny": lambda: NetConfig(arch="spikeformer", stem=_spiking_stem(),
                                          stages=_one_transformer_stage()),
    "metaspikformer-8-384": lambda: metaspikformer_config([96, 192, 384, 480]),
    "metaspikformer-8-512": lambda: metaspikformer_config([128, 256, 512, 640]),
}


def arch_config(name, **overrides):
    """The :class:`NetConfig` of a named architecture, with fields overridden."""
    try:
        config = ARCHS[name]()
    except KeyError:
        raise ValueError(f"unknown arch {name!r} (archs: {', '.join(ARCHS)})") from None
    data = config.to_dict()
    data.update({k: v for k, v in overrides.items() if v is not None})
    return NetConfig.from_dict(data)


def build_model(config):
    """The float model of a :class:`NetConfig` (fresh initialisation)."""
    if config.arch == "spikeformer":
        return Spikeformer(config)
    return SpikingTransformer(config)


def neuron_layers(model):
    """``[(name, module)]`` of every spiking neuron layer, in forward order."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, (LIF, PLIF))]


def count_parameters(model):
    return sum(p.numel() for p in model.parameters())


def _attend(x, qkv, heads):
    """Softmax self-attention over the second-to-last axis of ``x`` (``(..., L, C)``)."""
    q, k, v = qkv(x).chunk(3, dim=-1)
    shape = x.shape
    split = lambda y: y.reshape(*shape[:-1], heads, shape[-1] // heads).transpose(-2, -3)
    out = F.scaled_dot_product_attention(split(q), split(k), split(v))
    return out.transpose(-2, -3).reshape(shape)


class _STABlock(nn.Module):
    """Spatio-temporal attention block: temporal attention over T at every token, spatial
    attention over the tokens at every step, then an MLP with a PLIF; pre-LayerNorm, real-valued
    residual stream."""

    def __init__(self, dim, *, heads, ratio):
        super().__init__()
        self.heads = heads
        self.norm_t, self.qkv_t, self.fc_t = nn.LayerNorm(dim), nn.Linear(dim, 3 * dim), \
            nn.Linear(dim, dim)
        self.norm_s, self.qkv_s, self.fc_s = nn.LayerNorm(dim), nn.Linear(dim, 3 * dim), \
            nn.Linear(dim, dim)
        self.norm_m, self.fc1, self.plif, self.fc2 = nn.LayerNorm(dim), \
            nn.Linear(dim, ratio * dim), PLIF(), nn.Linear(ratio * dim, dim)

    def forward(self, x):                                   # (T, B, N, C)
        xt = self.norm_t(x).permute(1, 2, 0, 3)             # (B, N, T, C): attend over T
        x = x + self.fc_t(_attend(xt, self.qkv_t, self.heads)).permute(2, 0, 1, 3)
        x = x + self.fc_s(_attend(self.norm_s(x), self.qkv_s, self.heads))
        return x + self.fc2(self.plif(self.fc1(self.norm_m(x))))


class Spikeformer(nn.Module):
    """Spikeformer-style model (float only, **not spike-driven**).

    Convolutional tokenizer ``[conv → BN → PLIF] × n``, transformer blocks with spatio-temporal
    softmax attention and LayerNorm (:class:`_STABlock`), head: mean over tokens → linear → mean
    over T. Real-valued attention scores, softmax, LayerNorm and a learned PLIF decay all need
    multipliers, so :func:`spikeforge.golden.quantize.quantize` raises
    :class:`~.config.NotSpikeDriven`.
    """

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.convs, self.plifs = nn.ModuleList(), nn.ModuleList()
        cin = config.in_channels
        for spec in config.stem:
            self.convs.append(ConvBN(cin, spec["width"], spec["kernel"], stride=spec["stride"],
                                     padding=spec["padding"]))
            self.plifs.append(PLIF())
            cin = spec["width"]
        blocks = []
        for spec in config.stages:
            if spec.get("downsample") is not None or spec["width"] != cin \
                    or spec["block"] != "transformer":
                raise ValueError("spikeformer stages are transformer blocks at the stem's width")
            blocks += [_STABlock(cin, heads=config.heads, ratio=config.mlp_ratio)
                       for _ in range(spec["depth"])]
        self.blocks = nn.ModuleList(blocks)
        self.fc = nn.Linear(cin, config.classes)

    def forward(self, pixels):
        t = self.config.time_steps
        x = (pixels * self.config.input_scale).unsqueeze(0).expand(t, *pixels.shape)
        for conv, plif in zip(self.convs, self.plifs):
            x = plif(conv(x))
        x = x.flatten(3).transpose(2, 3)                    # (T, B, N, C)
        for block in self.blocks:
            x = block(x)
        return self.fc(x.mean(2)).mean(0)
