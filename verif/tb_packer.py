"""cocotb testbench: SpikePacker against :func:`spikeforge.golden.spikes.pack_words`."""

import cocotb
import numpy as np

from spikeforge.contract.sizes import ceil_div
from spikeforge.golden.spikes import pack_words
from spikeforge.hdl.layouts import lane_beat, spike_word
from spikeforge.verif.stream import StreamSource, StreamSink
from spikeforge.verif.tb import Testbench, Scoreboard, params, stimulus


@cocotb.test()
async def packer_matches_golden(dut):
    p, s = params(), stimulus()
    lanes, channels, word_bits = p["lanes"], p["channels"], p["word_bits"]
    groups = ceil_div(channels, lanes)
    in_layout = lane_beat(lanes=lanes, shape=1, lane_groups=groups)
    out_layout = spike_word(word_bits=word_bits)

    tb = Testbench(dut)
    await tb.reset()
    board = Scoreboard(dut._log, "word")
    source = StreamSource(dut, "i", tb.clk, rng=tb.rng, idle=s["in_idle"])
    StreamSink(dut, "o", tb.clk, rng=tb.rng, stall=s["out_stall"],
               on_beat=lambda raw: board.check(_word(out_layout, raw)))

    # Random rates per token, with all-zero and all-one tokens among them; the lanes past
    # `channels` carry random junk that the packer must drop.
    rates = [0.0, 1.0] + [tb.rng.random() * s["rate"] * 2 for _ in range(s["tokens"] - 2)]
    for rate in rates:
        lanes_bits = [int(tb.rng.random() < rate) for _ in range(groups * lanes)]
        for g in range(groups):
            source.send(in_layout.const({
                "data": lanes_bits[g * lanes:(g + 1) * lanes], "group": g,
                "first": g == 0, "last": g == groups - 1}).as_value().value)

    # The model is fed from what the DUT accepted, not from what was queued: each whole token
    # the source handed over is packed by the golden function.
    def on_accept(raw):
        beats.append(_beat_bits(in_layout, raw, lanes))
        if len(beats) == groups:
            token = np.array(beats).reshape(1, -1)[:, :channels]
            for word, last in pack_words(token, word_bits):
                board.expect((word, int(last)))
            beats.clear()

    beats = []
    source.on_accept = on_accept
    await source.wait_drained()
    await tb.until(lambda: board.pending == 0, timeout_cycles=200)
    tb.report(board)


def _beat_bits(layout, raw, lanes):
    beat = layout.from_bits(raw)
    return [int(beat.data[i]) for i in range(lanes)]


def _word(layout, raw):
    word = layout.from_bits(raw)
    return int(word.data), int(word.last)
