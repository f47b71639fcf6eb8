"""From a trained float model to the integer layer program the accelerator runs.

Steps
    1. **Fold** every BN into the conv before it (eval-mode running statistics); **fuse** each
       RepConv + BN into one dense 3×3 conv with bias (:func:`fuse_repconv`) and SepConv's
       depthwise k×k + pointwise 1×1 + BN into one dense k×k conv (:func:`fuse_sepconv_tail`), so
       every conv of a spike-driven model reads binary spikes (or a multi-bit integer through
       bit-planes: the stem's 5-bit pixels, Spikformer's SEW spike counts).
    2. **Scale groups.** Every conv output is a current read by LIF neurons. Because the LIF is
       homogeneous (scaling the input and the threshold by the same factor gives the same spikes),
       each group of convs feeding the same neurons gets one integer threshold ``Θ`` and the
       weight step ``Vth / Θ``: the conv's integer output lands directly in its consumer's units,
       with no rescaling multiplier anywhere. A membrane-shortcut residual stream is one group
       (the stem or downsample conv that starts it and every branch's last conv write into it;
       every LIF that reads it, and the head's, compares with ``Θ``); every other LIF is its own
       group. ``Θ = floor(q_max · Vth / max|w|)`` with ``q_max = 2**(W-1) - 1`` is the finest
       step at which all of the group's weights fit W bits.
    3. **Quantize** weights to W bits and biases to ``acc_bits`` at that step (round to nearest).
    4. The attention keeps its integer form: ``A = Q·(KᵀV)``, scale ``2**-shift`` as a shift
       (0.125, shift 3, in the seeds; 0.5 in the tiny models), attention LIF threshold
       ``2**(shift-1)`` in units of ``A`` (exact, see
       :mod:`spikeforge.golden.attention`). The head's mean over tokens becomes a sum: the head
       LIF's threshold is ``N · Θ`` (Spikformer, whose head has no LIF: the linear layer reads the
       sum of spike counts and its weights are divided by ``N``). The mean over T becomes a sum
       (argmax is unchanged).

The program is a list of layer dicts (see ``docs/model-file.md``) plus, per conv, integer arrays
and the folded float arrays, so the same program runs on the float ops (the folded float model)
and on the golden integer ops (:mod:`spikeforge.golden.integer_model`).
"""

import math

import torch

from spikeforge.contract.attention import variant_of
from spikeforge.contract.sizes import signed_range

from .attention import ATTENTION_VTH
from .data import PIXEL_BITS
from .models.blocks import ATTENTION_THRESHOLD, SDSA1, SDSA3, ConvBlock, MembraneMLP
from .models.config import SPIKE_DRIVEN, NotSpikeDriven

__all__ = ["fold_bn", "fuse_repconv", "fuse_sepconv_tail", "quantize", "Program",
           "QUANT_DEFAULTS", "describe_layer"]

QUANT_DEFAULTS = {"weight_bits": 8, "stream_bits": 16, "acc_bits": 24}


def fold_bn(weight, bias, bn):
    """``(w, b)`` of ``bn(conv(x))`` as one conv (float64), with BN's running statistics."""
    weight = weight.detach().double()
    bias = torch.zeros(weight.shape[0], dtype=torch.float64) if bias is None \
        else bias.detach().double()
    a = bn.weight.detach().double() / torch.sqrt(bn.running_var.double() + bn.eps)
    shape = (-1,) + (1,) * (weight.dim() - 1)
    return weight * a.view(shape), (bias - bn.running_mean.double()) * a + bn.bias.detach().double()


def _bn_affine(bn):
    a = bn.weight.detach().double() / torch.sqrt(bn.running_var.double() + bn.eps)
    return a, bn.bias.detach().double() - bn.running_mean.double() * a


