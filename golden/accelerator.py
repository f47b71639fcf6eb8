"""The accelerator's golden model: executes a compiled program and its memory images — nothing
from the model file — with the golden integer ops, memory by memory, and its cost model.

It decodes every descriptor with :func:`spikeforge.contract.program.unpack`, reads each
layer's operands from the ``spikes`` / ``values`` memories by the descriptor's bases and
strides, reads weights, biases and thresholds back out of their images (the engine's lane-group
layout), runs the golden op (:func:`~.conv.conv2d_int`, :func:`~.lif.lif_int`,
:func:`~.residual.residual_add_int`, :func:`~.attention.sdsa_int`) and writes the output where
the descriptor says. A batch of ``B`` samples runs as ``B`` accelerators sharing the parameter
memories. This is what the RTL is compared with; it imports the program format from
``spikeforge.contract`` only (never the compiler).

Cost model (per sample, per layer; ``docs/accelerator.md``)
    ``bound``: CONV ``Σ_t max(events_t, tokens) · ceil(C_out / P)`` (``events_t``: the set
    input bits inside each output's receptive field at step ``t``; depthwise: the nonzero
    P-channel slices), ATTENTION the attention unit's bound per step (v1 ``2N``; ssa
    ``max(N, K_t) + max(N · heads, Q_t)``; qk_first ``N + max(N, P_t)``), 0 for the others.
    ``cycles``: ``bound`` plus, for LIF / ADD / SUM_TOKENS / READOUT, one row per cycle
    (``Σ steps · tokens · lane_groups`` of the input) since this format runs them as their own
    descriptors, plus :data:`~spikeforge.contract.program.DESCRIPTOR_WORDS` cycles per
    descriptor fetch.
"""

from dataclasses import dataclass

import numpy as np
import torch

from spikeforge.contract.program import (DESCRIPTOR_WORDS, FORMAT_VERSION, VARIANT_CODES,
                                         AddMode, Memory, Op, Reset, Variant, unpack,
                                         weight_address)

from .attention import sdsa_int
from .conv import conv2d_int, windows
from .integer_model import layer_outputs
from .lif import lif_int
from .residual import residual_add_int
from .sops import popcount

__all__ = ["Accelerator", "AcceleratorRun", "decode_program", "load_images",
           "output_addresses", "input_words", "golden_sample", "golden_layer_outputs", "compare"]

_VARIANT_NAMES = {code: name for name, code in VARIANT_CODES.items()}


def decode_program(words):
    """The descriptors (dicts) of a program, INPUT first, up to (without) END. Raises
    ``ValueError`` for a wrong version, an unknown opcode or a program without END."""
    words = [int(w) for w in words]
    out = []
    for i in range(0, len(words) - DESCRIPTOR_WORDS + 1, DESCRIPTOR_WORDS):
        d = unpack(words[i:i + DESCRIPTOR_WORDS])
        where = f"descriptor {i // DESCRIPTOR_WORDS}"
        if d["version"] != FORMAT_VERSION:
            raise ValueError(f"{where}: version {d['version']}, expected {FORMAT_VERSION}")
        if d["op"] not in set(Op):
            raise ValueError(f"{where}: unknown opcode {d['op']}")
        if d["op"] == Op.END:
            if not out or out[0]["op"] != Op.INPUT:
                raise ValueError("the program must start with an INPUT descriptor")
            return out
        out.append(d)
    raise ValueError("the program has no END descriptor")


def load_images(directory):
    """``{memory: array}`` of the ``<memory>.npy`` images a compile wrote into ``directory``."""
    from pathlib import Path
    images = {}
    for memory in Memory:
        path = Path(directory) / f"{memory.name.lower()}.npy"
        if path.exists():
            images[memory.name.lower()] = np.load(path)
    return images


