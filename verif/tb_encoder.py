"""cocotb testbench: SpikeEncoder against :func:`spikeforge.golden.sops.spike_events`."""

import cocotb

from spikeforge.golden.sops import spike_events
from spikeforge.contract.sizes import ceil_div
from spikeforge.hdl.layouts import encoder_input, encoder_output
from spikeforge.verif.stream import StreamSource, StreamSink
from spikeforge.verif.tb import Testbench, Scoreboard, params, stimulus


@cocotb.test()
async def encoder_matches_golden(dut):
    p, s = params(), stimulus()
    word_bits, channels, planes = p["word_bits"], p["channels"], p["planes"]
    count, chunk = p["count"], p["chunk"]
    per_plane = ceil_div(channels, word_bits)
    per_token = planes * per_plane
    in_layout = encoder_input(word_bits=word_bits)
    out_layout = encoder_output(count=count, addr_range=per_plane * (word_bits // chunk),
                                chunk=chunk, planes=planes)

    tb = Testbench(dut)
    await tb.reset()
    board = Scoreboard(dut._log, "event")
    source = StreamSource(dut, "i", tb.clk, rng=tb.rng, idle=s["in_idle"])
    StreamSink(dut, "o", tb.clk, rng=tb.rng, stall=s["out_stall"],
               on_beat=lambda raw: board.check(_beat(out_layout, raw, count, chunk)))

    # Token rates from all-zero to all-one; bits above `channels` are junk to be ignored.
    for t in range(s["tokens"]):
        rate = [0.0, 1.0][t] if t < 2 else tb.rng.choice([0.01, 0.05, 0.2, 0.5, 0.95])
        for w in range(per_token):
            word = sum(int(tb.rng.random() < rate) << i for i in range(word_bits))
            source.send(in_layout.const({"data": word, "last": w == per_token - 1})
                        .as_value().value)

    # The model sees each whole token the DUT accepted.
    token = []

    def on_accept(raw):
        beat = in_layout.from_bits(raw)
        token.append((int(beat.data), bool(beat.last)))
        if beat.last:
            for event in spike_events(token, word_bits=word_bits, channels=channels,
                                      planes=planes, count=count, chunk=chunk):
                board.expect(event)
            token.clear()

    source.on_accept = on_accept
    await source.wait_drained()
    await tb.until(lambda: board.pending == 0, timeout_cycles=400)
    tb.report(board)


def _beat(layout, raw, count, chunk):
    beat = layout.from_bits(raw)
    items = tuple((int(beat.addr[s]), int(beat.mask[s]) if chunk > 1 else 1)
                  for s in range(count) if (int(beat.valid) >> s) & 1)
    return items, int(beat.plane), bool(beat.last)
