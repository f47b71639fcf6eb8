"""Synaptic-operation counting, and the event list the spike encoder produces (golden of
``hdl.engine.encoder``).

Definitions (``docs/architecture.md``, "Figures every run reports")
    event
        One (output position, set input bit) pair: a nonzero spike inside an output's receptive
        field. A ``B``-bit input counts one event per set bit of its two's-complement pattern (the
        engine runs bit-plane by bit-plane). For a linear layer every token is one output
        position, so events are the set bits of the input.
    SOP
        One weight accumulate triggered by an event: ``events * C_out / groups``.
    dense MAC
        The dense-equivalent multiply-accumulates of the same layer: every input value times every
        weight it meets, ``outputs * C_out * C_in / groups * k * k`` (multi-bit inputs count once).
"""

from dataclasses import dataclass

import numpy as np

from spikeforge.contract.sizes import ceil_div

from .conv import _as_int64, _like, windows

__all__ = ["OpCount", "popcount", "conv2d_sops", "linear_sops", "spike_events"]


@dataclass(frozen=True)
class OpCount:
    """Counts of one layer: ``events`` (see module doc), ``sops`` and ``dense_macs``."""
    events: int
    sops: int
    dense_macs: int

    def __add__(self, other):
        return OpCount(self.events + other.events, self.sops + other.sops,
                       self.dense_macs + other.dense_macs)


def popcount(x, input_bits=1):
    """Set bits of each value's ``input_bits``-bit two's-complement pattern (int64, same type
    as ``x``: tensor or array)."""
    raw, was_torch = _as_int64(x, "x")
    raw = raw & ((1 << input_bits) - 1)
    count = np.zeros_like(raw)
    for b in range(input_bits):
        count += (raw >> b) & 1
    return _like(count, was_torch)


def conv2d_sops(x, weight_shape, *, stride=1, padding=0, groups=1, input_bits=1):
    """Events, SOPs and dense MACs of ``conv2d_int(x, weight)`` for ``weight`` of ``weight_shape``
    ``(C_out, C_in / groups, k, k)`` on ``x`` (B, C_in, H, W), a tensor or an array."""
    c_out, c_per_group, k, _ = weight_shape
    batch, c_in = x.shape[0], x.shape[1]
    if c_in != c_per_group * groups:
        raise ValueError(f"weight shape {tuple(weight_shape)} does not fit C_in={c_in}, "
                         f"groups={groups}")
    # (B, C_in, H_out, W_out, k, k)
    win = windows(_as_int64(popcount(x, input_bits), "x")[0], k, stride, padding)
    h_out, w_out = win.shape[2], win.shape[3]
    events = int(win.sum())
    return OpCount(events=events, sops=events * (c_out // groups),
                   dense_macs=batch * h_out * w_out * c_out * c_per_group * k * k)


def linear_sops(x, weight_shape, *, input_bits=1):
    """Events, SOPs and dense MACs of ``linear_int(x, weight)`` for ``weight`` (C_out, C_in)."""
    c_out, c_in = weight_shape
    if x.shape[-1] != c_in:
        raise ValueError(f"x (..., {x.shape[-1]}) does not fit weight shape {tuple(weight_shape)}")
    events = int(popcount(x, input_bits).sum())
    tokens = int(np.prod(x.shape)) // c_in
    return OpCount(events=events, sops=events * c_out, dense_macs=tokens * c_in * c_out)


def spike_events(words, *, word_bits, channels, planes=1, count=1, chunk=1):
    """The beats :class:`~spikeforge.hdl.engine.encoder.SpikeEncoder` emits for a stream of spike
    words.

    Parameters
    ----------
    words : list of (int, bool)
        ``(word, last)`` in stream order; a token is ``planes * ceil(channels / word_bits)``
        words, plane-major (``pack_words`` of each plane, only the token's final word marked
        ``last``).
    word_bits, channels, planes : int
        Bits per word, channels per plane, bit-planes per token.
    count : int
        Items per output beat.
    chunk : int
        Bits per item: ``1`` gives one item per set bit, ``chunk > 1`` one item per nonzero
        ``chunk``-bit slice of the word (its ``mask``).

    Returns
    -------
    list of ``(items, plane, last)`` where ``items`` is a tuple of ``(addr, mask)``, at most
    ``count`` of them, in increasing ``addr``. ``addr`` counts items within the plane: bit
    ``i`` of the plane's word ``w`` is item ``(w * word_bits + i) // chunk``. Bits of channels
    ``>= channels`` are ignored. A word's items fill ``ceil(n / count)`` beats; a token whose last
    word has no item ends with one beat with no item (so every token ends with a ``last`` beat).
    """
    per_plane = ceil_div(channels, word_bits)
    beats = []
    index = 0
    for word, last in words:
        plane, w = divmod(index, per_plane)
        valid_bits = min(word_bits, channels - w * word_bits)
        word &= (1 << valid_bits) - 1
        items = []
        for slot in range(word_bits // chunk):
            mask = (word >> (slot * chunk)) & ((1 << chunk) - 1)
            if mask:
                items.append(((w * word_bits) // chunk + slot, mask))
        chunks = [tuple(items[i:i + count]) for i in range(0, len(items), count)]
        if last and not chunks:
            chunks = [()]
        for n, chunk_items in enumerate(chunks):
            beats.append((chunk_items, plane % planes, bool(last) and n == len(chunks) - 1))
        index = 0 if last else index + 1
    return beats
