"""Golden integer ops (``golden/conv.py``) against torch float64 convolutions."""

import numpy as np
import pytest
import torch

from spikeforge.golden import conv as conv_module
from spikeforge.golden.conv import (FLOAT64_EXACT, accumulator_bits, bit_planes, conv2d_int,
                                    linear_int, saturate, signed_range)
from spikeforge.golden.fixed import unsigned_range


def _inputs(gen, shape, bits, signed):
    """Random ``bits``-bit integers (two's complement when ``signed``) as an int64 tensor."""
    lo, hi = signed_range(bits) if signed else unsigned_range(bits)
    return torch.randint(lo, hi + 1, shape, generator=gen, dtype=torch.int64)


CONVS = [  # (C_in, C_out, H, W, k, stride, padding, groups)
    (5, 7, 6, 6, 1, 1, 0, 1),
    (4, 6, 7, 5, 3, 1, 1, 1),
    (3, 4, 8, 8, 3, 2, 1, 1),
    (3, 5, 9, 9, 7, 1, 3, 1),
    (2, 3, 10, 10, 7, 2, 3, 1),
    (6, 6, 5, 5, 3, 1, 1, 6),       # depthwise
    (4, 4, 9, 9, 7, 1, 3, 4),       # depthwise 7x7
    (4, 6, 5, 5, 3, 1, 0, 2),       # grouped
]


