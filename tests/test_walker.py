"""WindowWalker (hdl/engine/walker.py) on its own, in the Amaranth simulator: frames of random
sparse tokens against a Python model of the walk (every output position, its occupied taps in
raster order, each tap's words with the tap's tag, ``last`` on the window's final word, one zero
word for an empty window), with random stalls on both sides, in both RAM styles; long output
stalls while the next frame arrives at full rate (the window's last read must see the frame
being walked); the walk runs without a bubble when nothing stalls; parameter checks."""

import random

import pytest

from spikeforge.contract.sizes import conv_output_size
from spikeforge.hdl.engine.walker import WindowWalker
from spikeforge.verif.sim_streams import (StreamRun, put_stream, run_testbenches,
                                          stream_through)


def walk_model(frame, *, in_height, in_width, kernel, stride, padding, tag_step, tag_bits):
    """``(data, tag, last)`` of every word the walker emits for one ``frame`` (a raster list of
    tokens, each a list of words)."""
    size = dict(kernel=kernel, stride=stride, padding=padding)
    out = []
    for oy in range(conv_output_size(in_height, **size)):
        for ox in range(conv_output_size(in_width, **size)):
            window = []
            for tap in range(kernel * kernel):
                y = oy * stride - padding + tap // kernel
                x = ox * stride - padding + tap % kernel
                if 0 <= y < in_height and 0 <= x < in_width and any(frame[y * in_width + x]):
                    tag = (tap * tag_step) % (1 << tag_bits)
                    window += [(word, tag) for word in frame[y * in_width + x]]
            window = window or [(0, 0)]
            out += [(word, tag, i == len(window) - 1) for i, (word, tag) in enumerate(window)]
    return out


def random_frame(rng, *, pixels, words, word_bits, occupancy):
    """Tokens of one frame: a share ``occupancy`` of the pixels nonzero (some of their words
    zero), the rest all zero."""
    frame = []
    for _ in range(pixels):
        if rng.random() < occupancy:
            token = [rng.getrandbits(word_bits) if rng.random() < 0.7 else 0
                     for _ in range(words)]
            token[rng.randrange(words)] |= 1 << rng.randrange(word_bits)
        else:
            token = [0] * words
        frame.append(token)
    return frame


GEOMETRIES = {
    "3x3-s1-p1": dict(in_height=4, in_width=5, kernel=3, stride=1, padding=1, words=2),
    "3x3-s2-p1": dict(in_height=5, in_width=6, kernel=3, stride=2, padding=1, words=1),
    "2x2-s2-p0": dict(in_height=4, in_width=4, kernel=2, stride=2, padding=0, words=3),
    "5x5-s1-p2": dict(in_height=3, in_width=4, kernel=5, stride=1, padding=2, words=1),
    "1x1": dict(in_height=2, in_width=3, kernel=1, stride=1, padding=0, words=2),
}


async def drain_in_bursts(ctx, port, count, *, rng, burst, chance=0.25):
    """Take ``count`` payloads from ``port``; before each cycle, with probability ``chance``,
    hold ``ready`` low for 1 to ``burst`` cycles (stalls longer than a frame's load)."""
    received = []
    while len(received) < count:
        if rng.random() < chance:
            ctx.set(port.ready, 0)
            for _ in range(rng.randint(1, burst)):
                await ctx.tick()
        ctx.set(port.ready, 1)
        _, _, valid, payload = await ctx.tick().sample(port.valid, port.payload)
        if valid:
            received.append(payload)
    ctx.set(port.ready, 0)
    return received


