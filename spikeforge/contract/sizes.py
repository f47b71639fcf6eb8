"""Integer sizing formulas shared by the golden model (the specification) and the RTL that must
agree with it: value ranges, output geometry and exact accumulator widths."""

__all__ = ["ceil_div", "signed_range", "unsigned_range", "conv_output_size", "accumulator_bits"]


def ceil_div(a, b):
    """``ceil(a / b)`` for non-negative integers, without floating point."""
    return -(-a // b)


def signed_range(bits):
    """``(lo, hi)`` of a ``bits``-bit two's-complement integer."""
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def unsigned_range(bits):
    """``(0, 2**bits - 1)``."""
    return 0, (1 << bits) - 1


def conv_output_size(size, *, kernel, stride, padding):
    """Output length of a ``kernel``-tap window walked over ``size`` inputs with ``stride`` and
    ``padding`` zeros on each side: ``(size + 2 padding - kernel) // stride + 1``."""
    return (size + 2 * padding - kernel) // stride + 1


def accumulator_bits(*, fan_in, weight_bits, input_bits, bias_bits):
    """Signed width that holds every partial sum of one output exactly, in any event order.

    A partial sum is the bias plus any subset of the terms ``±w << b`` (one per set input bit),
    so its magnitude is at most ``2**(bias_bits-1) + fan_in * (2**input_bits - 1) *
    2**(weight_bits-1)``.
    """
    bound = (1 << (bias_bits - 1)) + fan_in * ((1 << input_bits) - 1) * (1 << (weight_bits - 1))
    return bound.bit_length() + 1
