"""The names of the attention variants, the mapping between them, and the integer constants of
the attention LIF: defined here once, for the model configurations, the golden model, the model
file, the RTL and the testbenches.

An attention layer is named at three levels; each level has its own tuple of names and no name
is written anywhere else as a literal.

* :data:`BLOCKS`, the attention operator of a model configuration (``golden/models``): which
  seed's transformer block.

  - ``sdsa1``, SDT-V1 SDSA: ``m = LIF(sum_n K * V)`` per channel, ``out = Q * m``.
  - ``sdsa3``, Meta-SpikeFormer SDSA-3: ``LIF(2**-shift * Q (K^T V))`` per head; RepConv Q, K,
    V and projection; membrane shortcut.
  - ``ssa``, Spikformer SSA: the same product attention; 1x1 conv Q, K, V; a spiking
    projection; SEW shortcut.

* :data:`ORDERS`, the multiplication order of the product attention (``sdsa3`` and ``ssa``);
  both orders give the same integers.

  - ``kv_first``: ``A = Q @ (K^T @ V)``, a ``D_h x D_h`` intermediate (the ImageNet models).
  - ``qk_first``: ``A = (Q @ K^T) @ V``, an ``N x N`` intermediate (Spikformer CIFAR / DVS).

* :data:`VARIANTS`, the integer datapath: the ``variant`` of a model file's attention layer, of
  ``spikeforge.hdl.attention.SDSA`` and of ``spikeforge.golden.attention.sdsa_int``. The
  strings are those stored in model files (format version 1), so ``"ssa"`` names the
  ``kv_first`` datapath; the Python names say what each computes.

  - :data:`VARIANT_V1` (``"v1"``): ``Q AND OR_n (K AND V)``, the exact integer form of
    ``sdsa1`` (its mask LIF is stateless).
  - :data:`VARIANT_KV_FIRST` (``"ssa"``): ``LIF(A * 2**-shift)``, ``A`` in the ``kv_first``
    order.
  - :data:`VARIANT_QK_FIRST` (``"qk_first"``): the same spikes, ``A`` in the ``qk_first``
    order.

:func:`variant_of` maps a block and an order to its variant, :func:`order_of` a variant to its
order. The attention LIF of the product variants runs on the integer ``A`` with
:func:`lif_threshold`, :func:`lif_frac_bits` and (in the RTL) :func:`lif_membrane_bits`.
"""

__all__ = [
    "BLOCK_SDSA1", "BLOCK_SDSA3", "BLOCK_SSA", "BLOCKS",
    "ORDER_KV_FIRST", "ORDER_QK_FIRST", "ORDERS",
    "VARIANT_V1", "VARIANT_KV_FIRST", "VARIANT_QK_FIRST", "VARIANTS", "FORMULAS",
    "check_order", "check_variant", "variant_of", "order_of",
    "lif_threshold", "lif_frac_bits", "lif_membrane_bits",
]

#: SDT-V1 SDSA (model block).
BLOCK_SDSA1 = "sdsa1"
#: Meta-SpikeFormer SDSA-3 (model block).
BLOCK_SDSA3 = "sdsa3"
#: Spikformer SSA (model block).
BLOCK_SSA = "ssa"
#: The attention operators of the model configurations.
BLOCKS = (BLOCK_SDSA1, BLOCK_SDSA3, BLOCK_SSA)

#: ``Q @ (K^T @ V)``.
ORDER_KV_FIRST = "kv_first"
#: ``(Q @ K^T) @ V``.
ORDER_QK_FIRST = "qk_first"
#: The multiplication orders of the product attention.
ORDERS = (ORDER_KV_FIRST, ORDER_QK_FIRST)

#: ``Q AND OR_n (K AND V)`` (SDT-V1).
VARIANT_V1 = "v1"
#: The product attention in the ``kv_first`` order (stored as ``"ssa"``).
VARIANT_KV_FIRST = "ssa"
#: The product attention in the ``qk_first`` order.
VARIANT_QK_FIRST = "qk_first"
#: The integer / hardware attention variants.
VARIANTS = (VARIANT_V1, VARIANT_KV_FIRST, VARIANT_QK_FIRST)

#: What each variant computes, in one line (help texts, summaries).
FORMULAS = {
    VARIANT_V1: "Q AND OR(K AND V)",
    VARIANT_KV_FIRST: "LIF(Q(K^T V))",
    VARIANT_QK_FIRST: "LIF((Q K^T)V)",
}

_ORDER_OF = {VARIANT_V1: None, VARIANT_KV_FIRST: ORDER_KV_FIRST,
             VARIANT_QK_FIRST: ORDER_QK_FIRST}
_VARIANT_OF_ORDER = {order: variant for variant, order in _ORDER_OF.items() if order}


def _check(kind, value, names):
    if value not in names:
        raise ValueError(f"{kind} must be one of {', '.join(map(repr, names))}, not {value!r}")
    return value


def check_order(order):
    """Return ``order`` if it is one of :data:`ORDERS`; raise a ``ValueError`` naming it."""
    return _check("order", order, ORDERS)


def check_variant(variant):
    """Return ``variant`` if it is one of :data:`VARIANTS`; raise a ``ValueError`` naming it."""
    return _check("variant", variant, VARIANTS)


def variant_of(block, order=None):
    """The variant that computes model block ``block`` in ``order`` exactly.

    ``sdsa1`` is :data:`VARIANT_V1` whatever the order (it has no product); ``sdsa3`` and
    ``ssa`` take :data:`VARIANT_KV_FIRST` or :data:`VARIANT_QK_FIRST` by ``order``, which they
    need.
    """
    _check("block", block, BLOCKS)
    if block == BLOCK_SDSA1:
        return VARIANT_V1
    return _VARIANT_OF_ORDER[check_order(order)]


def order_of(variant):
    """The multiplication order of ``variant``: one of :data:`ORDERS`, or ``None`` for
    :data:`VARIANT_V1` (no product)."""
    return _ORDER_OF[check_variant(variant)]


def lif_threshold(shift):
    """Threshold of the attention LIF in units of ``A``: ``2**(shift - 1)``.

    The seeds' LIF (tau 2, Vth 0.5) on ``A * 2**-shift`` fires when ``W + A >= 2**shift`` with
    ``W = 2**shift * V``, which is this threshold on the membrane in units of ``A``.
    """
    return 1 << (shift - 1)


def lif_frac_bits(steps):
    """Fractional membrane bits that make the integer attention LIF exact over ``steps`` steps
    (each halving adds one)."""
    return steps


def lif_membrane_bits(*, shift, steps):
    """Signed membrane bits of the RTL's attention LIF: ``shift + steps + 1``.

    The membrane saturates only where ``H >= 2**(shift + steps)`` (in units of
    ``2**-steps``), above the threshold, where the neuron fires and resets whatever the exact
    value: the spikes stay exact.
    """
    return shift + steps + 1
