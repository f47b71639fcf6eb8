"""Stream payload layouts of every unit, defined once (tests and drivers pack and unpack with
these too, never by slicing bits by hand).

The *lane beat* is the common currency between units (``docs/architecture.md``): one beat carries
``lanes`` values for one lane group of ``lanes`` consecutive channels of one token at one time
step. Channel ``c`` of a token travels in beat ``group = c // lanes``, lane ``c % lanes``.
``first`` and ``last`` mark the first (group 0) and the last lane group of that token, so a
consumer can frame tokens without counting. Currents into the LIF array, accumulator values out
of the engine and spikes out of the LIF array are all lane beats; only the element shape
differs. The *spike word* packs one bit per channel; the other layouts are the internal streams
and configuration ports of the engine, the attention units and the LIF array.
"""

from amaranth.hdl import unsigned, signed
from amaranth.lib import data

from spikeforge.contract.program import group_bits

from .params import check_int

__all__ = ["index_shape", "lane_beat", "spike_word", "kv_pair", "threshold_row",
           "encoder_input", "encoder_output", "accumulate_op", "weight_load"]


def index_shape(count):
    """Unsigned shape of an index into ``count`` items (at least one bit)."""
    return unsigned(max(1, (count - 1).bit_length()))


def lane_beat(*, lanes, shape, lane_groups):
    """Layout of one lane-parallel beat.

    Parameters
    ----------
    lanes : int
        Values per beat (P).
    shape : shape-castable
        Shape of one value: ``1`` for spikes, ``signed(w)`` for currents and accumulators.
    lane_groups : int
        Lane groups per token (``ceil(channels / lanes)``); sizes the ``group`` field.

    Fields
    ------
    data : ArrayLayout(shape, lanes)
    group : unsigned, index of the lane group
    first, last : 1 bit, first and last beat of the token
    """
    check_int("lanes", lanes, min=1)
    check_int("lane_groups", lane_groups, min=1)
    return data.StructLayout({
        "data": data.ArrayLayout(shape, lanes),
        "group": index_shape(lane_groups),
        "first": 1,
        "last": 1,
    })


def spike_word(*, word_bits):
    """Layout of one packed spike word: bit ``i`` of ``data`` is the spike of channel ``i`` of the
    word.

    ``last`` marks the last word of a token (a token of ``C`` channels is
    ``ceil(C / word_bits)`` words).
    """
    check_int("word_bits", word_bits, min=1)
    return data.StructLayout({"data": unsigned(word_bits), "last": 1})


def kv_pair(*, word_bits):
    """Layout of one token's K and V spikes for the attention units: ``k``, ``v``, one bit per
    channel (bit ``c`` is channel ``c``), ``word_bits`` channels each."""
    check_int("word_bits", word_bits, min=1)
    return data.StructLayout({"k": unsigned(word_bits), "v": unsigned(word_bits)})


def threshold_row(*, lanes, threshold_bits, lane_groups):
    """Layout of one threshold-table write of the LIF array: the ``lanes`` thresholds of lane
    group ``group``.

    Fields
    ------
    data : ArrayLayout(unsigned(threshold_bits), lanes), threshold of channel
        ``group * lanes + lane``
    group : unsigned, the row written
    """
    check_int("lanes", lanes, min=1)
    check_int("threshold_bits", threshold_bits, min=1)
    check_int("lane_groups", lane_groups, min=1)
    return data.StructLayout({
        "data": data.ArrayLayout(unsigned(threshold_bits), lanes),
        "group": index_shape(lane_groups),
    })


def encoder_input(*, word_bits, tag_bits=0):
    """Input beat of the spike encoder: :func:`spike_word`, plus a ``tag`` copied to the word's
    events when ``tag_bits > 0`` (a producer's per-word context, such as a kernel tap)."""
    if not tag_bits:
        return spike_word(word_bits=word_bits)
    return data.StructLayout({"data": unsigned(word_bits), "last": 1, "tag": unsigned(tag_bits)})


def encoder_output(*, count, addr_range, chunk, planes, tag_bits=0):
    """Output beat of the spike encoder.

    Fields
    ------
    addr : ArrayLayout of ``count`` item addresses (``range(addr_range)``)
    valid : ``count`` bits, bit ``s`` set if slot ``s`` holds an item (0 in a token's empty
        closing beat)
    plane : bit-plane of the items
    last : the token's final beat
    mask : ArrayLayout of ``count`` ``chunk``-bit item masks (only when ``chunk > 1``)
    tag : the word's tag (only when ``tag_bits > 0``)
    """
    fields = {
        "addr": data.ArrayLayout(index_shape(addr_range), count),
        "valid": unsigned(count),
        "plane": index_shape(planes),
        "last": 1,
    }
    if chunk > 1:
        fields["mask"] = data.ArrayLayout(unsigned(chunk), count)
    if tag_bits:
        fields["tag"] = unsigned(tag_bits)
    return data.StructLayout(fields)


def accumulate_op(*, rows, lane_groups, lanes, planes):
    """One accumulate operation of the engine's adder array (an event, or a token's empty closing
    op).

    Fields
    ------
    row : logical weight row (input channel, or kernel tap × C_in + channel, or tap)
    group : lane group to add into (ignored when ``expand``)
    mask : lanes that add (all ones for an expanded event)
    plane : bit-plane: the row is added shifted left by ``plane`` (subtracted for the signed top
        plane)
    expand : add the row into every lane group ``0 .. lane_groups-1``, one group per cycle
    null : add nothing (a token with no event still needs its ``last`` op)
    last : the token's final op; the token's sums are complete once it retires
    """
    return data.StructLayout({
        "row": index_shape(rows),
        "group": unsigned(max(1, group_bits(lane_groups))),
        "mask": unsigned(lanes),
        "plane": index_shape(planes),
        "expand": 1,
        "null": 1,
        "last": 1,
    })


def weight_load(*, rows, lane_groups, lanes, value_bits):
    """One beat of the engine's load port: a weight row (``bias = 0``, ``addr = row << group_bits
    | group``) or a bias row (``bias = 1``, ``addr = group``), ``lanes`` signed values of
    ``value_bits`` bits."""
    gbits = group_bits(lane_groups)
    addr_bits = max(1, ((rows - 1) << gbits | (lane_groups - 1)).bit_length(), gbits)
    return data.StructLayout({
        "addr": unsigned(addr_bits),
        "bias": 1,
        "data": data.ArrayLayout(signed(value_bits), lanes),
    })
