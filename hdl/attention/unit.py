"""The registered ``sdsa`` unit: the attention variant chosen by parameter."""

from amaranth.hdl import Module
from amaranth.lib import wiring

from spikeforge.contract.attention import (VARIANTS, VARIANT_V1, VARIANT_KV_FIRST,
                                           VARIANT_QK_FIRST)

from ..params import check_choice
from .base import AttentionUnit
from .kv_first import SSAKVFirst
from .qk_first import SSAQKFirst
from .v1 import SDSAv1

__all__ = ["SDSA"]

_CORES = {VARIANT_V1: SDSAv1, VARIANT_KV_FIRST: SSAKVFirst, VARIANT_QK_FIRST: SSAQKFirst}


class SDSA(AttentionUnit):
    """The attention unit of ``variant`` (:data:`spikeforge.contract.attention.VARIANTS`):
    ``"v1"`` (:class:`~.v1.SDSAv1`), ``"ssa"`` (:class:`~.kv_first.SSAKVFirst`,
    ``Q @ (K^T @ V)``) or ``"qk_first"`` (:class:`~.qk_first.SSAQKFirst`, ``(Q @ K^T) @ V``).
    Same ports and contract as every variant (:mod:`spikeforge.hdl.attention`); golden:
    :func:`spikeforge.golden.attention.sdsa_int`.

    Parameters
    ----------
    variant : str
        One of :data:`~spikeforge.contract.attention.VARIANTS`.
    tokens, channels, heads, steps, shift
        As :class:`~.base.AttentionUnit` takes them.
    """

    def __init__(self, *, variant=VARIANT_KV_FIRST, tokens, channels, heads=8, steps=4,
                 shift=3):
        self._variant = check_choice("variant", variant, VARIANTS)
        self._core = _CORES[variant](tokens=tokens, channels=channels, heads=heads, steps=steps,
                                     shift=shift)
        super().__init__(tokens=tokens, channels=channels, heads=heads, steps=steps,
                         shift=shift)

    variant = property(lambda self: self._variant)

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = core = self._core
        wiring.connect(m, wiring.flipped(self.kv), core.kv)
        wiring.connect(m, wiring.flipped(self.q), core.q)
        wiring.connect(m, core.o, wiring.flipped(self.o))
        return m
