"""Spike-driven self-attention: float (PyTorch) models as the seeds' released code computes them,
and their integer forms, the bit-exact specification of :mod:`spikeforge.hdl.attention`.

All functions take binary spike tensors ``q``, ``k``, ``v`` of shape ``(T, N, D)`` (time steps,
tokens, channels); heads split the channels into ``heads`` consecutive blocks of ``D / heads``.

SDT-V1 SDSA (``ms_conv.py``)::

    m[t, c]      = SN(sum_n K[t, n, c] * V[t, n, c])     attention LIF: tau 2, Vth 0.5
    out[t, n, c] = Q[t, n, c] * m[t, c]

The column sums are non-negative integers, so the LIF never keeps a charge below threshold: a sum
of 0 leaves the membrane at 0 and a sum >= 1 fires and resets it. Hence the exact integer form
``m[t, c] = OR_n (K[t, n, c] AND V[t, n, c])`` (stateless).

SDSA-3 (Meta-SpikeFormer) / Spikformer SSA, per head::

    A = Q @ (K^T @ V)          order "kv_first" (D_h x D_h intermediate, ImageNet models)
    A = (Q @ K^T) @ V          order "qk_first" (N x N intermediate, Spikformer CIFAR/DVS)
    S = SN(A * 2**-shift)      attention LIF: tau 2, Vth 0.5, membrane kept over the T steps

``A`` is the same integer in both orders. The float scale is ``0.125`` (``shift = 3``) for the
ImageNet models and Spikformer CIFAR, ``0.25`` (``shift = 2``) for Spikformer CIFAR10-DVS. With
``W = 2**shift * V`` the LIF reads ``fire <=> W + A >= 2**shift``, else ``W <- (W + A) / 2``:
an integer LIF with threshold ``2**(shift - 1)`` in units of ``A`` and ``T`` fractional bits
(:func:`spikeforge.golden.lif.lif_int`) is exact.

The names of the orders and variants and these two constants are those of
:mod:`spikeforge.contract.attention`, shared with the RTL.
"""

import torch

from spikeforge.contract.attention import (ORDER_KV_FIRST, VARIANT_V1, check_order,
                                           lif_frac_bits, lif_threshold, order_of)

from .lif import lif_float, lif_int

__all__ = ["sdsa_v1_float", "sdsa_v1_int", "kv_int", "head_product", "scores_int", "ssa_float",
           "ssa_int", "sdsa_int"]

#: Threshold and time constant of every attention LIF in the seeds.
ATTENTION_VTH = 0.5
ATTENTION_TAU = 2.0


def _check_spikes(**tensors):
    shape = None
    for name, x in tensors.items():
        if not torch.is_tensor(x):
            raise TypeError(f"{name} must be a torch tensor, not {type(x).__name__}")
        if x.dim() != 3:
            raise ValueError(f"{name} must be (T, N, D), not shape {tuple(x.shape)}")
        if not bool(((x == 0) | (x == 1)).all()):
            raise ValueError(f"{name} must hold only 0 and 1")
        if shape is not None and x.shape != shape:
            raise ValueError(f"{name} has shape {tuple(x.shape)}, expected {tuple(shape)}")
        shape = x.shape
    return shape


def _check_heads(heads, channels):
    if isinstance(heads, bool) or not isinstance(heads, int) or heads < 1:
        raise ValueError(f"heads must be a positive integer, not {heads!r}")
    if channels % heads:
        raise ValueError(f"heads ({heads}) must divide the channels ({channels})")
    return channels // heads


def _check_shift(shift):
    if isinstance(shift, bool) or not isinstance(shift, int) or not 1 <= shift <= 16:
        raise ValueError(f"shift must be an integer in [1, 16], not {shift!r}")


