"""cocotb testbench: SpikeEngine against :func:`spikeforge.golden.conv.conv2d_int` /
:func:`~spikeforge.golden.conv.linear_int`.

Random weights (with the signed range's extremes) and biases go in through the ``load`` port;
then tokens (linear) or frames (conv, depthwise) with all-zero, all-nonzero and random inputs,
random idle on both input streams and random back-pressure on the output. The model sees only
what the DUT accepted: each whole token / frame taken from the ``spikes`` port is run through the
golden op and its lane beats are expected in order.
"""

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles

from spikeforge.hdl.engine import load_beats
from spikeforge.verif import engine_model as em
from spikeforge.verif.stream import StreamSource, StreamSink
from spikeforge.verif.tb import Testbench, Scoreboard, params, stimulus


@cocotb.test()
async def engine_matches_golden(dut):
    p, s = params(), stimulus()
    config = em.engine_config(**p)
    in_layout, load_layout, out_layout = (config.spike_layout, config.load_layout,
                                          config.output_layout)

    tb = Testbench(dut)
    await tb.reset()
    board = Scoreboard(dut._log, "beat")
    StreamSink(dut, "o", tb.clk, rng=tb.rng, stall=s["out_stall"],
               on_beat=lambda raw: board.check(_beat(out_layout, raw, config.lanes)))

    weights = em.random_weights(tb.rng, config)
    bias = em.random_bias(tb.rng, config)
    loader = StreamSource(dut, "load", tb.clk, rng=tb.rng, idle=s["load_idle"])
    for beat in load_beats(config, weights.tolist(), bias.tolist()):
        loader.send(load_layout.const(beat).as_value().value)
    await loader.wait_drained()
    await ClockCycles(tb.clk, 2)

    linear = config.kind == "linear"
    count = s["tokens"] if linear else s["frames"]
    rates = ([0.0, 1.0] + [tb.rng.random() * s["rate"] for _ in range(count - 2)])[:count]
    x = em.random_input(tb.rng, config, count, rates)
    source = StreamSource(dut, "spikes", tb.clk, rng=tb.rng, idle=s["in_idle"])
    for word, last in em.input_words(config, x):
        source.send(in_layout.const({"data": word, "last": last}).as_value().value)

    # Input monitor -> model: a whole token (linear) or frame (conv) of accepted words.
    per_token = config.words
    per_unit = 1 if linear else config.in_height * config.in_width
    words, tokens = [], []

    def on_accept(raw):
        beat = in_layout.from_bits(raw)
        words.append((int(beat.data), bool(beat.last)))
        if len(words) == per_token:
            tokens.append(em.token_values(config, words))
            words.clear()
        if len(tokens) == per_unit:
            t = np.array(tokens, dtype=np.int64)
            unit = (t if linear else
                    t.reshape(1, config.in_height, config.in_width, config.c_in)
                    .transpose(0, 3, 1, 2))
            for expected in em.output_beats(config, em.golden_output(config, unit, weights,
                                                                      bias)):
                board.expect(expected)
            tokens.clear()

    source.on_accept = on_accept
    await source.wait_drained()
    budget = 8 * em.bound_cycles(config, x) + 50 * count + 1000
    await tb.until(lambda: board.pending == 0, timeout_cycles=budget)
    tb.report(board)


def _beat(layout, raw, lanes):
    beat = layout.from_bits(raw)
    return (tuple(int(beat.data[j]) for j in range(lanes)), int(beat.group), bool(beat.first),
            bool(beat.last))
