"""Packing of spike maps into words, as the spike memory holds them (golden of ``hdl.packer``)."""

import numpy as np

from spikeforge.contract.sizes import ceil_div

__all__ = ["pack_words", "unpack_words"]


def pack_words(spikes, word_bits):
    """Pack a ``(tokens, channels)`` 0/1 array into words of ``word_bits`` bits.

    Returns a list of ``(word, last)`` pairs in stream order: each token gives
    ``ceil(channels / word_bits)`` words, channel ``c`` in bit ``c % word_bits`` of word
    ``c // word_bits``, ``last`` set on the token's final word.
    """
    spikes = np.asarray(spikes)
    if spikes.ndim != 2:
        raise ValueError(f"spikes must be 2-D (tokens, channels), not shape {spikes.shape}")
    if not np.isin(spikes, (0, 1)).all():
        raise ValueError("spikes must hold only 0 and 1")
    tokens, channels = spikes.shape
    n_words = ceil_div(channels, word_bits)
    words = []
    for token in spikes:
        for w in range(n_words):
            bits = token[w * word_bits:(w + 1) * word_bits]
            value = sum(int(b) << i for i, b in enumerate(bits))
            words.append((value, w == n_words - 1))
    return words


def unpack_words(words, word_bits, channels):
    """Inverse of :func:`pack_words`: ``[(word, last), ...]`` → ``(tokens, channels)`` uint8
    array."""
    n_words = ceil_div(channels, word_bits)
    if len(words) % n_words:
        raise ValueError(f"{len(words)} words do not make whole tokens of {n_words} words")
    rows = []
    for start in range(0, len(words), n_words):
        bits = []
        for value, _ in words[start:start + n_words]:
            bits.extend((value >> i) & 1 for i in range(word_bits))
        rows.append(bits[:channels])
    return np.array(rows, dtype=np.uint8).reshape(-1, channels)