def fuse_repconv(module):
    """One dense 3×3 conv (padding 1) equal to a :class:`~.models.blocks.RepConvBN` in eval mode.

    RepConv is 1×1 (W1) → BN-and-pad (a1, c1; the border is c1) → depthwise 3×3 (D, no padding)
    → 1×1 (W3) → BN (a2, c2), then the outer BN (a3, c3). With ``g = a3·a2``::

        K[o, i] = g[o] · Σ_c W3[o, c] · a1[c] · D[c] · W1[c, i]
        b[o]    = g[o] · Σ_c W3[o, c] · c1[c] · ΣD[c] + a3[o] · c2[o] + c3[o]

    Returns float64 ``(weight (C_out, C_in, 3, 3), bias (C_out,))``.
    """
    rep = module.rep
    w1 = rep.pw1.weight.detach().double()[:, :, 0, 0]          # (C, C_in)
    a1, c1 = _bn_affine(rep.bnpad.bn)
    d = rep.dw.weight.detach().double()[:, 0]                   # (C, 3, 3)
    w3 = rep.pw2.weight.detach().double()[:, :, 0, 0]          # (C_out, C)
    a2, c2 = _bn_affine(rep.bn)
    a3, c3 = _bn_affine(module.bn)
    g = a3 * a2
    weight = torch.einsum("oc,c,cuv,ci->oiuv", w3, a1, d, w1) * g.view(-1, 1, 1, 1)
    bias = g * (w3 @ (c1 * d.sum(dim=(1, 2)))) + a3 * c2 + c3
    return weight, bias


def fuse_sepconv_tail(sep):
    """One dense k×k conv equal to SepConv's depthwise k×k → pointwise 1×1 → BN (eval mode).

    ``K[o, m, u, v] = pw2[o, m] · dw[m, u, v]``, then the BN folded; float64.
    """
    dw = sep.dw.weight.detach().double()[:, 0]                  # (M, k, k)
    pw = sep.pw2.conv.weight.detach().double()[:, :, 0, 0]      # (C, M)
    return fold_bn(pw[:, :, None, None] * dw[None], None, sep.pw2.bn)


class Program:
    """An integer layer program under construction, then finished by :meth:`finalize`.

    Attributes
    ----------
    layers : list of dict
        JSON-able layer descriptions (``op``, ``name``, inputs and attributes).
    arrays : dict of str → numpy array
        ``"<layer>.weight"``/``"<layer>.bias"`` (int64) and ``"<layer>.weight_f"``/
        ``"<layer>.bias_f"`` (float64, folded float model).
    groups : dict of str → int
        The integer threshold ``Θ`` of each scale group.
    """

    def __init__(self, *, time_steps, weight_bits, stream_bits, acc_bits):
        self.time_steps = time_steps
        self.weight_bits = weight_bits
        self.stream_bits = stream_bits
        self.acc_bits = acc_bits
        self.layers = []
        self.arrays = {}
        self.groups = {}
        self._pending = []          # (layer, group, vth, float weight, float bias)

    def _add(self, layer):
        if any(l["name"] == layer["name"] for l in self.layers):
            raise ValueError(f"duplicate layer name {layer['name']!r}")
        self.layers.append(layer)
        return layer["name"]

    def conv(self, name, src, weight, bias, *, group, stride=1, padding=0, groups=1,
             input_bits=1, time_invariant=False, vth=1.0):
        layer = {"op": "conv", "name": name, "input": src, "in_channels": weight.shape[1] * groups,
                 "out_channels": weight.shape[0], "kernel": weight.shape[2], "stride": stride,
                 "padding": padding, "groups": groups, "input_bits": input_bits,
                 "acc_bits": self.acc_bits, "group": group, "time_invariant": time_invariant}
        self._pending.append((layer, group, vth, weight, bias))
        return self._add(layer)

    def lif(self, name, src, *, group, vth=1.0, count=1):
        """A LIF reading ``src``: threshold ``count · Θ(group)`` (float: ``count · vth``)."""
        return self._add({"op": "lif", "name": name, "input": src, "group": group, "count": count,
                          "vth": vth * count, "threshold": None, "tau_log2": 1,
                          "frac_bits": self.time_steps, "reset": "hard",
                          "membrane_bits": None})

    def add(self, name, a, b, *, mode, bits):
        return self._add({"op": "add", "name": name, "inputs": [a, b], "mode": mode,
                          "bits": bits})

    def attention(self, name, q, k, v, *, variant, heads, shift=3):
        return self._add({"op": "attention", "name": name, "inputs": [q, k, v],
                          "variant": variant, "heads": heads, "shift": shift})

    def sum_tokens(self, name, src):
        return self._add({"op": "sum_tokens", "name": name, "input": src})

    def readout(self, name, src):
        return self._add({"op": "readout", "name": name, "input": src})

    def finalize(self):
        """Choose every group's ``Θ``, quantize weights and biases, fill LIF thresholds."""
        qmax, bias_max = signed_range(self.weight_bits)[1], signed_range(self.acc_bits)[1]
        biggest = {}
        for _, group, vth, weight, _ in self._pending:
            peak = float(weight.abs().max()) / vth
            biggest[group] = max(biggest.get(group, 0.0), peak)
        for group, peak in biggest.items():
            self.groups[group] = max(1, math.floor(qmax / peak)) if peak > 0 else 1
        for layer, group, vth, weight, bias in self._pending:
            step = vth / self.groups[group]
            w_int = torch.round(weight / step).clamp(-qmax, qmax).to(torch.int64)
            b_int = torch.round(bias / step).clamp(-bias_max, bias_max).to(torch.int64)
            name = layer["name"]
            layer["scale"] = step
            self.arrays[f"{name}.weight"] = w_int.numpy()
            self.arrays[f"{name}.bias"] = b_int.numpy()
            self.arrays[f"{name}.weight_f"] = weight.numpy()
            self.arrays[f"{name}.bias_f"] = bias.numpy()
        for layer in self.layers:
            if layer["op"] == "lif":
                if layer["group"] not in self.groups:
                    raise ValueError(f"LIF {layer['name']!r} reads group {layer['group']!r} "
                                     "that no conv writes")
                layer["threshold"] = layer["count"] * self.groups[layer["group"]]
                # the membrane holds currents up to the saturated accumulator, F bits more
                layer["membrane_bits"] = self.acc_bits + layer["frac_bits"] + 1
        self._pending = []
        return self


