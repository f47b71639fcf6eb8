"""Runs a layer program (from :func:`~spikeforge.golden.quantize.quantize` or a model file) on the
golden integer ops, or on float ops with the folded float weights.

Backends
    ``golden``  the integer model: :func:`~spikeforge.golden.conv.conv2d_int` (bit-planes for
                multi-bit inputs, saturating accumulators), :func:`~spikeforge.golden.lif.lif_int`,
                :func:`~spikeforge.golden.residual.residual_add_int`,
                :func:`~spikeforge.golden.attention.sdsa_int`. Integers only; this is what the
                accelerator must reproduce bit for bit.
    ``float``   the same program with the folded float weights (BN folded, RepConv fused):
                ``F.conv2d`` in float64, :func:`~spikeforge.golden.lif.lif_float`, float adds,
                :func:`~spikeforge.golden.attention.ssa_float` / ``sdsa_v1_float``. Equal to the
                float ``nn.Module`` in eval mode up to float rounding.

Tensors are ``(T, B, C, H, W)``; a time-invariant tensor (the stem's output, computed once per
sample because the input repeats) has ``T = 1`` and is broadcast where it meets a ``T``-step one.
"""

import torch
import torch.nn.functional as F

from spikeforge.contract.attention import VARIANT_V1, order_of

from .attention import sdsa_int, sdsa_v1_float, ssa_float
from .conv import conv2d_int
from .energy import attention_ops
from .lif import lif_float, lif_int
from .residual import residual_add_int

__all__ = ["BACKENDS", "run_program", "layer_outputs", "predict", "evaluate"]

BACKENDS = ("float", "golden")


def _expand(x, steps):
    return x if x.shape[0] == steps else x.expand(steps, *x.shape[1:]).contiguous()


def _tokens(x):
    """``(T, C, H, W)`` of one sample → ``(T, N, C)``."""
    return x.flatten(2).transpose(1, 2)


