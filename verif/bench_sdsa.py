"""Cycles per head of the attention units against the analytic bound (``spikeforge bench sdsa``).

Each point simulates one sample (``steps`` time steps) of the SDSA unit on the cocotb flow at
realistic firing rates, without stalls, checked against the golden model as in every run, and
compares the cycles from reset to the last output word with a lower bound computed from the very
spikes the testbench sent (regenerated from the same seed). The bounds, per time step ``t``
(docs/attention.md):

* ``v1``: ``2 N`` (the unit takes one K/V token and one Q token per cycle).
* ``ssa``: ``max(N, K_t) + max(N * heads, Q_t)``: at most one K/V token and one K^T V row update
  per cycle, then at most one score beat and one Q-spike row accumulate per cycle.
* ``qk_first``: ``N + max(N, P_t)``: the K/V tokens, then at least one cycle per Q token and one
  select-and-add per query/key pair that overlaps in some head (``P_t`` pairs).

Figures are reported per head and time step: ``cycles / (heads * steps)``. For ``qk_first`` the
points also carry the design's own cost model (:func:`model_cycles`), which the measure should
follow up to a few cycles of pipeline latency per step.
"""

import random

from spikeforge.contract.attention import VARIANT_KV_FIRST, VARIANT_QK_FIRST, VARIANT_V1
from spikeforge.progress import progress_bar

__all__ = ["sweep", "run_point", "bound_cycles", "model_cycles", "DEFAULT_RATES"]

#: Firing rates of Q, K, V measured on SDT-V1 8-768 (reported in issue 25 of
#: BICLab/Spike-Driven-Transformer, the V1 repository).
DEFAULT_RATES = (0.2, 0.02, 0.03)


def _count(word):
    return bin(word).count("1")


def _head_masks(channels, heads):
    dh = channels // heads
    return [((1 << dh) - 1) << (h * dh) for h in range(heads)]


def _steps(samples, *, tokens, steps):
    """Every time step of every sample: its ``tokens`` ``(q, k, v)`` words."""
    for sample in samples:
        for t in range(steps):
            yield sample[t * tokens:(t + 1) * tokens]


def bound_cycles(variant, samples, *, tokens, channels, heads, steps):
    """Lower-bound cycles of one run's stimulus (``make_samples`` output) for ``variant``."""
    head_masks = _head_masks(channels, heads)
    total = 0
    for step in _steps(samples, tokens=tokens, steps=steps):
        if variant == VARIANT_V1:
            total += 2 * tokens
        elif variant == VARIANT_KV_FIRST:
            k_spikes = sum(_count(k) for _, k, _ in step)
            q_spikes = sum(_count(q) for q, _, _ in step)
            total += max(tokens, k_spikes) + max(tokens * heads, q_spikes)
        else:
            pairs = sum(1 for q, _, _ in step for _, k, _ in step
                        if any(q & k & mask for mask in head_masks))
            total += tokens + max(tokens, pairs)
    return total


def model_cycles(samples, *, tokens, channels, heads, steps):
    """Cycles of the ``qk_first`` design (:class:`~spikeforge.hdl.attention.SSAQKFirst`) for one
    run's stimulus, without its pipeline latency. Per time step: ``sum_n max(1, max_h k_n,h)``
    for the K/V phase (every head appends one K spike per cycle; ``k_n,h`` is token ``n``'s K
    spikes in head ``h``), then ``sum_n max(1, sum_i Q_n,i * count_i)`` for the Q phase (one
    list entry per cycle; ``count_i`` is the step's K spikes in channel ``i``)."""
    head_masks = _head_masks(channels, heads)
    total = 0
    for step in _steps(samples, tokens=tokens, steps=steps):
        total += sum(max(1, max(_count(k & mask) for mask in head_masks)) for _, k, _ in step)
        counts = [sum((k >> i) & 1 for _, k, _ in step) for i in range(channels)]
        total += sum(max(1, sum(c for i, c in enumerate(counts) if (q >> i) & 1))
                     for q, _, _ in step)
    return total


def run_point(variant, *, tokens, channels, heads, steps, shift, rates, simulator, seed):
    """Simulate one configuration; return its figures as a dict."""
    from spikeforge.verif.runner import simulate
    from spikeforge.verif.tb_sdsa import make_samples
    params = {"variant": variant, "tokens": tokens, "channels": channels, "heads": heads,
              "steps": steps, "shift": shift}
    stimulus = {"samples": 1, "kv_idle": 0.0, "q_idle": 0.0, "out_stall": 0.0,
                "rates": list(rates)}
    result = simulate("sdsa", params=params, stimulus=stimulus, simulator=simulator, seed=seed)
    samples = make_samples(random.Random(seed), count=1, tokens=tokens, channels=channels,
                           steps=steps, rates=rates)
    bound = bound_cycles(variant, samples, tokens=tokens, channels=channels, heads=heads,
                         steps=steps)
    per = heads * steps
    model = {}
    if variant == VARIANT_QK_FIRST:
        cost = model_cycles(samples, tokens=tokens, channels=channels, heads=heads, steps=steps)
        model = {"model": cost, "model_ratio": round(result.cycles / cost, 3)}
    spikes = {name: sum(_count(triple[i]) for s in samples for triple in s)
              for i, name in enumerate("qkv")}
    neurons = steps * tokens * channels
    return {
        "variant": variant, "tokens": tokens, "channels": channels, "heads": heads,
        "steps": steps, "simulator": simulator, "seed": seed,
        "rates_measured": {n: round(c / neurons, 4) for n, c in spikes.items()},
        "cycles": result.cycles, "bound": bound,
        "cycles_per_head": round(result.cycles / per, 1),
        "bound_per_head": round(bound / per, 1),
        "ratio": round(result.cycles / bound, 3), **model,
        "checked": result.checked, "mismatches": result.mismatches,
    }



def sweep(*, variants, token_counts, channels, heads, steps, shift, rates, simulator, seed,
          progress=True):
    """:func:`run_point` for every variant and every N of ``token_counts`` (variant-major);
    return the list of point dicts."""
    points = [(v, n) for v in variants for n in token_counts]
    return [run_point(variant, tokens=tokens, channels=channels, heads=heads, steps=steps,
                      shift=shift, rates=rates, simulator=simulator, seed=seed)
            for variant, tokens in progress_bar(points, show=progress, desc="sdsa",
                                                leave=False)]
