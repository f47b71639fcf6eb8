"""Spike-driven self-attention units: SDT-V1 SDSA and SDSA-3 / Spikformer SSA in both orders.

Every variant has the same ports and the same input contract (:class:`~.base.AttentionUnit`),
so :class:`SDSA` can pick one by parameter. Per time step, the unit first takes the ``tokens``
K/V beats of the step on ``kv`` (one token's K and V words per beat,
:func:`~spikeforge.hdl.layouts.kv_pair`), then the ``tokens`` Q words of the step on ``q``
(:func:`~spikeforge.hdl.layouts.spike_word` of ``channels`` bits: one word per token), and sends
one output spike word per Q word on ``o``, in token order. ``steps`` time steps make a sample;
the attention LIF's membranes start at 0 with every sample. Q, K, V and the output are binary
spikes; channel ``c`` is bit ``c`` of a word, and head ``h`` owns channels
``h * D_h ... (h + 1) * D_h - 1``. All streams tolerate any stall pattern.

The variants' names and what each computes: :mod:`spikeforge.contract.attention`.

============  ==================================================================================
module        part
============  ==================================================================================
``base``      :class:`~.base.AttentionUnit`: parameters, checks and ports of every unit
``v1``        :class:`~.v1.SDSAv1`, variant ``v1``: ``Q AND OR_n (K AND V)``
``ssa``       :class:`~.ssa.SSABackEnd`: scores → attention LIF → output words (both orders)
``kv_first``  :class:`~.kv_first.SSAKVFirst`, variant ``ssa``: ``Q @ (K^T @ V)``
``popcount``  :class:`~.popcount.KVPopcount`: the per-head ``K^T V`` of ``kv_first``
``qk_first``  :class:`~.qk_first.SSAQKFirst`, variant ``qk_first``: ``(Q @ K^T) @ V``
``unit``      :class:`~.unit.SDSA`: the registered ``sdsa`` unit, a variant by parameter
============  ==================================================================================
"""

from .base import AttentionUnit
from .kv_first import SSAKVFirst
from .popcount import KVPopcount
from .qk_first import SSAQKFirst
from .ssa import SSABackEnd
from .unit import SDSA
from .v1 import SDSAv1

__all__ = ["SDSA", "SDSAv1", "SSAKVFirst", "SSAQKFirst", "SSABackEnd", "KVPopcount",
           "AttentionUnit"]
