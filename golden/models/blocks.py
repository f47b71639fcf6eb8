"""Building blocks of the spike-driven transformers, as the seeds' released code computes them.

Every block works on multi-step tensors ``(T, B, C, H, W)`` (time, batch, channels, height,
width). Convolutions and batch norms run on the ``T·B`` images at once; neurons run over ``T``.
The structure follows the seeds' released code, BICLab/Spike-Driven-Transformer-V2 (Meta-SpikeFormer),
BICLab/Spike-Driven-Transformer (V1) and ZK-Zhou/spikformer (``docs/models.md`` has the table);
each class names the seed layer it stands for.
"""

import torch
import torch.nn.functional as F
from torch import nn

from spikeforge.contract.attention import BLOCK_SDSA1, BLOCK_SDSA3, BLOCK_SSA, ORDER_KV_FIRST

from ..attention import head_product
from ..neurons import LIF

__all__ = [
    "Conv2d", "ConvBN", "RepConv", "RepConvBN", "SepConv", "ChannelConv", "ConvBlock",
    "DownSampling", "SpikingStem", "SDSA3", "SDSA1", "SSA", "MembraneMLP", "SpikeMLP",
    "TransformerBlock", "Head", "ATTENTION_SHIFT", "ATTENTION_SCALE", "ATTENTION_THRESHOLD",
]

#: Meta-SpikeFormer / Spikformer attention: ``S = LIF(0.125 · Q·KᵀV)`` with ``Vth = 0.5``; the
#: scale is ``2**-ATTENTION_SHIFT`` (a shift in the integer model).
ATTENTION_SHIFT = 3
ATTENTION_SCALE = 2.0 ** -ATTENTION_SHIFT
ATTENTION_THRESHOLD = 0.5


def over_time(module, x):
    """Apply a per-image module to ``(T, B, ...)`` by folding time into the batch."""
    y = module(x.flatten(0, 1))
    return y.reshape(x.shape[0], x.shape[1], *y.shape[1:])


class Conv2d(nn.Conv2d):
    """``nn.Conv2d`` whose dense 1×1 stride-1 case runs as a matrix product.

    Same parameters and result (up to float rounding), but on CPU a batched matmul is several
    times faster than the convolution kernels for these small maps, forward and backward.
    """

    def forward(self, x):
        if self.kernel_size != (1, 1) or self.stride != (1, 1) or self.padding != (0, 0) \
                or self.groups != 1:
            return super().forward(x)
        y = torch.matmul(self.weight[:, :, 0, 0], x.flatten(2)).unflatten(2, x.shape[2:])
        return y if self.bias is None else y + self.bias.view(1, -1, 1, 1)


class ConvBN(nn.Module):
    """``Conv2d`` followed by ``BatchNorm2d`` (the seeds' ``conv`` + ``bn`` pairs)."""

    def __init__(self, cin, cout, kernel=1, *, stride=1, padding=0, groups=1, bias=False):
        super().__init__()
        self.conv = Conv2d(cin, cout, kernel, stride=stride, padding=padding, groups=groups,
                           bias=bias)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        return over_time(lambda y: self.bn(self.conv(y)), x)


class _BNAndPad(nn.Module):
    """BN, then a 1-pixel border filled with what the BN gives for a zero input (V2's
    ``BNAndPadLayer``), so that the following unpadded depthwise 3×3 sees a padded BN output."""

    def __init__(self, channels, pad=1):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels)
        self.pad = pad

    def pad_values(self):
        bn = self.bn
        return bn.bias.detach() - bn.running_mean * bn.weight.detach() / torch.sqrt(
            bn.running_var + bn.eps)

    def forward(self, x):
        y = F.pad(self.bn(x), [self.pad] * 4)
        values = self.pad_values().view(1, -1, 1, 1)
        p = self.pad
        y[:, :, :p, :] = values
        y[:, :, -p:, :] = values
        y[:, :, :, :p] = values
        y[:, :, :, -p:] = values
        return y


