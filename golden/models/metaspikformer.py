"""The staged spike-driven transformer: stem, stages of conv / transformer blocks, head.

One network class covers Meta-SpikeFormer (V2, the default), SDT-V1 and Spikformer; the
architecture name picks the attention operator, the shortcut type and the stem
(:data:`~.config.ARCH_KINDS`). Widths, depths, heads, kernel sizes and T are all configuration
(:class:`~.config.NetConfig`), so the released ImageNet models (:func:`metaspikformer_config`,
``ARCHS["metaspikformer-8-384"]`` and ``"metaspikformer-8-512"`` in :mod:`.variants`) and the
tiny digits model (``NetConfig()``) are the same code.
"""

from torch import nn

from .blocks import (SDSA1, SDSA3, SSA, ConvBlock, DownSampling, Head, MembraneMLP, SpikeMLP,
                     SpikingStem, TransformerBlock)
from .config import ARCH_KINDS, NetConfig

__all__ = ["SpikingTransformer", "metaspikformer_config"]


class SpikingTransformer(nn.Module):
    """Stem → stages (optional downsample, then conv or transformer blocks) → head.

    ``forward(pixels)`` takes ``(B, in_channels, H, W)`` raw pixels and returns ``(B, classes)``
    logits (mean over T). The stem's conv sees the same input at every time step, so it runs once
    and is repeated over T.

    Attributes
    ----------
    config : NetConfig
    stem : DownSampling or SpikingStem
    stages : nn.ModuleList of nn.ModuleDict(``downsample``, ``blocks``)
    head : Head
    """

    def __init__(self, config):
        super().__init__()
        kind = ARCH_KINDS[config.arch]
        self.config = config
        self.kind = kind
        if kind["stem"] == "conv":
            if len(config.stem) != 1:
                raise ValueError(f"stem of {config.arch} is one conv, not {len(config.stem)}")
            s = config.stem[0]
            self.stem = DownSampling(config.in_channels, s["width"], kernel=s["kernel"],
                                     stride=s["stride"], padding=s["padding"], first=True)
        else:
            self.stem = SpikingStem(config.in_channels, config.stem)
        width = config.stem[-1]["width"]
        self.stages = nn.ModuleList()
        for spec in config.stages:
            stage = nn.ModuleDict()
            ds = spec.get("downsample")
            if ds is not None:
                if kind["shortcut"] == "sew":
                    raise ValueError(f"{config.arch} stages take no downsample (use the stem)")
                stage["downsample"] = DownSampling(width, spec["width"], kernel=ds["kernel"],
                                                   stride=ds["stride"], padding=ds["padding"])
            elif spec["width"] != width:
                raise ValueError(f"stage width {spec['width']} != {width} needs a downsample")
            width = spec["width"]
            stage["blocks"] = nn.ModuleList(
                self._block(spec["block"], width) for _ in range(spec["depth"]))
            self.stages.append(stage)
        self.width = width
        self.head = Head(width, config.classes, spiking=kind["shortcut"] == "membrane")

    def _block(self, name, dim):
        c, kind = self.config, self.kind
        if name == "conv":
            if kind["shortcut"] != "membrane":
                raise ValueError(f"{c.arch} has no conv blocks")
            return ConvBlock(dim, expansion=c.sep_expansion, kernel=c.sep_kernel,
                             ratio=c.channel_ratio)
        if name != "transformer":
            raise ValueError(f"block must be 'conv' or 'transformer', not {name!r}")
        if kind["attention"] == SDSA3.block:
            return TransformerBlock(SDSA3(dim, heads=c.heads, order=c.order,
                                          shift=c.attention_shift),
                                    MembraneMLP(dim, ratio=c.mlp_ratio))
        if kind["attention"] == SDSA1.block:
            return TransformerBlock(SDSA1(dim, heads=c.heads), MembraneMLP(dim, ratio=c.mlp_ratio))
        return TransformerBlock(SSA(dim, heads=c.heads, order=c.order, shift=c.attention_shift),
                                SpikeMLP(dim, ratio=c.mlp_ratio))

    def forward(self, pixels):
        t = self.config.time_steps
        x = (pixels * self.config.input_scale).unsqueeze(0)
        if self.kind["stem"] == "conv":
            x = self.stem(x).expand(t, *([-1] * (x.dim() - 1)))
        else:
            x = self.stem(x.expand(t, *([-1] * (x.dim() - 1))))
        for stage in self.stages:
            if "downsample" in stage:
                x = stage["downsample"](x)
            for block in stage["blocks"]:
                x = block(x)
        return self.head(x)


def metaspikformer_config(widths, *, heads=8, time_steps=1, classes=1000, image_size=224):
    """The released ``Spiking_vit_MetaFormer`` layout for ``widths = [C0, C1, C2, C3]``.

    Stem 7×7 s2 (3→C0/2, no LIF); ConvBlock; DS s2 → C0; ConvBlock; DS s2 → C1; ConvBlock ×2;
    DS s2 → C2; TransformerBlock ×6; DS **s1** → C3; TransformerBlock ×2; head.
    """
    c0, c1, c2, c3 = widths
    ds2 = {"kernel": 3, "stride": 2, "padding": 1}
    return NetConfig(
        arch="metaspikformer", in_channels=3, image_size=image_size, classes=classes,
        time_steps=time_steps, input_scale=1.0,
        stem=[{"width": c0 // 2, "kernel": 7, "stride": 2, "padding": 3}],
        stages=[
            {"width": c0 // 2, "downsample": None, "block": "conv", "depth": 1},
            {"width": c0, "downsample": ds2, "block": "conv", "depth": 1},
            {"width": c1, "downsample": ds2, "block": "conv", "depth": 2},
            {"width": c2, "downsample": ds2, "block": "transformer", "depth": 6},
            {"width": c3, "downsample": {"kernel": 3, "stride": 1, "padding": 1},
             "block": "transformer", "depth": 2},
        ],
        heads=heads, mlp_ratio=4, sep_expansion=2, sep_kernel=7, channel_ratio=4,
        attention_shift=3)
