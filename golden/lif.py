"""Neuron models: the float multi-step LIF of the seeds, its integer fixed-point form (the bit-exact
specification of :class:`spikeforge.hdl.lif.LIFArray`), and the stateless SDT-V3 multi-level
spike neuron.

Float LIF (spikingjelly's ``LIFNode(step_mode='m')`` with ``decay_input=True``), per time step::

    H[t] = V[t-1] + (X[t] - (V[t-1] - V_reset)) / tau
    S[t] = H[t] >= V_th
    V[t] = V_reset if S[t] else H[t]          (hard reset; soft reset: V[t] = H[t] - S[t]*V_th)

with ``V[-1] = V_reset`` (0 for soft reset) at the start of every sample, as spikingjelly
initialises it; the seeds reset to 0 and call ``functional.reset_net`` between samples. They use
``tau = 2``, ``V_th = 1`` (0.5 for attention) and hard reset to 0.

Integer LIF: the same recurrence on a membrane with ``F`` fractional bits, ``V_int = V * 2**F``,
with ``tau = 2**k`` and the division by ``tau`` an arithmetic right shift (floor).

The integer functions take torch tensors or numpy arrays and return the same kind; torch is
imported only by the float functions, so a cocotb testbench (whose embedded Python imports
torch several times slower than a plain interpreter) can run the integer golden with numpy alone.
"""

import functools

import numpy as np

from spikeforge.contract.sizes import ceil_div

from .fixed import saturate

__all__ = ["lif_float", "lif_int", "multispike", "multispike_int", "sigmoid_spike",
           "to_lane_order", "from_lane_order"]

RESETS = ("hard", "soft")
ROUNDINGS = ("half_even", "half_up")


@functools.cache
def _sigmoid_spike_function():
    import torch

    class SigmoidSpike(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, alpha):
            ctx.save_for_backward(x)
            ctx.alpha = alpha
            return (x >= 0).to(x.dtype)

        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            sig = torch.sigmoid(ctx.alpha * x)
            return grad * ctx.alpha * sig * (1 - sig), None

    return SigmoidSpike


def sigmoid_spike(x, alpha):
    """Heaviside step ``x >= 0`` forward; spikingjelly's ``surrogate.Sigmoid`` gradient backward:
    ``grad * alpha * sig(alpha * x) * (1 - sig(alpha * x))``."""
    return _sigmoid_spike_function().apply(x, float(alpha))


def lif_float(x, *, tau=2.0, v_threshold=1.0, v_reset=0.0, surrogate_alpha=None,
              return_membrane=False):
    """Multi-step float LIF, as spikingjelly's ``LIFNode(step_mode='m', decay_input=True)``.

    Parameters
    ----------
    x : torch.Tensor, floating point, shape (T, ...)
        Input currents, time first. The membrane starts at ``v_reset`` (0 for soft reset).
    tau : float
        Membrane time constant (> 1).
    v_threshold : float or torch.Tensor
        Threshold; a tensor broadcasts over the trailing dimensions (per output channel when its
        shape is ``(C,)`` and ``x`` is ``(T, ..., C)``).
    v_reset : float or None
        Hard reset to ``v_reset`` after a spike; ``None`` is soft reset (subtract the threshold).
    surrogate_alpha : float or None
        ``None``: plain forward (no surrogate). A number: the spike's backward pass is the sigmoid
        surrogate with that alpha (spikingjelly's ``surrogate.Sigmoid(alpha)``) and the reset is
        detached from the graph (``detach_reset=True``), as the seeds train.
    return_membrane : bool
        Also return the membrane after the last step.

    Returns
    -------
    torch.Tensor (T, ...) of 0/1 in ``x``'s dtype; with ``return_membrane``, ``(spikes, V)``.
    """
    import torch
    if not torch.is_tensor(x) or not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor, not {type(x).__name__}")
    if x.dim() < 1:
        raise ValueError("x must have a leading time dimension")
    if not tau > 1:
        raise ValueError(f"tau must be greater than 1, not {tau!r}")
    reset_value = 0.0 if v_reset is None else v_reset
    v = torch.full_like(x[0], reset_value)
    spikes = []
    for x_t in x:
        h = v + (x_t - (v - reset_value)) / tau
        if surrogate_alpha is None:
            s = (h - v_threshold >= 0).to(x.dtype)
            s_reset = s
        else:
            s = sigmoid_spike(h - v_threshold, surrogate_alpha)
            s_reset = s.detach()
        if v_reset is None:
            v = h - s_reset * v_threshold
        else:
            v = s_reset * v_reset + (1 - s_reset) * h
        spikes.append(s)
    spikes = torch.stack(spikes)
    return (spikes, v) if return_membrane else spikes


