"""The structure of a network as data: :class:`NetConfig` and the architecture names.

The bottom of ``golden/models``: the network (:mod:`.metaspikformer`), the named architectures
(:mod:`.variants`), the quantizer and the model file import the configuration from here, and
this module imports nothing of the project (nor torch), so the package has no import cycle:
``config`` and ``blocks`` <- ``metaspikformer`` <- ``variants`` <- ``__init__``.
"""

import copy
from dataclasses import asdict, dataclass, field

from spikeforge.contract.attention import (BLOCK_SDSA1, BLOCK_SDSA3, BLOCK_SSA, ORDER_KV_FIRST,
                                           check_order)

__all__ = ["NetConfig", "ARCHS_ALL", "SPIKE_DRIVEN", "ARCH_KINDS", "NotSpikeDriven"]

#: Values of ``NetConfig.arch``.
ARCHS_ALL = ("metaspikformer", "sdt-v1", "spikformer", "spikeformer")
#: Architectures whose inference is spike-driven (integer model and compiler accept them).
SPIKE_DRIVEN = ("metaspikformer", "sdt-v1", "spikformer")


class NotSpikeDriven(ValueError):
    """The model computes with real values (softmax attention, PLIF, LayerNorm): no integer
    model, no accelerator program."""


#: Architecture → (attention, shortcut, stem) it implies.
ARCH_KINDS = {
    "metaspikformer": {"attention": BLOCK_SDSA3, "shortcut": "membrane", "stem": "conv"},
    "sdt-v1": {"attention": BLOCK_SDSA1, "shortcut": "membrane", "stem": "conv"},
    "spikformer": {"attention": BLOCK_SSA, "shortcut": "sew", "stem": "spiking"},
}


def _tiny_stages():
    return [
        {"width": 16, "downsample": None, "block": "conv", "depth": 1},
        {"width": 32, "downsample": {"kernel": 3, "stride": 2, "padding": 1},
         "block": "transformer", "depth": 1},
    ]


@dataclass
class NetConfig:
    """Everything that fixes a network's structure (stored in the model file's manifest).

    Attributes
    ----------
    arch : str
        ``metaspikformer``, ``sdt-v1``, ``spikformer`` or ``spikeformer`` (float only).
    in_channels, image_size, classes : int
        Input planes, input height = width, output classes.
    time_steps : int
        T; the image is repeated over T steps (direct encoding, as the seeds).
    input_scale : float
        Multiplies the raw input (digits pixels 0..16) before the stem.
    stem : list of dict
        Stem convs ``{"width", "kernel", "stride", "padding"}``; one conv + BN without LIF for
        Meta-SpikeFormer / SDT-V1, conv-BN-LIF layers for Spikformer's spiking stem.
    stages : list of dict
        ``{"width", "downsample": None | {"kernel", "stride", "padding"}, "block": "conv" |
        "transformer", "depth"}``.
    heads, mlp_ratio, sep_expansion, sep_kernel, channel_ratio : int
        Attention heads; MLP hidden ratio; SepConv expansion and depthwise kernel; ChannelConv
        ratio.
    order : str
        One of :data:`spikeforge.contract.attention.ORDERS`: ``kv_first`` (``Q·(KᵀV)``) or
        ``qk_first`` (``(Q·Kᵀ)·V``).
    attention_shift : int
        The attention scale is ``2**-attention_shift``: 3 (0.125) in the seeds, whose token maps
        have N = 196 tokens; the tiny models' 16 tokens give ``Q·(KᵀV)`` about a tenth of those
        values, so they use 1 (0.5) lest the attention never fire.
    """

    arch: str = "metaspikformer"
    in_channels: int = 1
    image_size: int = 8
    classes: int = 10
    time_steps: int = 4
    input_scale: float = 1.0 / 16.0
    stem: list = field(default_factory=lambda: [{"width": 16, "kernel": 3, "stride": 1,
                                                 "padding": 1}])
    stages: list = field(default_factory=_tiny_stages)
    heads: int = 2
    mlp_ratio: int = 4
    sep_expansion: int = 2
    sep_kernel: int = 7
    channel_ratio: int = 4
    order: str = ORDER_KV_FIRST
    attention_shift: int = 1

    def __post_init__(self):
        if self.arch not in ARCHS_ALL:
            raise ValueError(f"arch must be one of {', '.join(ARCHS_ALL)}, not {self.arch!r}")
        for name in ("in_channels", "image_size", "classes", "time_steps", "heads", "mlp_ratio",
                     "sep_expansion", "sep_kernel", "channel_ratio", "attention_shift"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        check_order(self.order)
        if not self.stem or not self.stages:
            raise ValueError("stem and stages must not be empty")

    def to_dict(self):
        return copy.deepcopy(asdict(self))

    @classmethod
    def from_dict(cls, data):
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown config field {unknown[0]!r}")
        # Every field must be there: a default filled in for a field an older file lacks
        # could silently change the model (attention_shift did).
        missing = [name for name in cls.__dataclass_fields__ if name not in data]
        if missing:
            raise ValueError(f"missing config field {missing[0]!r}")
        return cls(**copy.deepcopy(data))