@pytest.mark.parametrize("bits, signed", [(1, False), (3, False), (4, True)])
@pytest.mark.parametrize("shape", CONVS)
def test_conv2d_int_equals_float64_conv(shape, bits, signed):
    c_in, c_out, h, w, k, stride, padding, groups = shape
    gen = torch.Generator().manual_seed(hash((shape, bits, signed)) & 0xFFFF)
    x = _inputs(gen, (2, c_in, h, w), bits, signed)
    weight = torch.randint(-128, 128, (c_out, c_in // groups, k, k), generator=gen)
    bias = torch.randint(-1000, 1000, (c_out,), generator=gen)
    got = conv2d_int(x, weight, bias, stride=stride, padding=padding, groups=groups,
                     input_bits=bits, input_signed=signed)
    want = torch.nn.functional.conv2d(x.double(), weight.double(), bias.double(), stride=stride,
                                      padding=padding, groups=groups)
    assert got.dtype == torch.int64
    assert torch.equal(got, want.round().long())


@pytest.mark.parametrize("bits, signed", [(1, False), (5, False), (4, True)])
@pytest.mark.parametrize("shape", CONVS)
def test_bit_plane_int64_path_equals_float64_path(shape, bits, signed, monkeypatch):
    """The engine's algorithm (bit-planes, int64 window sums; forced by lowering the exactness
    bound) gives the same integers as the float64 fast path, for tensors and for arrays."""
    c_in, c_out, h, w, k, stride, padding, groups = shape
    gen = torch.Generator().manual_seed(7 + bits)
    x = _inputs(gen, (2, c_in, h, w), bits, signed)
    weight = torch.randint(-128, 128, (c_out, c_in // groups, k, k), generator=gen)
    args = dict(stride=stride, padding=padding, groups=groups, input_bits=bits,
                input_signed=signed)
    fast = conv2d_int(x, weight, **args)
    fast_np = conv2d_int(x.numpy(), weight.numpy(), **args)
    monkeypatch.setattr(conv_module, "FLOAT64_EXACT", 0)
    planes = conv2d_int(x, weight, **args)
    assert torch.equal(fast, planes) and (fast_np == planes.numpy()).all()


@pytest.mark.parametrize("bits, signed", [(1, False), (2, False), (5, True)])
def test_linear_int_equals_float64_linear(bits, signed):
    gen = torch.Generator().manual_seed(bits)
    x = _inputs(gen, (3, 4, 33), bits, signed)
    weight = torch.randint(-128, 128, (17, 33), generator=gen)
    bias = torch.randint(-500, 500, (17,), generator=gen)
    got = linear_int(x, weight, bias, input_bits=bits, input_signed=signed)
    want = torch.nn.functional.linear(x.double(), weight.double(), bias.double())
    assert got.shape == (3, 4, 17)
    assert torch.equal(got, want.long())


def test_bit_planes_rebuild_the_integer():
    x = torch.arange(-8, 8)
    planes = bit_planes(x, 4, input_signed=True)
    assert torch.equal(sum(weight * plane for plane, weight in planes), x)
    assert [w for _, w in planes] == [1, 2, 4, -8]


def test_saturation_is_once_at_the_end():
    gen = torch.Generator().manual_seed(5)
    x = _inputs(gen, (1, 8, 5, 5), 1, False)
    weight = torch.randint(-128, 128, (4, 8, 3, 3), generator=gen)
    exact = conv2d_int(x, weight, padding=1)
    got = conv2d_int(x, weight, padding=1, acc_bits=9)
    assert torch.equal(got, exact.clamp(-256, 255))
    assert (exact.abs() > 255).any()          # the case really saturates
    assert saturate(1000, 8) == 127 and saturate(-1000, 8) == -128 and saturate(5, 8) == 5


@pytest.mark.parametrize("fan_in, weight_bits, input_bits, bias_bits", [
    (64, 8, 1, 16), (576, 8, 1, 16), (49, 6, 4, 12), (1, 2, 1, 2)])
def test_accumulator_bits_hold_the_worst_partial_sum(fan_in, weight_bits, input_bits,
                                                     bias_bits):
    bits = accumulator_bits(fan_in=fan_in, weight_bits=weight_bits, input_bits=input_bits,
                            bias_bits=bias_bits)
    lo, hi = signed_range(bits)
    w_lo = -(1 << (weight_bits - 1))
    worst = -(1 << (bias_bits - 1)) + fan_in * ((1 << input_bits) - 1) * w_lo
    assert lo <= worst and hi >= -worst - 1


@pytest.mark.parametrize("groups", [1, 3])
def test_weights_beyond_float64_exactness_use_int64(groups):
    """Weights so large that ``fan_in · max|w| > 2**53`` take the int64 path, still exact: the
    result equals ``hi · 2**26 + lo`` convolved separately on the (exact) float64 path."""
    gen = torch.Generator().manual_seed(9)
    x = _inputs(gen, (2, 6, 6, 6), 2, False)
    big = 1 << 52
    weight = torch.randint(-big, big, (6, 6 // groups, 3, 3), generator=gen)
    weight[0, 0, 0, 0] = big                     # fan_in · max|w| > 2**53 for sure
    assert (6 // groups) * 9 * big > FLOAT64_EXACT
    hi, lo = weight >> 26, weight & ((1 << 26) - 1)
    got = conv2d_int(x, weight, padding=1, groups=groups, input_bits=2)
    parts = [conv2d_int(x, w, padding=1, groups=groups, input_bits=2) for w in (hi, lo)]
    assert torch.equal(got, (parts[0] << 26) + parts[1])


def test_numpy_inputs_give_numpy_results():
    x = np.ones((1, 2, 3, 3), dtype=np.int64)
    w = np.full((1, 2, 2, 2), 3, dtype=np.int64)
    out = conv2d_int(x, w)
    assert isinstance(out, np.ndarray) and (out == 24).all()


def test_bad_inputs_raise():
    w = torch.ones((1, 1, 3, 3), dtype=torch.int64)
    with pytest.raises(ValueError, match="x must hold 1-bit"):
        conv2d_int(torch.full((1, 1, 4, 4), 2), w)
    with pytest.raises(TypeError, match="x must be an int64"):
        conv2d_int(torch.ones((1, 1, 4, 4)), w)
    with pytest.raises(ValueError, match="kernel 3 is larger"):
        conv2d_int(torch.ones((1, 1, 2, 2), dtype=torch.int64), w)
    with pytest.raises(ValueError, match="groups"):
        conv2d_int(torch.ones((1, 2, 4, 4), dtype=torch.int64), w, groups=3)
