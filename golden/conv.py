"""Integer reference ops of the spike-accumulate engine: the bit-exact specification of
``hdl.engine``.

Every op takes ``int64`` torch tensors (or NumPy integer arrays: the result has the input's
type) and returns exact integers. Torch is imported only when a torch tensor is passed: the
cocotb testbenches run these ops inside the simulator process, where importing torch costs about
30 s.

Exactness of the float64 path
    float64 holds every integer up to ``2**53`` exactly, so a sum of integer products is exact in
    float64, in any summation order, while every partial sum stays within ``2**53``. Every partial
    sum of one output is bounded by ``fan_in · max|x| · max|w|``; when that bound is at most
    ``2**53`` (:data:`FLOAT64_EXACT`; true for any realistic layer: 8-bit weights and 5-bit
    inputs allow fan-ins of 2**36) the conv runs in float64 — torch's ``conv2d`` for tensors,
    a BLAS ``tensordot`` for arrays — and is rounded back to ``int64``. Otherwise it runs on the
    bit-planes in ``int64`` (exact to 64 bits). Both give the same integers
    (``tests/test_golden_conv.py``).

Multi-bit inputs
    An input of ``input_bits = B`` bits is split into ``B`` binary bit-planes (two's complement for
    ``input_signed=True``). Plane ``b`` is accumulated like a spike map and its result enters the
    sum shifted left by ``b``; for a signed input the top plane's result is subtracted (its weight
    is ``-2**(B-1)``). This is exactly how the engine computes, and it equals the integer product
    (``tests/test_golden_conv.py`` proves it against a float64 convolution of the integer input),
    which is what the float64 path computes directly.

Saturation semantics
    The sum ``bias + sum(weight * input)`` is formed exactly and saturated **once**, at the end, to
    ``acc_bits`` signed bits (:func:`saturate`, from :mod:`spikeforge.golden.fixed`). The engine
    makes this bit-exact by giving its
    accumulators enough guard bits that no partial sum in any event order can overflow
    (:func:`accumulator_bits`, defined in :mod:`spikeforge.contract.sizes` for both sides), so its
    result never depends on the order of the events; only the value it drains to the output is
    saturated to ``acc_bits``.
"""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from spikeforge.contract.sizes import accumulator_bits

from .fixed import saturate, signed_range, unsigned_range

__all__ = ["saturate", "signed_range", "bit_planes", "accumulator_bits",
           "windows", "conv2d_int", "linear_int"]


def _is_torch(x):
    return type(x).__module__.split(".")[0] == "torch"


def _as_int64(x, name):
    """``(numpy int64 array, was_torch)``; a float or bool input raises naming ``name``."""
    if _is_torch(x):
        if str(x.dtype) != "torch.int64":
            raise TypeError(f"{name} must be an int64 tensor, not {x.dtype}")
        return x.detach().cpu().numpy(), True
    array = np.asarray(x)
    if array.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integers, not {array.dtype}")
    return array.astype(np.int64), False


def _like(array, was_torch):
    if was_torch:
        import torch
        return torch.from_numpy(np.ascontiguousarray(array))
    return array


def _input_range(input_bits, input_signed):
    return signed_range(input_bits) if input_signed else unsigned_range(input_bits)


def _check_input(x, input_bits, input_signed):
    if not isinstance(input_bits, int) or input_bits < 1:
        raise ValueError(f"input_bits must be a positive integer, not {input_bits!r}")
    lo, hi = _input_range(input_bits, input_signed)
    if x.size and (int(x.min()) < lo or int(x.max()) > hi):
        kind = "signed" if input_signed else "unsigned"
        raise ValueError(f"x must hold {input_bits}-bit {kind} values in [{lo}, {hi}]")


def bit_planes(x, input_bits, input_signed=False):
    """Split ``x`` into ``input_bits`` binary planes and their signed weights.

    Returns a list of ``(plane, weight)``: ``plane`` is a 0/1 array (tensor for a tensor ``x``)
    shaped like ``x`` and ``sum(weight * plane) == x``; ``weight`` is ``2**b``, except
    ``-2**(B-1)`` for the top plane of a signed input.
    """
    array, was_torch = _as_int64(x, "x")
    _check_input(array, input_bits, input_signed)
    raw = array & ((1 << input_bits) - 1)      # two's complement bits of a signed input
    planes = []
    for b in range(input_bits):
        weight = -(1 << b) if input_signed and b == input_bits - 1 else 1 << b
        planes.append((_like((raw >> b) & 1, was_torch), weight))
    return planes


def windows(x, kernel, stride, padding):
    """Receptive fields of a (B, C, H, W) array: (B, C, H_out, W_out, k, k), zero padded."""
    padded = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    view = sliding_window_view(padded, (kernel, kernel), axis=(2, 3))
    return view[:, :, ::stride, ::stride]


#: float64 represents every integer of magnitude <= 2**53 exactly, so a float64 sum of such
#: integers whose every partial sum also stays within 2**53 is exact, in any summation order.
FLOAT64_EXACT = 1 << 53


