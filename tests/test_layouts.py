"""hdl/layouts.py: the fields and widths of every payload layout, packing round trips, and the
parameter checks."""

import pytest
from amaranth.hdl import Shape, signed, unsigned
from amaranth.lib import data

from spikeforge.contract.program import group_bits
from spikeforge.hdl.layouts import (index_shape, lane_beat, spike_word, kv_pair,
                                    threshold_row, encoder_input, encoder_output, accumulate_op,
                                    weight_load)


def fields(layout):
    """``{name: shape}``, plain widths given as ``1`` cast to ``unsigned(1)``."""
    return {name: field.shape if isinstance(field.shape, data.Layout) else
            Shape.cast(field.shape) for name, field in layout}


def test_index_shape_and_group_bits():
    assert [index_shape(n).width for n in (1, 2, 3, 4, 5, 256, 257)] == [1, 1, 2, 2, 3, 8, 9]
    assert [group_bits(n) for n in (1, 2, 3, 4, 5)] == [0, 1, 2, 2, 3]


def test_lane_beat():
    layout = lane_beat(lanes=4, shape=signed(6), lane_groups=3)
    assert fields(layout) == {"data": data.ArrayLayout(signed(6), 4), "group": unsigned(2),
                              "first": unsigned(1), "last": unsigned(1)}
    assert layout.size == 4 * 6 + 2 + 2
    beat = layout.from_bits(layout.const({"data": [-32, 31, 0, -1], "group": 2, "first": 0,
                                          "last": 1}).as_value().value)
    assert (list(beat.data), beat.group, beat.first, beat.last) == ([-32, 31, 0, -1], 2, 0, 1)
    assert fields(lane_beat(lanes=1, shape=1, lane_groups=1))["group"] == unsigned(1)


def test_words():
    assert fields(spike_word(word_bits=24)) == {"data": unsigned(24), "last": unsigned(1)}
    assert fields(kv_pair(word_bits=10)) == {"k": unsigned(10), "v": unsigned(10)}
    assert encoder_input(word_bits=16) == spike_word(word_bits=16)
    assert fields(encoder_input(word_bits=16, tag_bits=5)) == {
        "data": unsigned(16), "last": unsigned(1), "tag": unsigned(5)}


def test_threshold_row():
    assert fields(threshold_row(lanes=3, threshold_bits=7, lane_groups=5)) == {
        "data": data.ArrayLayout(unsigned(7), 3), "group": unsigned(3)}


@pytest.mark.parametrize("chunk, tag_bits", [(1, 0), (8, 0), (1, 4), (4, 3)])
def test_encoder_output(chunk, tag_bits):
    layout = encoder_output(count=3, addr_range=40, chunk=chunk, planes=3, tag_bits=tag_bits)
    want = {"addr": data.ArrayLayout(unsigned(6), 3), "valid": unsigned(3),
            "plane": unsigned(2), "last": unsigned(1)}
    if chunk > 1:
        want["mask"] = data.ArrayLayout(unsigned(chunk), 3)
    if tag_bits:
        want["tag"] = unsigned(tag_bits)
    assert fields(layout) == want


def test_accumulate_op():
    assert fields(accumulate_op(rows=108, lane_groups=3, lanes=8, planes=2)) == {
        "row": unsigned(7), "group": unsigned(2), "mask": unsigned(8), "plane": unsigned(1),
        "expand": unsigned(1), "null": unsigned(1), "last": unsigned(1)}
    # one lane group: the group field keeps one (unused) bit
    assert fields(accumulate_op(rows=1, lane_groups=1, lanes=2, planes=1))["group"] == \
        unsigned(1)


@pytest.mark.parametrize("rows, lane_groups, addr_bits", [(108, 3, 9), (1, 1, 1), (1, 4, 2),
                                                          (16, 1, 4)])
def test_weight_load(rows, lane_groups, addr_bits):
    # the address holds every weight row `row << group_bits | group` and every bias row `group`
    layout = weight_load(rows=rows, lane_groups=lane_groups, lanes=4, value_bits=12)
    assert fields(layout) == {"addr": unsigned(addr_bits), "bias": unsigned(1),
                              "data": data.ArrayLayout(signed(12), 4)}
    top = (rows - 1) << group_bits(lane_groups) | (lane_groups - 1)
    assert top < 1 << addr_bits


@pytest.mark.parametrize("make, name", [
    (lambda: lane_beat(lanes=0, shape=1, lane_groups=1), "lanes"),
    (lambda: lane_beat(lanes=2, shape=1, lane_groups=0), "lane_groups"),
    (lambda: spike_word(word_bits=0), "word_bits"),
    (lambda: kv_pair(word_bits=2.0), "word_bits"),
    (lambda: threshold_row(lanes=2, threshold_bits=0, lane_groups=1), "threshold_bits"),
])
def test_bad_parameters(make, name):
    with pytest.raises((TypeError, ValueError), match=name):
        make()