def _conv_args(conv):
    return {"stride": conv.stride[0], "padding": conv.padding[0], "groups": conv.groups}


class _Walker:
    """Emits the program of a :class:`~.models.SpikingTransformer`, block by block."""

    def __init__(self, model, program, input_bits):
        self.model = model
        self.p = program
        self.input_bits = input_bits
        self.sew = model.kind["shortcut"] == "sew"
        self.stream = None          # name of the tensor holding the residual stream
        self.group = None           # its scale group (membrane) / its bits (SEW)
        self.stream_max = 0         # SEW: largest spike count the stream can hold

    def run(self):
        cfg = self.model.config
        self._stem()
        for si, stage in enumerate(self.model.stages):
            if "downsample" in stage:
                ds = stage["downsample"]
                group = f"s{si}.stream"
                spikes = self.p.lif(f"s{si}.ds.lif", self.stream, group=self.group)
                w, b = fold_bn(ds.conv.conv.weight, ds.conv.conv.bias, ds.conv.bn)
                self.stream = self.p.conv(f"s{si}.ds.conv", spikes, w, b, group=group,
                                          **_conv_args(ds.conv.conv))
                self.group = group
            for bi, block in enumerate(stage["blocks"]):
                prefix = f"s{si}.b{bi}"
                if isinstance(block, ConvBlock):
                    self._branch(prefix + ".sep", self._sepconv(prefix + ".sep", block.sep))
                    self._branch(prefix + ".ch", self._channel(prefix + ".ch", block.channel))
                else:
                    self._branch(prefix + ".attn", self._attention(prefix + ".attn", block.attn))
                    self._branch(prefix + ".mlp", self._mlp(prefix + ".mlp", block.mlp))
        self._head(cfg)

    # -- stem and head ------------------------------------------------------------------------
    def _stem(self):
        cfg, stem = self.model.config, self.model.stem
        if not self.sew:
            w, b = fold_bn(stem.conv.conv.weight, stem.conv.conv.bias, stem.conv.bn)
            self.group = "stem.stream" if "downsample" in self.model.stages[0] \
                else "s0.stream"
            self.stream = self.p.conv("stem", "input", w * cfg.input_scale, b, group=self.group,
                                      input_bits=self.input_bits, time_invariant=True,
                                      **_conv_args(stem.conv.conv))
            return
        x, bits = "input", self.input_bits
        for i, (conv, lif) in enumerate(zip(stem.convs, stem.lifs)):
            w, b = fold_bn(conv.conv.weight, conv.conv.bias, conv.bn)
            scale = cfg.input_scale if i == 0 else 1.0
            x = self.p.conv(f"stem{i}", x, w * scale, b, group=f"stem{i}.lif", input_bits=bits,
                            time_invariant=i == 0, **_conv_args(conv.conv))
            x = self.p.lif(f"stem{i}.lif", x, group=f"stem{i}.lif")
            bits = 1
        self.stream, self.stream_max = x, 1

    def _head(self, cfg):
        head = self.model.head
        pooled = self.p.sum_tokens("head.sum", self.stream)
        tokens = self._tokens()
        w = head.fc.weight.detach().double()[:, :, None, None]
        b = head.fc.bias.detach().double()
        if head.lif is not None:
            # the LIF on the token sum with threshold N·Θ equals the LIF on the mean
            x = self.p.lif("head.lif", pooled, group=self.group, count=tokens)
            bits = 1
        else:
            # SEW: the linear layer reads the sum of spike counts, so its weights take the 1/N
            x, bits = pooled, (tokens * self.stream_max).bit_length()
            w = w / tokens
        fc = self.p.conv("head.fc", x, w, b, group="head.fc", input_bits=bits)
        self.p.readout("logits", fc)

    def _tokens(self):
        size = self.model.config.image_size
        size = _out_size(size, self.model.config.stem)
        for spec in self.model.config.stages:
            if spec.get("downsample") is not None:
                size = _out_size(size, [spec["downsample"]])
        return size * size

    # -- residual stream ----------------------------------------------------------------------
    def _branch(self, prefix, out):
        if self.sew:
            self.stream_max += 1
            bits = self.stream_max.bit_length()
            self.stream = self.p.add(prefix + ".add", self.stream, out, mode="sew", bits=bits)
        else:
            self.stream = self.p.add(prefix + ".add", self.stream, out, mode="membrane",
                                     bits=self.p.stream_bits)

    def _read_stream(self, name):
        """Spikes of a branch's first LIF (membrane) or the multi-bit SEW stream itself."""
        if self.sew:
            return self.stream, self.stream_max.bit_length()
        return self.p.lif(name, self.stream, group=self.group), 1

    def _conv_lif(self, name, src, convbn, bits=1, weight_bias=None):
        w, b = weight_bias or fold_bn(convbn.conv.weight, convbn.conv.bias, convbn.bn)
        args = _conv_args(convbn.conv) if weight_bias is None else {"padding": w.shape[2] // 2}
        cur = self.p.conv(name, src, w, b, group=name + ".lif", input_bits=bits, **args)
        return self.p.lif(name + ".lif", cur, group=name + ".lif")

    def _to_stream(self, name, src, weight, bias, padding=0):
        """A branch's last conv: onto the stream's scale (membrane) or into a LIF (SEW)."""
        if self.sew:
            cur = self.p.conv(name, src, weight, bias, group=name + ".lif", padding=padding)
            return self.p.lif(name + ".lif", cur, group=name + ".lif")
        return self.p.conv(name, src, weight, bias, group=self.group, padding=padding)

    # -- blocks -------------------------------------------------------------------------------
    def _sepconv(self, prefix, sep):
        x, _ = self._read_stream(prefix + ".lif1")
        x = self._conv_lif(prefix + ".pw1", x, sep.pw1)
        w, b = fuse_sepconv_tail(sep)
        return self._to_stream(prefix + ".tail", x, w, b, padding=sep.dw.padding[0])

    def _channel(self, prefix, ch):
        x, _ = self._read_stream(prefix + ".lif1")
        x = self._conv_lif(prefix + ".conv1", x, ch.conv1)
        w, b = fold_bn(ch.conv2.conv.weight, ch.conv2.conv.bias, ch.conv2.bn)
        return self._to_stream(prefix + ".conv2", x, w, b, padding=ch.conv2.conv.padding[0])

    def _attention(self, prefix, attn):
        x, bits = self._read_stream(prefix + ".lif")
        if isinstance(attn, SDSA3):
            qkv = [self._conv_lif(f"{prefix}.{n}", x, None, weight_bias=fuse_repconv(m))
                   for n, m in (("q", attn.q), ("k", attn.k), ("v", attn.v))]
            a = self._attn_op(prefix, qkv, attn)
            w, b = fuse_repconv(attn.proj)
            return self._to_stream(prefix + ".proj", a, w, b, padding=1)
        qkv = [self._conv_lif(f"{prefix}.{n}", x, m, bits=bits)
               for n, m in (("q", attn.q), ("k", attn.k), ("v", attn.v))]
        a = self._attn_op(prefix, qkv, attn)
        w, b = fold_bn(attn.proj.conv.weight, attn.proj.conv.bias, attn.proj.bn)
        return self._to_stream(prefix + ".proj", a, w, b)

    def _attn_op(self, prefix, qkv, attn):
        if isinstance(attn, SDSA1):
            return self.p.attention(prefix + ".sdsa", *qkv, variant=variant_of(attn.block),
                                    heads=attn.heads)
        assert ATTENTION_THRESHOLD == ATTENTION_VTH == 0.5
        variant = variant_of(attn.block, attn.order)
        return self.p.attention(prefix + ".sdsa", *qkv, variant=variant, heads=attn.heads,
                                shift=attn.shift)

    def _mlp(self, prefix, mlp):
        if isinstance(mlp, MembraneMLP):
            x, _ = self._read_stream(prefix + ".lif1")
            x = self._conv_lif(prefix + ".fc1", x, mlp.fc1)
            w, b = fold_bn(mlp.fc2.conv.weight, mlp.fc2.conv.bias, mlp.fc2.bn)
            return self._to_stream(prefix + ".fc2", x, w, b)
        x, bits = self._read_stream(None)
        x = self._conv_lif(prefix + ".fc1", x, mlp.fc1, bits=bits)
        w, b = fold_bn(mlp.fc2.conv.weight, mlp.fc2.conv.bias, mlp.fc2.bn)
        return self._to_stream(prefix + ".fc2", x, w, b)


#: Words for the parts of a program layer name (``s1.b0.attn.q.lif``: stage 1, block 0, ...).
_PARTS = {
    "stem": "stem conv", "ds": "downsample", "sep": "SepConv", "ch": "ChannelConv",
    "attn": "attention", "mlp": "MLP", "head": "head", "logits": "logits (sum over T)",
    "lif": "LIF", "lif1": "input LIF (reads the residual stream)", "pw1": "pw 1×1 conv",
    "tail": "dw k×k + pw 1×1 conv",
    "conv": "conv", "conv1": "3×3 conv 1", "conv2": "3×3 conv 2", "q": "Q conv", "k": "K conv",
    "v": "V conv", "sdsa": "Q·(KᵀV)", "proj": "projection conv",
    "fc1": "fc1 1×1 conv", "fc2": "fc2 1×1 conv", "fc": "classifier", "add": "residual add",
    "sum": "sum over tokens",
}


def describe_layer(name):
    """A reader's name for a program layer: ``"s1.b0.attn.q.lif"`` → ``"stage 1, block 0,
    attention, Q conv, LIF"`` (the program names are the stable keys; this is for people)."""
    words = []
    for part in name.split("."):
        if part == "lif" and words and words[-1] in ("downsample", "attention"):
            words.append(_PARTS["lif1"])
        elif part == "lif" and words and words[-1] == _PARTS["sdsa"]:
            words.append("attention LIF (output spikes)")
        elif part[:1] in "sb" and part[1:].isdigit():
            words.append(("stage " if part[0] == "s" else "block ") + part[1:])
        elif part.startswith("stem") and part[4:].isdigit():
            words.append(f"stem conv {part[4:]}")
        else:
            words.append(_PARTS.get(part, part))
    return ", ".join(words)


def _out_size(size, convs):
    for c in convs:
        size = (size + 2 * c["padding"] - c["kernel"]) // c["stride"] + 1
    return size


def quantize(model, *, weight_bits=QUANT_DEFAULTS["weight_bits"],
             stream_bits=QUANT_DEFAULTS["stream_bits"], acc_bits=QUANT_DEFAULTS["acc_bits"],
             input_bits=PIXEL_BITS):
    """The integer :class:`Program` of a trained float model (put in eval mode here).

    Parameters
    ----------
    model : SpikingTransformer
        Meta-SpikeFormer, SDT-V1 or Spikformer. Spikeformer raises :class:`NotSpikeDriven`.
    weight_bits : int
        W: signed weight width (2..16).
    stream_bits : int
        Signed width of the membrane-shortcut residual stream (saturating adds).
    acc_bits : int
        Signed width every conv output saturates to (and the biases are held in).
    input_bits : int
        Unsigned width of the raw input pixels (5 for the digits, 0..16).
    """
    arch = model.config.arch
    if arch not in SPIKE_DRIVEN:
        raise NotSpikeDriven(
            f"arch {arch!r} is not spike-driven (real-valued softmax attention, LayerNorm, PLIF): "
            "it has no integer model and cannot be compiled for the accelerator")
    for name, value, low, high in (("weight_bits", weight_bits, 2, 16),
                                   ("stream_bits", stream_bits, 4, 32),
                                   ("acc_bits", acc_bits, 8, 48),
                                   ("input_bits", input_bits, 1, 16)):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"{name} must be an integer in [{low}, {high}], not {value!r}")
    model.eval()
    program = Program(time_steps=model.config.time_steps, weight_bits=weight_bits,
                      stream_bits=stream_bits, acc_bits=acc_bits)
    with torch.no_grad():
        _Walker(model, program, input_bits).run()
    return program.finalize()
