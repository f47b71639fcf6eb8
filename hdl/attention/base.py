"""Parameters, checks and ports that every attention unit shares (the package's contract)."""

from amaranth.lib import wiring, stream
from amaranth.lib.wiring import In, Out

from ..layouts import kv_pair, spike_word
from ..params import check_int

__all__ = ["AttentionUnit", "check_heads"]


def check_heads(heads, channels):
    """Return ``heads`` if it is a positive integer that divides ``channels``; raise naming
    ``heads`` otherwise."""
    check_int("heads", heads, min=1, max=channels)
    if channels % heads:
        raise ValueError(f"heads must divide channels ({channels}), not {heads!r}")
    return heads


class AttentionUnit(wiring.Component):
    """Base of the attention units: their parameters, checks and ports (see
    :mod:`spikeforge.hdl.attention` for the stream contract).

    Parameters
    ----------
    tokens : int
        N, tokens per time step.
    channels : int
        D, channels of Q, K, V and of the output.
    heads : int
        Heads; must divide ``channels``.
    steps : int
        T, time steps per sample.
    shift : int
        Scale of the attention scores, ``2**-shift`` (3 for 0.125, 2 for 0.25).

    Attributes
    ----------
    head_channels : int
        D_h, channels per head: head ``h`` owns channels ``h * D_h ... (h + 1) * D_h - 1``.

    Members
    -------
    kv : In(stream.Signature(kv_pair(word_bits=channels)))
    q : In(stream.Signature(spike_word(word_bits=channels)))
    o : Out(stream.Signature(spike_word(word_bits=channels)))
        ``last`` is always 1 (a word is a whole token).
    """

    def __init__(self, *, tokens, channels, heads=8, steps=4, shift=3):
        self._tokens = check_int("tokens", tokens, min=1, max=1 << 16)
        self._channels = check_int("channels", channels, min=1, max=4096)
        self._heads = check_heads(heads, channels)
        self._steps = check_int("steps", steps, min=1, max=64)
        self._shift = check_int("shift", shift, min=1, max=16)
        super().__init__({
            "kv": In(stream.Signature(kv_pair(word_bits=channels))),
            "q": In(stream.Signature(spike_word(word_bits=channels))),
            "o": Out(stream.Signature(spike_word(word_bits=channels))),
        })

    tokens = property(lambda self: self._tokens)
    channels = property(lambda self: self._channels)
    heads = property(lambda self: self._heads)
    steps = property(lambda self: self._steps)
    shift = property(lambda self: self._shift)
    head_channels = property(lambda self: self._channels // self._heads)