class _Runner:
    def __init__(self, program, backend, counter):
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
        self.layers = program.layers
        self.arrays = program.arrays
        self.steps = program.time_steps
        self.golden = backend == "golden"
        self.counter = counter

    def run(self, images):
        return self.outputs(images)[self.layers[-1]["name"]]

    def outputs(self, images):
        """``{layer name: output}`` of every layer (and ``"input"``) for ``images``."""
        env = {"input": images.unsqueeze(0).to(torch.int64 if self.golden else torch.float64)}
        for layer in self.layers:
            op = layer["op"]
            src = env[layer["input"]] if "input" in layer else [env[n] for n in layer["inputs"]]
            env[layer["name"]] = getattr(self, "_" + op)(layer, src)
        return env

    def _conv(self, layer, x):
        name = layer["name"]
        suffix, dtype = ("", torch.int64) if self.golden else ("_f", torch.float64)
        w = torch.as_tensor(self.arrays[f"{name}.weight{suffix}"]).to(dtype)
        b = torch.as_tensor(self.arrays[f"{name}.bias{suffix}"]).to(dtype)
        steps, batch = x.shape[:2]
        flat = x.reshape(steps * batch, *x.shape[2:])
        if self.counter is not None:
            counted = flat if self.golden else flat.round().to(torch.int64)
            self.counter.conv(layer, counted, tuple(w.shape), steps=steps,
                              real_input=layer["input"] == "input")
        if self.golden:
            y = conv2d_int(flat, w, b, stride=layer["stride"], padding=layer["padding"],
                           groups=layer["groups"], acc_bits=layer["acc_bits"],
                           input_bits=layer["input_bits"])
        else:
            y = F.conv2d(flat, w, b, stride=layer["stride"], padding=layer["padding"],
                         groups=layer["groups"])
        return y.reshape(steps, batch, *y.shape[1:])

    def _lif(self, layer, x):
        x = _expand(x, self.steps)
        if self.golden:
            s = lif_int(x, threshold=int(layer["threshold"]), tau_log2=layer["tau_log2"],
                        frac_bits=layer["frac_bits"], reset=layer["reset"],
                        membrane_bits=layer["membrane_bits"])
        else:
            s = lif_float(x, tau=float(1 << layer["tau_log2"]), v_threshold=layer["vth"])
        if self.counter is not None:
            self.counter.neurons(layer, s, steps=self.steps)
        return s

    def _add(self, layer, ab):
        a, b = ab
        if self.golden:
            return residual_add_int(a, b, mode=layer["mode"], bits=layer["bits"])
        return a + b

    def _attention(self, layer, qkv):
        q, k, v = (_expand(x, self.steps) for x in qkv)
        out = torch.empty_like(q)
        variant, heads = layer["variant"], layer["heads"]
        for i in range(q.shape[1]):
            qi, ki, vi = (_tokens(x[:, i]) for x in (q, k, v))
            if self.golden:
                o = sdsa_int(qi, ki, vi, variant=variant, heads=heads, shift=layer["shift"])
            elif variant == VARIANT_V1:
                o = sdsa_v1_float(qi, ki, vi)
            else:
                o = ssa_float(qi, ki, vi, heads=heads, scale=2.0 ** -layer["shift"],
                              order=order_of(variant))
            if self.counter is not None:
                ints = [x.round().to(torch.int64) for x in (qi, ki, vi)]
                sops, dense = attention_ops(*ints, variant=variant, heads=heads)
                spikes = sum(int(x.sum()) for x in ints)
                self.counter.attention(layer, spikes, sops, dense, steps=self.steps)
            out[:, i] = o.transpose(1, 2).reshape(out.shape[0], *out.shape[2:]).to(out.dtype)
        if self.counter is not None:
            # the attention LIF's (SDT-V1: the masked Q's) output spikes, as a neuron layer
            self.counter.neurons({"name": layer["name"] + ".lif"}, out, steps=self.steps)
        return out

    def _sum_tokens(self, layer, x):
        return x.sum(dim=(3, 4), keepdim=True)

    def _readout(self, layer, x):
        return x.sum(dim=0).flatten(1)


def run_program(program, images, *, backend="golden", counter=None, batch_size=64,
                progress=None):
    """Logits ``(B, classes)`` of ``images`` (int pixels ``(B, C, H, W)``).

    ``golden``: int64 logits summed over T (in units of the head's weight step); ``float``: the
    float logits summed over T. ``counter`` (an :class:`~spikeforge.golden.energy.Counter`)
    collects per-layer SOPs and firing rates; ``progress(n)`` is called after each batch of ``n``.
    """
    runner = _Runner(program, backend, counter)
    out = []
    with torch.no_grad():
        for i in range(0, len(images), batch_size):
            out.append(runner.run(images[i:i + batch_size]))
            if progress is not None:
                progress(len(out[-1]))
    if counter is not None:
        counter.samples += len(images)
    return torch.cat(out)


def layer_outputs(program, images, *, backend="golden"):
    """Every layer's output for ``images`` (int pixels ``(B, C, H, W)``): ``{name: tensor}``,
    ``(T, B, C, H, W)`` per layer (the readout's ``(B, classes)``), plus ``"input"``."""
    with torch.no_grad():
        return _Runner(program, backend, None).outputs(torch.as_tensor(images))


def predict(program, images, *, backend="golden", counter=None, progress=None):
    """Predicted classes (argmax of :func:`run_program`'s logits; ties go to the lower class)."""
    return run_program(program, images, backend=backend, counter=counter,
                       progress=progress).argmax(dim=1)


def evaluate(program, split, *, backend="golden", counter=None, progress=None):
    """Top-1 accuracy (0..1) of the program on a :class:`~spikeforge.golden.data.Digits` split."""
    predicted = predict(program, split.images, backend=backend, counter=counter,
                        progress=progress)
    return float((predicted == split.labels).to(torch.float64).mean()) if len(split) else 0.0
