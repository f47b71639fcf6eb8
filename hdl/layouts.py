"""Stream payload layouts shared by every unit, defined once.

The *lane beat* is the common currency between units (``shared/DESIGN.md``): one beat carries
``lanes`` values for one group of ``lanes`` consecutive channels of one token at one time step.
Channel ``c`` of a token travels in beat ``group = c // lanes``, lane ``c % lanes``. ``first`` and
``last`` mark the first (group 0) and the last group of that token, so a consumer can frame tokens
without counting. Currents into the LIF array, accumulator values out of the engine and spikes out
of the LIF array are all lane beats; only the element shape differs.
"""

from amaranth.hdl import unsigned
from amaranth.lib import data

from .params import check_int

__all__ = ["lane_beat", "spike_word", "kv_pair"]


def lane_beat(*, lanes, shape, groups):
    """Layout of one lane-parallel beat.

    Parameters
    ----------
    lanes : int
        Values per beat (P).
    shape : shape-castable
        Shape of one value: ``1`` for spikes, ``signed(w)`` for currents and accumulators.
    groups : int
        Channel groups per token (``ceil(channels / lanes)``); sizes the ``group`` field.

    Fields
    ------
    data : ArrayLayout(shape, lanes)
    group : unsigned, index of the channel group
    first, last : 1 bit, first and last beat of the token
    """
    check_int("lanes", lanes, min=1)
    check_int("groups", groups, min=1)
    return data.StructLayout({
        "data": data.ArrayLayout(shape, lanes),
        "group": unsigned(max(1, (groups - 1).bit_length())),
        "first": 1,
        "last": 1,
    })


def spike_word(*, width):
    """Layout of one packed spike word: bit ``i`` is the spike of channel ``i`` of the word.

    ``last`` marks the last word of a token (a token of ``C`` channels is ``ceil(C / width)``
    words).
    """
    check_int("width", width, min=1)
    return data.StructLayout({"data": unsigned(width), "last": 1})


def kv_pair(*, width):
    """Layout of one token's K and V spikes for the attention units: ``k``, ``v``, one bit per
    channel (bit ``c`` is channel ``c``), ``width`` channels each."""
    check_int("width", width, min=1)
    return data.StructLayout({"k": unsigned(width), "v": unsigned(width)})
