"""Drivers and model of :class:`~spikeforge.hdl.engine.SpikeEngine` shared by its cocotb
testbench, its Amaranth-simulator tests and its benchmark: random layers, input tensors as spike
word streams (bit-plane by bit-plane), the golden output as lane beats, and the op counts.

Every function takes the engine's geometry, an :class:`~spikeforge.hdl.engine.EngineConfig`
(``SpikeEngine(...).config``, or :func:`engine_config` without a component). Tensors here are
NumPy int64 arrays (the golden ops take them as well as torch tensors), so the cocotb testbench
never imports torch inside the simulator.
"""

import numpy as np

from spikeforge.contract.sizes import signed_range, unsigned_range
from spikeforge.golden.conv import conv2d_int, linear_int, windows
from spikeforge.golden.sops import conv2d_sops, linear_sops
from spikeforge.golden.spikes import pack_words
from spikeforge.hdl.engine import EngineConfig

__all__ = ["engine_config", "token_values", "random_weights", "random_bias", "random_input",
           "input_words", "token_words", "golden_output", "output_beats", "op_count",
           "bound_cycles", "output_tokens", "run_amaranth"]


def engine_config(**params):
    """The :class:`~spikeforge.hdl.engine.EngineConfig` of ``SpikeEngine(**params)``."""
    return EngineConfig(**params)


def token_values(config, words):
    """Inverse of :func:`token_words`: one token's ``(word, last)`` list → C_in ints."""
    per_plane, word_bits = config.plane_words, config.word_bits
    raw = [0] * config.c_in
    for b in range(config.input_bits):
        for w, (word, _) in enumerate(words[b * per_plane:(b + 1) * per_plane]):
            for i in range(word_bits):
                c = w * word_bits + i
                if c < config.c_in and (word >> i) & 1:
                    raw[c] |= 1 << b
    if config.input_signed:
        top = 1 << (config.input_bits - 1)
        raw = [v - 2 * top if v & top else v for v in raw]
    return raw


def random_weights(rng, config, *, extremes=0.2):
    """Random weights; a fraction ``extremes`` of them at the two ends of the signed range."""
    lo, hi = signed_range(config.weight_bits)
    shape = config.weight_shape
    values = [rng.choice((lo, hi)) if rng.random() < extremes else rng.randint(lo, hi)
              for _ in range(int(np.prod(shape)))]
    return np.array(values, dtype=np.int64).reshape(shape)