def _window_conv(x, weight, stride, padding, groups):
    """Integer conv by window sums (``tensordot``) in ``x``'s dtype; (B, C_out, H_out, W_out)."""
    c_out, c_per_group, k, _ = weight.shape
    win = windows(x, k, stride, padding)
    batch, _, h_out, w_out = win.shape[:4]
    out = np.zeros((batch, c_out, h_out, w_out), dtype=x.dtype)
    o_per_group = c_out // groups
    for g in range(groups):
        part = win[:, g * c_per_group:(g + 1) * c_per_group]
        ker = weight[g * o_per_group:(g + 1) * o_per_group]
        # sum over (c, ky, kx) of window * kernel -> (B, H_out, W_out, O)
        summed = np.tensordot(part, ker, axes=([1, 4, 5], [1, 2, 3]))
        out[:, g * o_per_group:(g + 1) * o_per_group] = summed.transpose(0, 3, 1, 2)
    return out


def _float64_conv(x, weight, stride, padding, groups, use_torch):
    """The integer conv of ``x`` computed in float64: torch's ``conv2d`` (when the caller passed
    tensors, so torch is loaded) or a NumPy BLAS ``tensordot``. Exact only under the bound
    checked by :func:`conv2d_int`."""
    if use_torch:
        import torch
        out = torch.nn.functional.conv2d(torch.from_numpy(x).double(),
                                         torch.from_numpy(weight).double(), stride=stride,
                                         padding=padding, groups=groups).numpy()
    else:
        out = _window_conv(x.astype(np.float64), weight.astype(np.float64), stride, padding,
                           groups)
    return np.rint(out).astype(np.int64)


def conv2d_int(x, weight, bias=None, *, stride=1, padding=0, groups=1, acc_bits=None,
               input_bits=1, input_signed=False):
    """Integer 2-D convolution, bit-plane by bit-plane, saturated once to ``acc_bits``.

    Parameters
    ----------
    x : int64 tensor or integer array (B, C_in, H, W)
        ``input_bits``-bit unsigned (or signed) integers; binary spikes for ``input_bits=1``.
    weight : int64 tensor (C_out, C_in / groups, k, k)
    bias : int64 tensor (C_out,) or None
    stride, padding : int
        Zero padding on all four sides.
    groups : int
        ``groups == C_in == C_out`` is a depthwise convolution.
    acc_bits : int or None
        Saturate the result to this signed width (``None``: no saturation).

    Returns
    -------
    int64 tensor (array for an array ``x``) (B, C_out, H_out, W_out),
    ``H_out = (H + 2 padding - k) // stride + 1``.
    """
    x, was_torch = _as_int64(x, "x")
    weight, _ = _as_int64(weight, "weight")
    if x.ndim != 4 or weight.ndim != 4:
        raise ValueError("x must be (B, C_in, H, W) and weight (C_out, C_in/groups, k, k)")
    c_in, c_out, k = x.shape[1], weight.shape[0], weight.shape[2]
    if weight.shape[3] != k:
        raise ValueError(f"kernel must be square, not {tuple(weight.shape[2:])}")
    if groups < 1 or c_in % groups or c_out % groups or weight.shape[1] != c_in // groups:
        raise ValueError(f"groups={groups} does not fit C_in={c_in}, C_out={c_out}, "
                         f"weight {tuple(weight.shape)}")
    if stride < 1 or padding < 0:
        raise ValueError(f"stride must be >= 1 and padding >= 0, not {stride}, {padding}")
    if k > min(x.shape[2], x.shape[3]) + 2 * padding:
        raise ValueError(f"kernel {k} is larger than the padded input {tuple(x.shape[2:])}")
    _check_input(x, input_bits, input_signed)
    lo, hi = _input_range(input_bits, input_signed)
    w_max = int(np.abs(weight).max()) if weight.size else 0
    if weight.shape[1] * k * k * max(-lo, hi) * w_max <= FLOAT64_EXACT:
        # every partial sum, in any order, is an integer within 2**53: float64 is exact
        out = _float64_conv(x, weight, stride, padding, groups, use_torch=was_torch)
    else:
        out = None
        for plane, scale in bit_planes(x, input_bits, input_signed):
            part = _window_conv(plane, weight, stride, padding, groups)
            # shift (and negate for the signed top plane): scale is a power of two
            part = part << (abs(scale).bit_length() - 1)
            part = -part if scale < 0 else part
            out = part if out is None else out + part
    if bias is not None:
        bias, _ = _as_int64(bias, "bias")
        out = out + bias.reshape(1, -1, 1, 1)
    if acc_bits is not None:
        out = saturate(out, acc_bits)
    return _like(out, was_torch)


def linear_int(x, weight, bias=None, *, acc_bits=None, input_bits=1, input_signed=False):
    """Integer linear layer (a 1×1 convolution per token), same semantics as :func:`conv2d_int`.

    ``x`` is int64 (..., C_in), ``weight`` int64 (C_out, C_in), ``bias`` (C_out,) or None;
    returns int64 (..., C_out).
    """
    x, was_torch = _as_int64(x, "x")
    weight, _ = _as_int64(weight, "weight")
    if weight.ndim != 2 or x.shape[-1] != weight.shape[1]:
        raise ValueError(f"x (..., {x.shape[-1]}) does not fit weight {tuple(weight.shape)}")
    lead = x.shape[:-1]
    flat = x.reshape(-1, x.shape[-1], 1, 1)
    out = conv2d_int(flat, weight.reshape(*weight.shape, 1, 1), bias, acc_bits=acc_bits,
                     input_bits=input_bits, input_signed=input_signed)
    return _like(out.reshape(*lead, weight.shape[0]), was_torch)
