"""The engine's sparsity sweep counted, not simulated (the ``report`` page): the layers and
rates of :func:`.bench_engine.sweep` on random inputs at each rate, with each point's events, SOPs, dense MACs
and analytic bound cycles; the measured cycles are ``spikeforge bench engine``'s (minutes in
the Amaranth simulator)."""

import random

from . import engine_model as em
from .bench_engine import RATES, layers

__all__ = ["counted_sweep"]


def counted_sweep(*, rates=RATES, channels=64, lanes=16, tokens=64, size=6, seed=1):
    """Per (layer, rate) point: ``{"layer", "rate", "events", "sops", "dense_macs",
    "bound_cycles", "dense_bound_cycles"}`` (the last: the bound with every input bit set)."""
    rng = random.Random(seed)
    points = []
    for name, params, count in layers(channels=channels, lanes=lanes, tokens=tokens,
                                      size=size):
        shape = em.engine_config(**params)
        dense = em.random_input(rng, shape, count, 1.0)
        for rate in rates:
            x = em.random_input(rng, shape, count, rate)
            ops = em.op_count(shape, x)
            points.append({"layer": name, "rate": rate, "events": ops.events, "sops": ops.sops,
                           "dense_macs": ops.dense_macs,
                           "bound_cycles": em.bound_cycles(shape, x),
                           "dense_bound_cycles": em.bound_cycles(shape, dense)})
    return points
