"""The host-side layout of the engine's weight and bias memories: golden-shaped weights and
biases → memory rows (as ``init`` of :class:`~.core.SpikeEngine`) or ``load`` port beats."""

import numpy as np

from spikeforge.contract.program import group_bits, lane_rows, weight_address
from spikeforge.contract.sizes import signed_range

__all__ = ["memory_image", "bias_rows", "load_beats"]


def _checked(values, shape, name, *, bits, bits_name):
    """``values`` as an int64 array of ``shape`` whose entries fit ``signed(bits)``."""
    array = np.asarray(values, dtype=np.int64)
    if array.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, not {array.shape}")
    lo, hi = signed_range(bits)
    if array.size and (array.min() < lo or array.max() > hi):
        raise ValueError(f"{name} must lie in [{lo}, {hi}] ({bits_name}={bits})")
    return array


def memory_image(config, weights):
    """Weight memory contents ``{address: [lanes values]}`` of an engine with ``config`` (an
    :class:`~.config.EngineConfig`) for golden-shaped ``weights``
    (:attr:`~.config.EngineConfig.weight_shape`, values in ``signed(weight_bits)``): logical row
    ``r`` (linear: input channel; conv: ``tap * c_in + c`` with ``tap = ky * k + kx``;
    depthwise: ``tap``) of lane group ``g`` is at address ``r << group_bits | g`` and holds
    output channels ``g * lanes .. g * lanes + lanes - 1`` (0 past ``c_out``).

    Raises ``ValueError`` for a wrong shape or an out-of-range weight.
    """
    w = _checked(weights, config.weight_shape, "weights", bits=config.weight_bits,
                 bits_name="weight_bits")
    w = w.reshape(config.c_out, -1, config.taps)            # (c_out, c_in or 1, taps)
    gbits = group_bits(config.lane_groups)
    image = {}
    for row in range(config.rows):
        if config.kind == "depthwise":
            column = w[:, 0, row]
        else:
            tap, c = divmod(row, config.c_in)
            column = w[:, c, tap]
        for g, lane_values in enumerate(lane_rows(column, config.lanes, config.lane_groups)):
            image[weight_address(row, g, gbits)] = lane_values
    return image


def bias_rows(config, bias):
    """Bias memory contents: one row of ``lanes`` values per lane group, for ``c_out`` biases in
    ``signed(bias_bits)``. Raises ``ValueError`` for a wrong count or an out-of-range bias."""
    b = _checked(np.asarray(bias, dtype=np.int64).reshape(-1), (config.c_out,), "bias",
                 bits=config.bias_bits, bits_name="bias_bits")
    return lane_rows(b, config.lanes, config.lane_groups)


def load_beats(config, weights, bias=None):
    """The ``load`` port's beats (dicts for :attr:`~.config.EngineConfig.load_layout`) that
    write ``weights`` and ``bias``."""
    beats = [{"addr": addr, "bias": 0, "data": row}
             for addr, row in sorted(memory_image(config, weights).items())]
    if bias is not None:
        beats += [{"addr": g, "bias": 1, "data": row}
                  for g, row in enumerate(bias_rows(config, bias))]
    return beats