def run_walker(geometry, *, ram_style="block", frames=3, occupancy=0.5, idle=0.3, stall=0.3,
               burst=0, seed=0, tag_step=3, tag_bits=4, word_bits=8):
    """Frames 0 and 1 all zero and all occupied, then ``occupancy``; the output stalls with
    probability ``stall`` per cycle or, with ``burst``, for 1 to ``burst`` cycles at a time
    (:func:`drain_in_bursts`; the input then never idles and the run's cycle stamps are not
    kept). Returns the words got, the words wanted, the :class:`StreamRun`, the words per
    frame."""
    rng = random.Random(seed)
    dut = WindowWalker(word_bits=word_bits, tag_step=tag_step, tag_bits=tag_bits,
                       ram_style=ram_style, **geometry)
    pixels = geometry["in_height"] * geometry["in_width"]
    shape = {name: geometry[name] for name in ("in_height", "in_width", "kernel", "stride",
                                                "padding")}
    sent, want, per_frame = [], [], []
    for f in range(frames):
        frame = random_frame(rng, pixels=pixels, words=geometry["words"], word_bits=word_bits,
                             occupancy=[0.0, 1.0][f] if f < 2 else occupancy)
        sent += [{"data": word, "last": w == len(token) - 1}
                 for token in frame for w, word in enumerate(token)]
        expected = walk_model(frame, tag_step=tag_step, tag_bits=tag_bits, **shape)
        want += expected
        per_frame.append(len(expected))
    max_cycles = 40 * (len(sent) + len(want)) * max(1, burst) + 500
    if burst:
        run = StreamRun([sent])

        async def feeder(ctx):
            await put_stream(ctx, dut.i, sent, rng=rng)

        async def drainer(ctx):
            run.payloads += await drain_in_bursts(ctx, dut.o, len(want), rng=rng, burst=burst)

        run.cycles = run_testbenches(dut, feeder, drainer, max_cycles=max_cycles)
    else:
        run = stream_through(dut, feeds=[(dut.i, sent)], drain=dut.o, count=len(want),
                             rng=rng, idle=idle, stall=stall, max_cycles=max_cycles)
    got = [(int(beat.data), int(beat.tag), bool(beat.last)) for beat in run.payloads]
    return got, want, run, per_frame


@pytest.mark.parametrize("ram_style", ["block", "distributed"])
@pytest.mark.parametrize("name", sorted(GEOMETRIES))
def test_walk_matches_model(name, ram_style):
    got, want, _, _ = run_walker(GEOMETRIES[name], ram_style=ram_style, seed=len(name))
    assert got == want


def test_tags_wrap_and_sparse_frames():
    got, want, _, _ = run_walker(GEOMETRIES["3x3-s1-p1"], tag_step=5, tag_bits=3, frames=4,
                                 occupancy=0.15, seed=3)
    assert got == want


@pytest.mark.parametrize("ram_style", ["block", "distributed"])
@pytest.mark.parametrize("name", ["1x1", "2x2-s2-p0", "3x3-s1-p1"])
def test_long_output_stalls_while_next_frame_loads(name, ram_style):
    """The input never idles and the output stalls for up to twice a frame's words at a time,
    so the next frame loads in full while the last read of a window is still in flight: every
    word must still come from the frame being walked (with LUT RAM this once read the new
    frame's word; the formal harness ``walker_distributed`` found it)."""
    geometry = GEOMETRIES[name]
    burst = 2 * geometry["in_height"] * geometry["in_width"] * geometry["words"]
    got, want, _, _ = run_walker(geometry, ram_style=ram_style, frames=12, occupancy=0.8,
                                 burst=burst, seed=11)
    assert got == want


@pytest.mark.parametrize("ram_style", ["block", "distributed"])
@pytest.mark.parametrize("name", ["3x3-s1-p1", "2x2-s2-p0"])
def test_walk_has_no_bubble(name, ram_style):
    """No stalls: each frame's words leave on consecutive cycles (a window of ``n`` occupied
    taps takes ``max(1, n * words)`` cycles)."""
    got, want, run, per_frame = run_walker(GEOMETRIES[name], ram_style=ram_style, idle=0.0,
                                           stall=0.0, seed=5)
    assert got == want
    start = 0
    for count in per_frame:
        stamps = run.delivered[start:start + count]
        assert stamps == list(range(stamps[0], stamps[0] + count))
        start += count


@pytest.mark.parametrize("kwargs, name", [
    (dict(kernel=5, padding=0), "kernel"),
    (dict(padding=3), "padding"),
    (dict(in_width=0), "in_width"),
    (dict(tag_bits=0), "tag_bits"),
    (dict(ram_style="lut"), "ram_style"),
])
def test_bad_parameters(kwargs, name):
    args = dict(word_bits=8, words=1, in_height=4, in_width=4, kernel=3, stride=1, padding=1,
                tag_step=1, tag_bits=4)
    with pytest.raises((TypeError, ValueError), match=name):
        WindowWalker(**{**args, **kwargs})


def test_output_size():
    walker = WindowWalker(word_bits=8, words=1, in_height=7, in_width=5, kernel=3, stride=2,
                          padding=1, tag_step=1, tag_bits=4)
    assert (walker.out_height, walker.out_width) == (4, 3)