def _split_heads(x, heads):
    """``(T, N, D)`` → ``(T, heads, N, D / heads)``."""
    steps, tokens, channels = x.shape
    return x.reshape(steps, tokens, heads, channels // heads).transpose(1, 2)


def _split_qkv(q, k, v, *, heads, order, dtype):
    """Check ``q``, ``k``, ``v``, ``heads`` and ``order``; return the three tensors as ``dtype``,
    split per head (:func:`_split_heads`)."""
    _, _, channels = _check_spikes(q=q, k=k, v=v)
    _check_heads(heads, channels)
    check_order(order)
    return tuple(_split_heads(x.to(dtype), heads) for x in (q, k, v))


def _merge_heads(x):
    """Inverse of :func:`_split_heads`."""
    steps, heads, tokens, dh = x.shape
    return x.transpose(1, 2).reshape(steps, tokens, heads * dh)


def sdsa_v1_float(q, k, v):
    """SDT-V1 SDSA on float spikes: ``Q * LIF(sum_n K * V)``; returns ``(T, N, D)`` float."""
    _check_spikes(q=q, k=k, v=v)
    sums = (k * v).sum(dim=1)                              # (T, D)
    mask = lif_float(sums, tau=ATTENTION_TAU, v_threshold=ATTENTION_VTH)
    return q * mask.unsqueeze(1)


def sdsa_v1_int(q, k, v):
    """Integer SDT-V1 SDSA: ``out = Q AND OR_n(K AND V)``; int64 ``(T, N, D)`` of 0/1."""
    _check_spikes(q=q, k=k, v=v)
    q, k, v = (x.to(torch.int64) for x in (q, k, v))
    mask = (k & v).amax(dim=1, keepdim=True)               # OR over the tokens
    return q & mask


def kv_int(k, v, *, heads):
    """Per-head ``K^T @ V`` by AND-popcount: int64 ``(T, heads, D_h, D_h)``, entries <= N.

    Entry ``[t, h, i, j]`` counts the tokens where channel ``i`` of K and channel ``j`` of V of
    head ``h`` both spiked.
    """
    steps, tokens, channels = _check_spikes(k=k, v=v)
    _check_heads(heads, channels)
    kh = _split_heads(k.to(torch.int64), heads)
    vh = _split_heads(v.to(torch.int64), heads)
    return (kh.unsqueeze(-1) & vh.unsqueeze(-2)).sum(dim=2)


def head_product(qh, kh, vh, *, order):
    """``A = Q K^T V`` of tensors split per head (``(..., N, D_h)`` each) in ``order``:
    ``Q @ (K^T @ V)`` for ``kv_first``, ``(Q @ K^T) @ V`` for ``qk_first``."""
    check_order(order)
    if order == ORDER_KV_FIRST:
        return qh @ (kh.transpose(-1, -2) @ vh)
    return (qh @ kh.transpose(-1, -2)) @ vh


def scores_int(q, k, v, *, heads, order=ORDER_KV_FIRST):
    """The integer attention ``A`` (before the scale), int64 ``(T, N, D)``, entries <= N * D_h.

    ``order`` picks the multiplication order; both give the same integers (the test checks it).
    Integer matmuls stand for the hardware's select-and-add: every product has a 0/1 factor.
    """
    qh, kh, vh = _split_qkv(q, k, v, heads=heads, order=order, dtype=torch.int64)
    return _merge_heads(head_product(qh, kh, vh, order=order))


def ssa_float(q, k, v, *, heads=8, scale=0.125, order=ORDER_KV_FIRST):
    """SDSA-3 / Spikformer SSA on float spikes: ``LIF(scale * A)`` per head, ``(T, N, D)`` float.

    ``order="kv_first"`` computes ``Q @ (K^T @ V) * scale`` (Meta-SpikeFormer, Spikformer
    ImageNet); ``"qk_first"`` computes ``(Q @ K^T * scale) @ V`` (Spikformer CIFAR10; its DVS
    model scales after ``@ V`` with 0.25, which is the same number for a power-of-two scale).
    """
    qh, kh, vh = _split_qkv(q, k, v, heads=heads, order=order, dtype=torch.float32)
    if order == ORDER_KV_FIRST:
        x = head_product(qh, kh, vh, order=order) * scale
    else:
        x = (qh @ kh.transpose(-1, -2) * scale) @ vh
    return lif_float(_merge_heads(x), tau=ATTENTION_TAU, v_threshold=ATTENTION_VTH)


def ssa_int(q, k, v, *, heads=8, shift=3, order=ORDER_KV_FIRST):
    """Integer SSA: attention LIF on the integer ``A`` with threshold ``2**(shift - 1)``.

    Equal to ``ssa_float(..., scale=2**-shift, order=order)`` exactly: the LIF runs on
    ``A`` with ``F = T`` fractional bits
    (:func:`~spikeforge.contract.attention.lif_frac_bits`), where
    :func:`spikeforge.golden.lif.lif_int` equals the float LIF. Returns int64 ``(T, N, D)``.
    """
    _check_shift(shift)
    a = scores_int(q, k, v, heads=heads, order=order)
    return lif_int(a, threshold=lif_threshold(shift), tau_log2=1,
                   frac_bits=lif_frac_bits(a.shape[0]), reset="hard")


def sdsa_int(q, k, v, *, variant, heads, shift=3):
    """Golden of :class:`spikeforge.hdl.attention.SDSA`: the integer output spikes of ``variant``.

    ``variant`` is one of :data:`spikeforge.contract.attention.VARIANTS`: ``"v1"`` (``heads``
    and ``shift`` have no effect: the op is element-wise), ``"ssa"`` (``Q @ (K^T @ V)``) or
    ``"qk_first"`` (``(Q @ K^T) @ V``).
    """
    order = order_of(variant)                  # checks the variant
    if variant == VARIANT_V1:
        _check_heads(heads, q.shape[-1])
        return sdsa_v1_int(q, k, v)
    return ssa_int(q, k, v, heads=heads, shift=shift, order=order)