def _is_torch(value):
    return type(value).__module__.split(".")[0] == "torch"


def _xp(value):
    """The array module of ``value``: torch for a tensor, numpy otherwise."""
    if _is_torch(value):
        import torch
        return torch
    return np


def _check_int_array(name, value):
    """``value`` as int64 (torch tensor or numpy array); raise naming ``name`` if not integer."""
    if _is_torch(value) and hasattr(value, "is_floating_point"):
        import torch
        if not value.is_floating_point() and not value.is_complex() \
                and value.dtype != torch.bool:
            return value.to(torch.int64)
    elif isinstance(value, np.ndarray) and np.issubdtype(value.dtype, np.integer):
        return value.astype(np.int64)
    raise TypeError(f"{name} must be an integer tensor or array, not {value!r:.60}")


def lif_int(currents, *, threshold, tau_log2=1, frac_bits, reset="hard", membrane_bits=None,
            return_membrane=False):
    """Integer multi-step LIF with a fixed-point, saturating membrane (golden of ``LIFArray``).

    Per time step, with ``F = frac_bits``, ``k = tau_log2`` and all values integers::

        H = sat(V + ((X << F) - V) >> k)          # >> is an arithmetic shift: floor division
        S = H >= (threshold << F)
        V = 0 if S else H                          (reset="hard")
        V = sat(H - (threshold << F)) if S else H  (reset="soft")

    ``sat`` clamps to signed ``membrane_bits`` when given (never wraps); ``V`` starts at 0. The
    intermediate ``(X << F) - V`` is exact (the hardware sizes it so); only ``H`` and ``V`` are
    clamped.

    Exactness. ``V_int / 2**F`` equals :func:`lif_float` with ``tau = 2**k``,
    ``v_threshold = threshold`` and ``v_reset = 0`` (or ``None`` for soft reset) exactly, for
    integer currents, whenever ``F >= k * T`` and nothing saturates: each step adds at most ``k``
    fractional bits, so the shift never discards a one. With ``membrane_bits >= current bits + F``
    nothing saturates (``H`` is a convex mix of 0 and the inputs, and a soft reset only lowers it).

    When ``F < k * T``, each step's leak ``((X << F) - V) >> k`` is rounded down (floor, towards
    minus infinity) to the ``2**-F`` grid. The integer membrane then trails the exact one by less
    than ``tau - 1`` LSBs (a step's error is below one LSB and earlier errors decay by
    ``1 - 1/tau``), never exceeds it, and a neuron close to its threshold may fire later than the
    float neuron or not at all; a reset to 0 clears the difference. For ``tau = 2`` (``k = 1``)
    the floor costs nothing: ``floor((floor(a) + m) / 2) = floor((a + m) / 2)`` for integer ``m``,
    so ``H_int = floor(H * 2**F)`` at every step and, the thresholds being integers, the spikes
    equal the float LIF's for *any* ``F >= 0`` (the membrane is the float one floored).

    Parameters
    ----------
    currents : integer torch.Tensor or numpy array, shape (T, ..., C)
        Input currents in the units of ``threshold``.
    threshold : int or integer tensor/array (same kind as ``currents``)
        Firing threshold; a tensor broadcasts over the trailing dimensions (per channel: ``(C,)``).
    tau_log2 : int
        ``k`` with ``tau = 2**k`` (``k >= 1``).
    frac_bits : int
        ``F``, fractional bits of the membrane.
    reset : "hard" or "soft"
    membrane_bits : int or None
        Signed width the membrane saturates to; ``None``: unbounded.
    return_membrane : bool
        Also return the final membrane ``V_int`` (int64).

    Returns
    -------
    int64 (T, ..., C) of 0/1, a tensor or an array as ``currents``; with ``return_membrane``,
    ``(spikes, V_int)``.
    """
    x = _check_int_array("currents", currents)
    xp = _xp(x)
    if x.ndim < 1:
        raise ValueError("currents must have a leading time dimension")
    if isinstance(threshold, bool) or isinstance(threshold, float):
        raise TypeError(f"threshold must be an int or an integer tensor, not {threshold!r}")
    theta = threshold if isinstance(threshold, int) else _check_int_array("threshold", threshold)
    for name, value, low in (("tau_log2", tau_log2, 1), ("frac_bits", frac_bits, 0)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an integer, not {value!r}")
        if value < low:
            raise ValueError(f"{name} must be at least {low}, not {value!r}")
    if reset not in RESETS:
        raise ValueError(f"reset must be one of {RESETS}, not {reset!r}")
    if membrane_bits is not None and (not isinstance(membrane_bits, int) or membrane_bits < 2):
        raise ValueError(f"membrane_bits must be an integer >= 2 or None, not {membrane_bits!r}")

    theta_f = theta * (1 << frac_bits)
    v = xp.zeros_like(x[0])
    spikes = []
    for x_t in x:
        leak = (x_t * (1 << frac_bits) - v) // (1 << tau_log2)      # floor division
        h = saturate(v + leak, membrane_bits)
        s = h >= theta_f
        after = 0 * h if reset == "hard" else saturate(h - theta_f, membrane_bits)
        v = xp.where(s, after, h)
        spikes.append(s * 1)
    spikes = xp.stack(spikes)
    return (spikes, v) if return_membrane else spikes


def multispike(x, *, max_value=4, norm=1, rounding="half_even"):
    """SDT-V3 multi-level spike neuron (stateless): ``round(clamp(x, 0, D)) / norm``.

    Parameters
    ----------
    x : float torch.Tensor
    max_value : int
        ``D``, the largest spike value (the 4 of the ``1x4`` checkpoints).
    norm : number
        Divisor of the output (``4`` inside the V3 blocks, ``1`` at the head quantizer).
    rounding : "half_even" or "half_up"
        ``"half_even"`` is ``torch.round`` (SDT-V3 ``Model_Base/models.py``); ``"half_up"`` is
        ``floor(x + 0.5)`` (SDT-V3 ``Model_Large/spikformer.py``). They differ at ``x = 0.5, 2.5``.

    Returns
    -------
    float tensor of values ``{0, 1, ..., D} / norm``.
    """
    import torch
    if not torch.is_tensor(x) or not x.is_floating_point():
        raise TypeError("x must be a floating-point tensor")
    _check_multispike(max_value, rounding)
    clamped = x.clamp(0, max_value)
    rounded = torch.round(clamped) if rounding == "half_even" else torch.floor(clamped + 0.5)
    return rounded / norm


def multispike_int(x, *, frac_bits, max_value=4, rounding="half_even"):
    """Integer form of :func:`multispike` with ``norm=1`` on a fixed-point input.

    ``x`` holds ``value * 2**frac_bits``; returns the int64 spike count ``0..max_value``, equal to
    ``multispike(x / 2**frac_bits, norm=1, rounding=rounding)`` exactly. Half-even compares the
    remainder with one half and breaks the tie towards the even integer; half-up adds one half and
    floors. Only adds, shifts and compares.
    """
    x = _check_int_array("x", x)
    _check_multispike(max_value, rounding)
    if isinstance(frac_bits, bool) or not isinstance(frac_bits, int) or frac_bits < 0:
        raise ValueError(f"frac_bits must be a non-negative integer, not {frac_bits!r}")
    clamped = _xp(x).clip(x, 0, max_value << frac_bits)
    if frac_bits == 0:
        return clamped
    half = 1 << (frac_bits - 1)
    if rounding == "half_up":
        return (clamped + half) >> frac_bits
    whole = clamped >> frac_bits
    rest = clamped - (whole << frac_bits)
    up = (rest > half) | ((rest == half) & (whole % 2 == 1))
    return whole + up * 1


def _check_multispike(max_value, rounding):
    if isinstance(max_value, bool) or not isinstance(max_value, int) or max_value < 1:
        raise ValueError(f"max_value must be a positive integer, not {max_value!r}")
    if rounding not in ROUNDINGS:
        raise ValueError(f"rounding must be one of {ROUNDINGS}, not {rounding!r}")


def to_lane_order(x, lanes):
    """Lane beats of one sample, in the order ``LIFArray`` serves neurons.

    ``x`` is ``(T, tokens, C)``; channels are zero-padded to ``lane_groups * lanes``. Returns
    ``(beats, lanes)`` with ``beats = T * tokens * lane_groups``: time steps in order, tokens in
    order, lane groups in order; lane ``l`` of group ``g`` is channel ``g * lanes + l``.
    """
    steps, tokens, channels = x.shape
    lane_groups = ceil_div(channels, lanes)
    shape = (steps, tokens, lane_groups * lanes)
    padded = x.new_zeros(shape) if _is_torch(x) else np.zeros(shape, dtype=x.dtype)
    padded[..., :channels] = x
    return padded.reshape(steps * tokens * lane_groups, lanes)


def from_lane_order(beats, *, steps, tokens, channels):
    """Inverse of :func:`to_lane_order`: ``(beats, lanes)`` → ``(T, tokens, channels)``."""
    return beats.reshape(steps, tokens, -1)[..., :channels]
