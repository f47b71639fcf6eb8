"""Synaptic operations, firing rates and energy per layer and per inference, as the seeds count.

Energy (45 nm, Horowitz; the constants the seeds' users cite): ``E_AC = 0.9 pJ`` per accumulate
(SOP), ``E_MAC = 4.6 pJ`` per multiply-accumulate.

* SNN: ``E = E_MAC · MACs(first, real-input layer) + E_AC · Σ SOPs(all other layers, all T)``.
  The stem reads real (multi-bit) pixels, so it is counted as dense MACs, once per inference: its
  input is the same at every time step and it runs once. Every other layer is counted by the SOPs
  its spikes actually trigger (:mod:`spikeforge.golden.sops`), summed over the T steps; this is
  the measured form of the seeds' ``fr · T · FLOPs``.
* ANN: the same network counted dense, every layer as MACs, one pass (no T). :func:`ann_macs`
  counts it on the float network as trained (SepConv's depthwise and pointwise convs, RepConv's
  1×1 / depthwise 3×3 / 1×1), not on the fused convs the accelerator runs, which would inflate it.
* Attention: ``KᵀV`` by AND-popcount costs one accumulate per pair of coincident K and V spikes
  of a token and head; ``Q·(KV)`` one accumulate per Q spike per column of its head
  (``d_h``); ``(Q·Kᵀ)·V`` one per coincident Q/K pair plus one per nonzero score per V spike;
  SDT-V1's ``Σ K⊙V`` one per coincident pair. Dense: the same products with every spike set.
* Firing rate of a neuron layer: spikes / (neurons · T), as V1's ``firing_num.py``.
"""

from dataclasses import asdict, dataclass

import torch
from torch import nn

from spikeforge.contract.attention import VARIANT_KV_FIRST, VARIANT_V1

from .models.blocks import SDSA1, SDSA3, SSA
from .sops import conv2d_sops, popcount

__all__ = ["E_AC_PJ", "E_MAC_PJ", "LayerCount", "Counter", "attention_ops", "ann_macs"]

E_AC_PJ = 0.9
E_MAC_PJ = 4.6


@dataclass
class LayerCount:
    """Running totals of one layer over the samples seen.

    ``spikes_in`` (set input bits), ``events``/``sops``/``dense`` for convs and attention
    (``dense`` over all counted steps),
    ``spikes``/``neurons`` for neuron layers (``neurons`` counts neuron-steps), ``real_input``
    marks the first (MAC-counted) layer, ``steps`` the time steps a pass covers (1 for the
    time-invariant stem).
    """

    name: str
    op: str
    spikes_in: int = 0
    events: int = 0
    sops: int = 0
    dense: int = 0
    spikes: int = 0
    neurons: int = 0
    steps: int = 1
    real_input: bool = False


def attention_ops(q, k, v, *, variant, heads):
    """``(sops, dense)`` of one sample's attention on ``(T, N, D)`` 0/1 integer tensors."""
    steps, tokens, channels = q.shape
    dh = channels // heads
    if variant == VARIANT_V1:
        return int((k & v).sum()), steps * tokens * channels
    split = lambda x: x.reshape(steps, tokens, heads, dh).transpose(1, 2)    # (T, h, N, dh)
    qh, kh, vh = split(q), split(k), split(v)
    if variant == VARIANT_KV_FIRST:
        kv = int((kh.sum(-1) * vh.sum(-1)).sum())           # coincident K, V pairs per token
        return kv + int(q.sum()) * dh, 2 * steps * heads * tokens * dh * dh
    scores = qh @ kh.transpose(-1, -2)                      # (T, h, N, N)
    qk = int(scores.sum())
    av = int(((scores != 0).to(torch.int64) @ vh).sum())
    return qk + av, 2 * steps * heads * tokens * tokens * dh


