"""SOP, event and dense-MAC counts and the encoder's event list (``golden/sops.py``), against
brute-force counts."""

import itertools

import pytest
import torch

from spikeforge.contract.sizes import conv_output_size
from spikeforge.golden.sops import conv2d_sops, linear_sops, popcount, spike_events

from test_golden_conv import _inputs


def _brute_force_events(x, k, stride, padding, bits):
    b, c, h, w = x.shape
    h_out = conv_output_size(h, kernel=k, stride=stride, padding=padding)
    w_out = conv_output_size(w, kernel=k, stride=stride, padding=padding)
    events = 0
    for n, oy, ox, ci, ky, kx in itertools.product(range(b), range(h_out), range(w_out),
                                                   range(c), range(k), range(k)):
        iy, ix = oy * stride - padding + ky, ox * stride - padding + kx
        if 0 <= iy < h and 0 <= ix < w:
            events += bin(int(x[n, ci, iy, ix]) & ((1 << bits) - 1)).count("1")
    return events, b * h_out * w_out


@pytest.mark.parametrize("k, stride, padding, groups, bits", [
    (3, 1, 1, 1, 1), (3, 2, 1, 1, 2), (7, 1, 3, 1, 1), (3, 1, 1, 4, 3)])
def test_conv2d_sops_counts_events(k, stride, padding, groups, bits):
    gen = torch.Generator().manual_seed(k + stride)
    x = _inputs(gen, (2, 4, 7, 7), bits, False)
    count = conv2d_sops(x, (8, 4 // groups, k, k), stride=stride, padding=padding,
                        groups=groups, input_bits=bits)
    events, outputs = _brute_force_events(x, k, stride, padding, bits)
    assert count.events == events
    assert count.sops == events * 8 // groups
    assert count.dense_macs == outputs * 8 * (4 // groups) * k * k


def test_linear_sops():
    x = torch.tensor([[1, 0, 3], [0, 0, 0]])
    count = linear_sops(x, (5, 3), input_bits=2)
    assert (count.events, count.sops, count.dense_macs) == (3, 15, 30)
    assert popcount(torch.tensor([-1, 5]), 4).tolist() == [4, 2]


def test_spike_events():
    # Two planes of one 8-bit word, channels 6: bit 7 is junk; a token of zeros closes empty.
    words = [(0b10100101, False), (0b00000010, True), (0, False), (0, True)]
    assert spike_events(words, word_bits=8, channels=6, planes=2, count=2) == [
        (((0, 1), (2, 1)), 0, False), (((5, 1),), 0, False), (((1, 1),), 1, True),
        ((), 1, True)]
    assert spike_events([(0xF0F0, True)], word_bits=16, channels=16, chunk=4) == [
        (((1, 0xF),), 0, False), (((3, 0xF),), 0, True)]