def random_bias(rng, config, *, extremes=0.2):
    lo, hi = signed_range(config.bias_bits)
    return np.array([rng.choice((lo, hi)) if rng.random() < extremes
                     else rng.randint(lo // 4, hi // 4) for _ in range(config.c_out)],
                    dtype=np.int64)


def _input_range(config):
    bits = config.input_bits
    return signed_range(bits) if config.input_signed else unsigned_range(bits)


def random_input(rng, config, count, rate):
    """``count`` tokens (linear: (count, C_in)) or frames (conv: (count, C_in, H, W)).

    Each value is nonzero with probability ``rate`` (then uniform over the nonzero input values).
    ``rate`` may be a list, one rate per token / frame (0.0 gives an all-zero one, 1.0 with
    ``input_bits = 1`` an all-one one).
    """
    lo, hi = _input_range(config)
    nonzero = [v for v in range(lo, hi + 1) if v]
    rates = rate if isinstance(rate, (list, tuple)) else [rate] * count
    shape = ((config.c_in,) if config.kind == "linear"
             else (config.c_in, config.in_height, config.in_width))
    per = int(np.prod(shape))
    out = []
    for r in rates:
        out.append([rng.choice(nonzero) if rng.random() < r else 0 for _ in range(per)])
    return np.array(out, dtype=np.int64).reshape(len(rates), *shape)


def token_words(config, values):
    """Spike words of one token (a length-C_in sequence of ints): plane by plane, each plane
    packed like :func:`~spikeforge.golden.spikes.pack_words`, ``last`` on the final word."""
    raw = np.asarray(values, dtype=np.int64) & ((1 << config.input_bits) - 1)
    words = []
    for b in range(config.input_bits):
        plane = ((raw >> b) & 1).reshape(1, -1)
        words += [w for w, _ in pack_words(plane, config.word_bits)]
    return [(w, i == len(words) - 1) for i, w in enumerate(words)]


def input_words(config, x):
    """The whole ``spikes`` stream for ``x`` (tokens in order; frames in raster order)."""
    if config.kind == "linear":
        tokens = x.reshape(-1, config.c_in)
    else:
        tokens = x.transpose(0, 2, 3, 1).reshape(-1, config.c_in)
    return [w for token in tokens.tolist() for w in token_words(config, token)]


def golden_output(config, x, weights, bias):
    """The golden op's output as (tokens, C_out), tokens in the engine's output order."""
    common = dict(acc_bits=config.acc_bits, input_bits=config.input_bits,
                  input_signed=config.input_signed)
    if config.kind == "linear":
        return linear_int(x, weights, bias, **common)
    y = conv2d_int(x, weights, bias, stride=config.stride, padding=config.padding,
                   groups=config.conv_groups, **common)
    return y.transpose(0, 2, 3, 1).reshape(-1, config.c_out)


def output_beats(config, y):
    """Lane beats ``(data tuple, group, first, last)`` of golden output rows ``y`` (tokens, C_out);
    lanes past C_out are 0."""
    p, groups = config.lanes, config.lane_groups
    beats = []
    for token in y.tolist():
        padded = token + [0] * (groups * p - config.c_out)
        for g in range(groups):
            beats.append((tuple(padded[g * p:(g + 1) * p]), g, g == 0, g == groups - 1))
    return beats


def op_count(config, x):
    """:class:`~spikeforge.golden.sops.OpCount` of the layer on ``x``."""
    shape = config.weight_shape
    if config.kind == "linear":
        return linear_sops(x, shape, input_bits=config.input_bits)
    return conv2d_sops(x, shape, stride=config.stride, padding=config.padding,
                       groups=config.conv_groups, input_bits=config.input_bits)


def _depthwise_slices(config, x):
    """Nonzero ``lanes``-channel slices over all (output position, tap, plane): the depthwise
    engine's unit of work."""
    raw = x & ((1 << config.input_bits) - 1)
    p, groups = config.lanes, config.lane_groups
    total = 0
    for b in range(config.input_bits):
        plane = np.pad((raw >> b) & 1, ((0, 0), (0, groups * p - config.c_in), (0, 0), (0, 0)))
        sliced = plane.reshape(plane.shape[0], groups, p, *plane.shape[2:]).max(axis=2)
        total += int(windows(sliced, config.kernel, config.stride, config.padding).sum())
    return total


def output_tokens(config, x):
    """Output tokens of the layer on ``x``: one per input token (linear), one per output
    position of every frame (conv, depthwise)."""
    if config.kind == "linear":
        return x.shape[0]
    return x.shape[0] * config.out_height * config.out_width


def bound_cycles(config, x):
    """Analytic lower bound: ``max(events * G, tokens * G)`` with ``G = ceil(C_out / P)`` and
    tokens the output tokens (for depthwise, events are the nonzero lane slices, each one cycle
    of one group: ``max(slices, tokens * G)``)."""
    groups = config.lane_groups
    tokens = output_tokens(config, x)
    if config.kind == "depthwise":
        return max(_depthwise_slices(config, x), tokens * groups)
    return max(op_count(config, x).events * groups, tokens * groups)


def run_amaranth(engine, x, weights, bias, *, rng, idle=0.0, stall=0.0, load=True):
    """Run the :class:`~spikeforge.hdl.engine.SpikeEngine` ``engine`` in the Amaranth simulator
    on ``x``; return ``(beats, cycles)``.

    ``load``: write ``weights``/``bias`` through the ``load`` port first (else the engine must
    have been built with them as ``init``). ``cycles`` counts from the first spike word offered
    to the last output beat taken. ``beats`` are ``(data tuple, group, first, last)``.
    """
    from amaranth.sim import Simulator
    from spikeforge.hdl.engine import load_beats
    from spikeforge.verif.sim_streams import put_stream, get_stream, run_bounded, fork_rng

    config = engine.config
    words = input_words(config, x)
    n_beats = output_tokens(config, x) * config.lane_groups
    in_layout, load_layout = config.spike_layout, config.load_layout
    state = {"loaded": not load, "start": None, "cycle": 0, "end": None}
    beats = []
    load_rng, spikes_rng, out_rng = fork_rng(rng, 3)

    async def loader(ctx):
        if load:
            await put_stream(ctx, engine.load,
                             [load_layout.const(b) for b in load_beats(config, weights.tolist(),
                                                                       bias.tolist())],
                             rng=load_rng, idle=idle)
            await ctx.tick()
            state["loaded"] = True

    async def producer(ctx):
        while not state["loaded"]:
            await ctx.tick()
        state["start"] = state["cycle"]
        await put_stream(ctx, engine.spikes,
                         [in_layout.const({"data": w, "last": l}) for w, l in words],
                         rng=spikes_rng, idle=idle)

    async def consumer(ctx):
        for beat in await get_stream(ctx, engine.o, n_beats, rng=out_rng, stall=stall):
            beats.append((tuple(int(beat.data[j]) for j in range(config.lanes)),
                          int(beat.group), bool(beat.first), bool(beat.last)))
        state["end"] = state["cycle"]

    async def clock(ctx):
        while True:
            await ctx.tick()
            state["cycle"] += 1

    sim = Simulator(engine)
    sim.add_clock(1e-8)
    sim.add_testbench(loader)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.add_testbench(clock, background=True)
    slack = 1.0 / max(0.05, 1.0 - max(idle, stall))
    work = (bound_cycles(config, x) + len(words) + n_beats
            + (config.rows + 1) * config.lane_groups)
    budget = int(4 * slack * work) + 2000
    run_bounded(sim, max_cycles=budget)
    return beats, state["end"] - state["start"]