@dataclass
class AcceleratorRun:
    """Result of :meth:`Accelerator.run`: ``outputs[i]`` the output of layer ``i`` (descriptor
    ``i + 1``) in golden shape (``(T, B, C, H, W)``, the readout ``(B, classes)``), ``scores``
    ``(B, classes)``, and per layer the summed ``bound`` and ``cycles`` over the batch."""
    outputs: list
    scores: torch.Tensor
    bound: list
    cycles: list


class Accelerator:
    """An accelerator of configuration ``config`` (:class:`spikeforge.contract.configs.Config`)
    loaded with ``images`` (``{memory: array}``: at least ``program``, ``weights``, ``biases``,
    ``thresholds``)."""

    def __init__(self, config, images):
        self.config = config
        self.lanes = config.lanes
        self.word_bits = config.word_bits
        self.program = decode_program(images["program"])
        self.params = {name: np.asarray(images.get(name, np.zeros((0, self.lanes))),
                                        dtype=np.int64).reshape(-1, self.lanes)
                       for name in ("weights", "biases", "thresholds")}
        self.layers = self.program[1:]

    # -- memory access ------------------------------------------------------------------------
    def _rows(self, base, steps, step, tokens, token, groups):
        t = np.arange(steps)[:, None, None] * step
        n = np.arange(tokens)[None, :, None] * token
        g = np.arange(groups)[None, None, :]
        return base + t + n + g                                 # (steps, tokens, groups)

    def _steps(self, d, prefix):
        return 1 if d[f"{prefix}_step"] == 0 else d["in_steps"]

    def read(self, d, prefix, *, token, bits, channels, height, width):
        """Operand ``prefix`` of descriptor ``d`` as ``(T, B, C, H, W)`` int64."""
        steps = self._steps(d, prefix)
        base, step = d[f"{prefix}_base"], d[f"{prefix}_step"]
        tokens = height * width
        if Memory(d["src_mem"]) == Memory.SPIKES:
            words = -(-channels // self.word_bits)
            idx = self._rows(base, steps, step, tokens, token, bits * words)
            raw = self.spikes[:, idx]                           # (B, T, N, bits*words)
            raw = raw.reshape(*raw.shape[:3], bits, words)
            c = np.arange(channels)
            planes = (raw[..., c // self.word_bits] >> (c % self.word_bits)) & 1
            x = (planes << np.arange(bits)[:, None]).sum(axis=3)    # (B, T, N, C)
        else:
            groups = -(-channels // self.lanes)
            idx = self._rows(base, steps, step, tokens, token, groups)
            x = self.values[:, idx].reshape(len(self.values), steps, tokens, -1)[..., :channels]
        x = torch.from_numpy(np.ascontiguousarray(x))
        return x.permute(1, 0, 3, 2).reshape(steps, -1, channels, height, width)

    def write(self, d, x):
        """Write ``x`` ``(T, B, C, H, W)`` where descriptor ``d``'s output goes."""
        memory = Memory(d["dst_mem"])
        steps, batch, channels = x.shape[:3]
        tokens = d["out_tokens"]
        x = x.reshape(steps, batch, channels, tokens).permute(1, 0, 3, 2).numpy()   # B,T,N,C
        if memory == Memory.SPIKES:
            bits, words = d["out_bits"], d["out_plane_words"]
            idx = self._rows(d["dst_base"], steps, d["dst_step"], tokens, d["dst_token"],
                             bits * words)
            padded = np.zeros((*x.shape[:3], words * self.word_bits), dtype=np.int64)
            padded[..., :channels] = x
            planes = (padded[..., None, :] >> np.arange(bits)[:, None]) & 1
            planes = planes.reshape(*x.shape[:3], bits, words, self.word_bits)
            packed = (planes << np.arange(self.word_bits)).sum(axis=-1)
            self.spikes[:, idx] = packed.reshape(*x.shape[:3], bits * words)
        else:
            target = self.values if memory == Memory.VALUES else self.scores
            groups = d["lane_groups"]
            idx = self._rows(d["dst_base"], steps, d["dst_step"], tokens, d["dst_token"],
                             groups)
            padded = np.zeros((*x.shape[:3], groups * self.lanes), dtype=np.int64)
            padded[..., :channels] = x
            target[:, idx] = padded.reshape(*x.shape[:3], groups, self.lanes)

    def _lane_values(self, memory, base, groups, channels):
        rows = self.params[memory][base:base + groups]
        return torch.from_numpy(rows.reshape(-1)[:channels].copy())

    def weights(self, d):
        """The ``(C_out, C_in / groups, k, k)`` weights of a CONV descriptor, from the image."""
        rows, groups, gbits = d["rows"], d["lane_groups"], d["group_bits"]
        cout, cin, k = d["out_channels"], d["in_channels"], d["kernel"]
        addr = np.array([[d["weight_base"] + weight_address(r, g, gbits) for g in range(groups)]
                         for r in range(rows)])
        m = self.params["weights"][addr].reshape(rows, -1)[:, :cout]     # (rows, C_out)
        per = 1 if d["depthwise"] else cin
        w = m.reshape(k * k, per, cout).transpose(2, 1, 0).reshape(cout, per, k, k)
        return torch.from_numpy(np.ascontiguousarray(w))

    # -- execution ----------------------------------------------------------------------------
    def run(self, pixels, *, trace=None):
        """Run the program on ``pixels`` (int ``(B, C, H, W)``); see :class:`AcceleratorRun`.
        ``trace(index, descriptor, accelerator)``, if given, is called before each layer
        (descriptor ``index``) runs and once more with ``index`` = the END descriptor's, so a
        caller can copy the memories (``spikes``, ``values``, ``scores``) between layers."""
        pixels = torch.as_tensor(pixels).to(torch.int64)
        batch = len(pixels)
        config = self.config
        self.spikes = np.zeros((batch, config.spikes_depth), dtype=np.int64)
        self.values = np.zeros((batch, config.values_depth, self.lanes), dtype=np.int64)
        self.scores = np.zeros((batch, config.scores_depth, self.lanes), dtype=np.int64)
        self.write(self.program[0], pixels.unsqueeze(0))
        outputs, bound, cycles = [], [], []
        for index, d in enumerate(self.layers, start=1):
            if trace is not None:
                trace(index, d, self)
            op = Op(d["op"])
            y, b, extra = getattr(self, "_" + op.name.lower())(d)
            self.write(d, y if op != Op.READOUT else y[None, :, :, None, None])
            outputs.append(self._read_back(d, y))
            bound.append(b)
            cycles.append(b + extra + DESCRIPTOR_WORDS * batch)
        if trace is not None:
            trace(len(self.layers) + 1, None, self)
        scores = outputs[-1]
        return AcceleratorRun(outputs=outputs, scores=scores, bound=bound, cycles=cycles)

    def _read_back(self, d, y):
        """The output of ``d`` as read back from its memory (what the host would read)."""
        src = {"src_mem": d["dst_mem"], "in_steps": y.shape[0] if y.dim() == 5 else 1,
               "z_base": d["dst_base"], "z_step": d["dst_step"] or 1}
        shape = dict(token=d["dst_token"], bits=d["out_bits"], channels=d["out_channels"],
                     height=d["out_height"], width=d["out_width"])
        if Memory(d["dst_mem"]) == Memory.SCORES:
            saved, self.values = self.values, self.scores
            src["src_mem"] = Memory.VALUES
            try:
                x = self.read(src, "z", **shape)
            finally:
                self.values = saved
            return x[0].flatten(1)
        return self.read(src, "z", **shape)

    def _operand(self, d, prefix, *, token=None, bits=None):
        return self.read(d, prefix, token=d["a_token"] if token is None else token,
                         bits=d["in_bits"] if bits is None else bits,
                         channels=d["in_channels"], height=d["in_height"],
                         width=d["in_width"])

    def _rows_pass(self, d):
        """Cycles of an element-wise pass: one row per cycle over the input."""
        return d["in_steps"] * d["in_tokens"] * d["lane_groups"] * len(self.spikes)

    def _conv(self, d):
        x = self._operand(d, "a")
        steps, batch = x.shape[:2]
        flat = x.reshape(steps * batch, *x.shape[2:])
        w = self.weights(d)
        groups = d["in_channels"] if d["depthwise"] else 1
        b = self._lane_values("biases", d["bias_base"], d["lane_groups"], d["out_channels"])
        y = conv2d_int(flat, w, b, stride=d["stride"], padding=d["padding"], groups=groups,
                       acc_bits=d["out_bits"], input_bits=d["in_bits"])
        y = y.reshape(steps, batch, *y.shape[1:])
        return y, self._conv_bound(d, flat), 0

    def _conv_bound(self, d, flat):
        k, s, p, g = d["kernel"], d["stride"], d["padding"], d["lane_groups"]
        counts = popcount(flat.numpy(), d["in_bits"])             # (T*B, C, H, W)
        if d["depthwise"]:
            lanes = self.lanes
            slices = [(counts[:, i:i + lanes] > 0).any(axis=1, keepdims=True)
                      for i in range(0, counts.shape[1], lanes)]
            work = sum(windows(sl.astype(np.int64), k, s, p).sum(axis=(1, 2, 3, 4, 5))
                       for sl in slices)
        else:
            work = windows(counts.sum(axis=1, keepdims=True), k, s, p).sum(
                axis=(1, 2, 3, 4, 5)) * g
        return int(np.maximum(work, d["out_tokens"] * g).sum())

    def _lif(self, d):
        x = self._operand(d, "a")
        steps = d["steps"]
        x = x.expand(steps, *x.shape[1:]) if x.shape[0] != steps else x
        theta = self._lane_values("thresholds", d["threshold_base"], d["lane_groups"],
                                  d["out_channels"])
        s = lif_int(x.permute(0, 1, 3, 4, 2), threshold=theta, tau_log2=d["tau_log2"],
                    frac_bits=d["frac_bits"], reset=Reset(d["reset"]).name.lower(),
                    membrane_bits=d["membrane_bits"])
        return s.permute(0, 1, 4, 2, 3), 0, self._rows_pass(d) * steps // d["in_steps"]

    def _add(self, d):
        mode = AddMode(d["mode"])
        a = self._operand(d, "a")
        b = self._operand(d, "b", token=d["b_token"], bits=d["b_bits"])
        y = residual_add_int(a, b, mode=mode.name.lower(), bits=d["out_bits"])
        return y, 0, self._rows_pass(d)

    def _attention(self, d):
        q, k, v = (self._operand(d, p) for p in "abc")
        steps = d["steps"]
        q, k, v = (x.expand(steps, *x.shape[1:]) for x in (q, k, v))
        variant = _VARIANT_NAMES[Variant(d["variant"])]
        out = torch.empty_like(q)
        bound = 0
        for i in range(q.shape[1]):
            qi, ki, vi = (x[:, i].flatten(2).transpose(1, 2) for x in (q, k, v))
            o = sdsa_int(qi, ki, vi, variant=variant, heads=d["heads"], shift=d["shift"])
            out[:, i] = o.transpose(1, 2).reshape(out.shape[0], *out.shape[2:])
            bound += self._attention_bound(d, qi, ki)
        return out, bound, 0

    def _attention_bound(self, d, q, k):
        n, heads = d["in_tokens"], d["heads"]
        variant = Variant(d["variant"])
        if variant == Variant.V1:
            return 2 * n * q.shape[0]
        if variant == Variant.KV_FIRST:
            ks, qs = k.sum(dim=(1, 2)), q.sum(dim=(1, 2))
            return int((ks.clamp(min=n) + qs.clamp(min=n * heads)).sum())
        dh = d["head_channels"]
        qh = q.reshape(q.shape[0], n, heads, dh).transpose(1, 2)
        kh = k.reshape(k.shape[0], n, heads, dh).transpose(1, 2)
        pairs = ((qh @ kh.transpose(-1, -2)) > 0).any(dim=1).sum(dim=(1, 2))
        return int((n + pairs.clamp(min=n)).sum())

    def _sum_tokens(self, d):
        x = self._operand(d, "a")
        return x.sum(dim=(3, 4), keepdim=True), 0, self._rows_pass(d)

    def _readout(self, d):
        x = self._operand(d, "a")
        return x.sum(dim=0).flatten(1), 0, self._rows_pass(d)


def output_addresses(d, config):
    """``(memory, addresses)``: every word descriptor ``d`` writes, in ascending order
    (``dst_base + t * dst_step + n * dst_token + w``, ``w`` over the planes' words of a
    ``spikes`` output or the lane groups of a row memory). What a host reads back for a
    layer's output."""
    memory = Memory(d["dst_mem"])
    width = (d["out_bits"] * d["out_plane_words"] if memory == Memory.SPIKES
             else d["lane_groups"])
    steps = 1 if Op(d["op"]) == Op.READOUT else d["steps"]
    t = np.arange(steps)[:, None, None] * d["dst_step"]
    n = np.arange(d["out_tokens"])[None, :, None] * d["dst_token"]
    w = np.arange(width)[None, None, :]
    return memory, np.unique((d["dst_base"] + t + n + w).reshape(-1))


def input_words(config, images, pixels):
    """``(addresses, words)``: the spike words a host writes for ``pixels`` (int ``(B, C, H,
    W)``), the INPUT descriptor's output (``words[b]`` at ``addresses``, ascending)."""
    accelerator = Accelerator(config, images)
    accelerator.spikes = np.zeros((len(pixels), config.spikes_depth), dtype=np.int64)
    accelerator.write(accelerator.program[0], torch.as_tensor(np.asarray(pixels))[None])
    _, addresses = output_addresses(accelerator.program[0], config)
    return addresses, accelerator.spikes[:, addresses]


def golden_sample(config, images, pixels):
    """One sample (``pixels`` ``(C, H, W)``) through the program: ``(accelerator, snaps, run,
    addresses, words)``: the memories before each descriptor (``snaps[i]``: ``{"spikes",
    "values", "scores"}`` before descriptor ``i``; ``snaps[L + 1]``: at the end), the
    :class:`AcceleratorRun` and the input's :func:`input_words`."""
    accelerator = Accelerator(config, images)
    snaps = {}

    def trace(index, d, acc):
        snaps[index] = {name: getattr(acc, name)[0].copy()
                        for name in ("spikes", "values", "scores")}

    with torch.no_grad():
        run = accelerator.run(torch.as_tensor(np.asarray(pixels)[None]), trace=trace)
        addresses, words = input_words(config, images, np.asarray(pixels)[None])
    return accelerator, snaps, run, addresses, words[0]


def golden_layer_outputs(program, images):
    """Every layer's output of the golden integer model (:mod:`.integer_model`) on ``images``:
    ``{name: tensor}`` (the readout's ``(B, classes)``)."""
    return layer_outputs(program, images)


def compare(run, reference, names):
    """Mismatches of an :class:`AcceleratorRun` against :func:`golden_layer_outputs`: per layer
    (``names[i]`` is layer ``i``'s name) the number of samples whose output differs; and the
    samples whose scores differ. Returns ``({name: count}, score_count)``."""
    per_layer = {}
    for name, got in zip(names, run.outputs):
        want = reference[name]
        batch_dim = 0 if want.dim() == 2 else 1
        if got.shape != want.shape:
            per_layer[name] = want.shape[batch_dim]
            continue
        diff = (got != want).transpose(0, batch_dim).flatten(1)
        per_layer[name] = int(diff.any(dim=1).sum())
    scores = int((run.scores != reference[names[-1]]).any(dim=1).sum())
    return per_layer, scores