class RepConv(nn.Module):
    """V2's ``RepConv``: 1×1 → BN-and-pad → depthwise 3×3 (no padding) → 1×1 → BN.

    Linear end to end, so it folds exactly into one dense 3×3 convolution (padding 1) plus a
    bias (:func:`spikeforge.golden.quantize.fuse_repconv`).
    """

    def __init__(self, cin, cout):
        super().__init__()
        self.pw1 = Conv2d(cin, cin, 1, bias=False)
        self.bnpad = _BNAndPad(cin)
        self.dw = nn.Conv2d(cin, cin, 3, groups=cin, bias=False)
        self.pw2 = Conv2d(cin, cout, 1, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        return self.bn(self.pw2(self.dw(self.bnpad(self.pw1(x)))))


class RepConvBN(nn.Module):
    """``nn.Sequential(RepConv(C, C), BatchNorm2d(C))``: V2's Q/K/V and projection convs."""

    def __init__(self, cin, cout):
        super().__init__()
        self.rep = RepConv(cin, cout)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        return over_time(lambda y: self.bn(self.rep(y)), x)


class SepConv(nn.Module):
    """V2 ``SepConv``: LIF → pw 1×1 (C→eC) → BN → LIF → dw k×k → pw 1×1 (eC→C) → BN.

    There is no neuron between the depthwise and the second pointwise conv; the quantizer fuses
    the two into one dense k×k conv so that every conv sees binary spikes.
    """

    def __init__(self, dim, *, expansion=2, kernel=7):
        super().__init__()
        med = expansion * dim
        self.lif1 = LIF()
        self.pw1 = ConvBN(dim, med, 1)
        self.lif2 = LIF()
        self.dw = nn.Conv2d(med, med, kernel, padding=kernel // 2, groups=med, bias=False)
        self.pw2 = ConvBN(med, dim, 1)

    def forward(self, x):
        x = self.lif2(self.pw1(self.lif1(x)))
        return self.pw2(over_time(self.dw, x))


class ChannelConv(nn.Module):
    """V2 ``MS_ConvBlock`` second half: LIF → 3×3 (C→rC) → BN → LIF → 3×3 (rC→C) → BN."""

    def __init__(self, dim, *, ratio=4):
        super().__init__()
        self.lif1 = LIF()
        self.conv1 = ConvBN(dim, ratio * dim, 3, padding=1)
        self.lif2 = LIF()
        self.conv2 = ConvBN(ratio * dim, dim, 3, padding=1)

    def forward(self, x):
        return self.conv2(self.lif2(self.conv1(self.lif1(x))))


class ConvBlock(nn.Module):
    """V2 ``MS_ConvBlock``: ``x = x + SepConv(x); x = x + ChannelConv(x)`` (membrane shortcuts)."""

    def __init__(self, dim, *, expansion=2, kernel=7, ratio=4):
        super().__init__()
        self.sep = SepConv(dim, expansion=expansion, kernel=kernel)
        self.channel = ChannelConv(dim, ratio=ratio)

    def forward(self, x):
        x = x + self.sep(x)
        return x + self.channel(x)


class DownSampling(nn.Module):
    """V2 ``MS_DownSampling``: [LIF →] conv (with bias) → BN. The first layer has no LIF: it is
    the stem, fed with real-valued pixels."""

    def __init__(self, cin, cout, *, kernel=3, stride=2, padding=1, first=False):
        super().__init__()
        self.lif = None if first else LIF()
        self.conv = ConvBN(cin, cout, kernel, stride=stride, padding=padding, bias=True)

    def forward(self, x):
        if self.lif is not None:
            x = self.lif(x)
        return self.conv(x)


class SpikingStem(nn.Module):
    """A spiking convolutional stem: ``[conv → BN → LIF] × n`` on the pixels.

    Stands in for Spikformer V2's Spiking Convolutional Stem, whose code is not public: this
    assumes plain conv-BN-LIF layers, downsampling by strided convs instead of max-pooling, and
    no SEW shortcut inside the stem. Output: binary spikes.
    """

    def __init__(self, cin, layers):
        super().__init__()
        self.convs = nn.ModuleList()
        self.lifs = nn.ModuleList()
        for spec in layers:
            self.convs.append(ConvBN(cin, spec["width"], spec["kernel"], stride=spec["stride"],
                                     padding=spec["padding"]))
            self.lifs.append(LIF())
            cin = spec["width"]

    def forward(self, x):
        for conv, lif in zip(self.convs, self.lifs):
            x = lif(conv(x))
        return x


def _split_heads(x, heads):
    """``(T, B, C, H, W)`` → ``(T, B, heads, N, C // heads)``; channel ``c`` is in head
    ``c // (C // heads)`` (the seeds' reshape)."""
    t, b, c, h, w = x.shape
    return x.flatten(3).transpose(-1, -2).reshape(t, b, h * w, heads, c // heads).permute(
        0, 1, 3, 2, 4)


def _merge_heads(x, shape):
    t, b, heads, n, d = x.shape
    return x.transpose(3, 4).reshape(shape)


def product_attention(q, k, v, *, heads, order=ORDER_KV_FIRST):
    """``Q·(Kᵀ·V)`` per head on ``(T, B, C, H, W)`` spikes, back in that shape (unscaled).

    ``order="qk_first"`` computes ``(Q·Kᵀ)·V`` instead; the two are equal in exact arithmetic.
    """
    shape = q.shape
    q, k, v = (_split_heads(y, heads) for y in (q, k, v))
    return _merge_heads(head_product(q, k, v, order=order), shape)


class _ProductAttention(nn.Module):
    """The layers SDSA-3 and SSA share: ``q``, ``k``, ``v`` (``conv(dim, dim)``) with their LIFs,
    ``LIF_0.5(2**-shift · Q·(KᵀV))`` per head (:meth:`attend`) and the projection ``proj``."""

    def __init__(self, dim, conv, *, heads, order, shift):
        super().__init__()
        if not isinstance(heads, int) or heads < 1 or dim % heads:
            raise ValueError(f"heads must divide the width {dim}, not {heads!r}")
        if isinstance(shift, bool) or not isinstance(shift, int) or not 1 <= shift <= 16:
            raise ValueError(f"shift must be an integer in [1, 16], not {shift!r}")
        self.heads, self.order, self.shift = heads, order, shift
        self.q, self.k, self.v = conv(dim, dim), conv(dim, dim), conv(dim, dim)
        self.q_lif, self.k_lif, self.v_lif = LIF(), LIF(), LIF()
        self.attn_lif = LIF(v_threshold=ATTENTION_THRESHOLD)
        self.proj = conv(dim, dim)

    def attend(self, x):
        q, k, v = self.q_lif(self.q(x)), self.k_lif(self.k(x)), self.v_lif(self.v(x))
        a = product_attention(q, k, v, heads=self.heads, order=self.order)
        return self.attn_lif(a * 2.0 ** -self.shift)


class SDSA3(_ProductAttention):
    """Meta-SpikeFormer attention (V2 ``MS_Attention_RepConv_qkv_id``, SDSA-3).

    head LIF → Q, K, V = RepConv+BN → LIF each → ``LIF_0.5(2**-shift · Q·(KᵀV))`` per head
    (scale 0.125 in V2) → projection RepConv+BN (real-valued: it feeds the membrane shortcut).
    """

    block = BLOCK_SDSA3

    def __init__(self, dim, *, heads=8, order=ORDER_KV_FIRST, shift=ATTENTION_SHIFT):
        super().__init__(dim, RepConvBN, heads=heads, order=order, shift=shift)
        self.head_lif = LIF()

    def forward(self, x):
        return self.proj(self.attend(self.head_lif(x)))


class SDSA1(nn.Module):
    """Spike-Driven Transformer V1 attention (``MS_SSA_Conv``): head LIF → Q, K, V = 1×1 conv +
    BN → LIF → ``m = LIF_0.5(Σ_tokens K ⊙ V)`` per channel → ``Q ⊙ m`` → 1×1 conv + BN."""

    block = BLOCK_SDSA1
    order = None                                 # no product, no order

    def __init__(self, dim, *, heads=8):
        super().__init__()
        self.heads = heads
        self.head_lif = LIF()
        self.q, self.k, self.v = ConvBN(dim, dim), ConvBN(dim, dim), ConvBN(dim, dim)
        self.q_lif, self.k_lif, self.v_lif = LIF(), LIF(), LIF()
        self.kv_lif = LIF(v_threshold=ATTENTION_THRESHOLD)
        self.proj = ConvBN(dim, dim)

    def forward(self, x):
        x = self.head_lif(x)
        q, k, v = self.q_lif(self.q(x)), self.k_lif(self.k(x)), self.v_lif(self.v(x))
        m = self.kv_lif((k * v).sum(dim=(3, 4), keepdim=True))
        return self.proj(q * m)


class SSA(_ProductAttention):
    """Spikformer SSA (ImageNet code): Q, K, V = 1×1 conv + BN + LIF on the (multi-bit) SEW
    stream → ``LIF_0.5(0.125 · Q·(KᵀV))`` → 1×1 conv + BN + LIF (spikes, for the SEW add)."""

    block = BLOCK_SSA

    def __init__(self, dim, *, heads=8, order=ORDER_KV_FIRST, shift=ATTENTION_SHIFT):
        super().__init__(dim, ConvBN, heads=heads, order=order, shift=shift)
        self.proj_lif = LIF()

    def forward(self, x):
        return self.proj_lif(self.proj(self.attend(x)))


class MembraneMLP(nn.Module):
    """V2 ``MS_MLP``: LIF → 1×1 (bias) → BN → LIF → 1×1 (bias) → BN (real-valued output)."""

    def __init__(self, dim, *, ratio=4):
        super().__init__()
        self.lif1 = LIF()
        self.fc1 = ConvBN(dim, ratio * dim, 1, bias=True)
        self.lif2 = LIF()
        self.fc2 = ConvBN(ratio * dim, dim, 1, bias=True)

    def forward(self, x):
        return self.fc2(self.lif2(self.fc1(self.lif1(x))))


class SpikeMLP(nn.Module):
    """Spikformer MLP: 1×1 → BN → LIF → 1×1 → BN → LIF (spikes, for the SEW add)."""

    def __init__(self, dim, *, ratio=4):
        super().__init__()
        self.fc1 = ConvBN(dim, ratio * dim, 1, bias=True)
        self.lif1 = LIF()
        self.fc2 = ConvBN(ratio * dim, dim, 1, bias=True)
        self.lif2 = LIF()

    def forward(self, x):
        return self.lif2(self.fc2(self.lif1(self.fc1(x))))


class TransformerBlock(nn.Module):
    """``x = x + attn(x); x = x + mlp(x)``: a membrane shortcut when the branches end in BN
    (Meta-SpikeFormer, SDT-V1), a SEW add of spike counts when they end in LIF (Spikformer)."""

    def __init__(self, attn, mlp):
        super().__init__()
        self.attn = attn
        self.mlp = mlp

    def forward(self, x):
        x = x + self.attn(x)
        return x + self.mlp(x)


class Head(nn.Module):
    """Mean over tokens → [LIF →] linear → mean over T (logits).

    Meta-SpikeFormer and SDT-V1 put a LIF on the real-valued residual stream before the linear
    layer; Spikformer's SEW stream is already integer spike counts and has none.
    """

    def __init__(self, dim, classes, *, spiking=True):
        super().__init__()
        self.lif = LIF() if spiking else None
        self.fc = nn.Linear(dim, classes)

    def forward(self, x):
        x = x.flatten(3).mean(3)
        if self.lif is not None:
            x = self.lif(x)
        return self.fc(x).mean(0)