class Counter:
    """Collects per-layer counts while a program runs; :meth:`summary` turns them into figures."""

    def __init__(self):
        self.layers = {}
        self.samples = 0

    def _get(self, name, op):
        if name not in self.layers:
            self.layers[name] = LayerCount(name=name, op=op)
        return self.layers[name]

    def conv(self, layer, x, weight_shape, *, steps, real_input=False):
        """Count a conv on integer-valued ``x`` (``(T·B, C, H, W)``)."""
        ops = conv2d_sops(x, weight_shape, stride=layer["stride"], padding=layer["padding"],
                          groups=layer["groups"], input_bits=layer["input_bits"])
        c = self._get(layer["name"], "conv")
        c.spikes_in += int(popcount(x, layer["input_bits"]).sum())
        c.events += ops.events
        c.sops += ops.sops
        c.dense += ops.dense_macs
        c.steps = steps
        c.real_input = real_input

    def neurons(self, layer, spikes, *, steps):
        c = self._get(layer["name"], "lif")
        c.spikes += int(spikes.sum())
        c.neurons += spikes.numel()
        c.steps = steps

    def attention(self, layer, spikes_in, sops, dense, *, steps):
        c = self._get(layer["name"], "attention")
        c.spikes_in += spikes_in
        c.sops += sops
        c.dense += dense
        c.steps = steps

    def summary(self, *, ann_macs=None):
        """Per-inference figures: the ``run`` command's JSON (see ``docs/models.md``).

        ``ann_macs``: the dense MACs of one ANN pass (:func:`ann_macs`) for ``energy_uj_ann``;
        without it the deployed (fused) network's dense ops stand in.
        """
        n = max(self.samples, 1)
        layers, rates = [], {}
        sops = macs = ann = 0
        for c in self.layers.values():
            row = {"name": c.name, "op": c.op}
            if c.op == "lif":
                rate = c.spikes / max(c.neurons, 1)
                rates[c.name] = round(rate, 6)
                row.update(spikes_out=c.spikes / n, firing_rate=round(rate, 6))
            else:
                row.update(spikes_in=c.spikes_in / n, events=c.events / n, sops=c.sops / n,
                           dense_ops=c.dense / n, counted_as="MAC" if c.real_input else "AC")
                if c.real_input:
                    macs += c.dense
                else:
                    sops += c.sops
                ann += c.dense / c.steps
            layers.append(row)
        e_snn = (E_MAC_PJ * macs + E_AC_PJ * sops) / n
        e_ann = E_MAC_PJ * (ann / n if ann_macs is None else ann_macs)
        return {
            "sops_per_inference": sops / n,
            "macs_per_inference": macs / n,
            "dense_ops_per_inference": ann / n,
            "ann_macs_per_inference": ann / n if ann_macs is None else ann_macs,
            "firing_rates": rates,
            "energy_uj_snn": e_snn * 1e-6,
            "energy_uj_ann": e_ann * 1e-6,
            "layers": layers,
        }

    def as_dicts(self):
        return [asdict(c) for c in self.layers.values()]


def ann_macs(model):
    """Dense MACs of one pass of a spike-driven float model counted as an ANN (one image).

    Counted from the shapes each layer sees in one forward pass (the conv of a ``(T·B, …)``
    batch counts one image, i.e. one pass with no T).
    Every ``Conv2d``/``Linear`` counts ``outputs · fan_in`` once; the attention products count
    ``2 · N · C · C/heads`` (``Q·(KᵀV)`` or ``(Q·Kᵀ)·V`` at the same cost order as coded) or
    ``N · C`` (SDT-V1).
    """
    total = [0]
    config = model.config

    def conv_hook(module, args, out):
        per_image = out[0].numel() if out.dim() == 4 else out.shape[-1]
        fan_in = module.in_channels // module.groups * module.kernel_size[0] * \
            module.kernel_size[1] if isinstance(module, nn.Conv2d) else module.in_features
        total[0] += per_image * fan_in

    def attn_hook(module, args, out):
        t, b, c, h, w = args[0].shape
        n = h * w
        total[0] += n * c if isinstance(module, SDSA1) else 2 * n * c * (c // module.heads)

    hooks = [m.register_forward_hook(conv_hook) for m in model.modules()
             if isinstance(m, (nn.Conv2d, nn.Linear))]
    hooks += [m.register_forward_hook(attn_hook) for m in model.modules()
              if isinstance(m, (SDSA1, SDSA3, SSA))]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, config.in_channels, config.image_size, config.image_size))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return total[0]
