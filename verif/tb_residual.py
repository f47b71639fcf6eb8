"""cocotb testbench: ResidualAdd against :func:`spikeforge.golden.residual.residual_add_int`.

Random lane beats on both inputs (uniform values, with a share of extreme ones so that both
saturation limits are hit), random idle cycles on each input and back-pressure on the output.
The model takes each pair of beats the DUT accepted and the in-order scoreboard checks the sums.
"""

import cocotb
import torch
from amaranth.hdl import signed, unsigned
from cocotb.triggers import ClockCycles

from spikeforge.contract.sizes import ceil_div, signed_range, unsigned_range
from spikeforge.golden.residual import residual_add_int
from spikeforge.hdl.layouts import lane_beat
from spikeforge.verif.stream import StreamSource, StreamSink
from spikeforge.verif.tb import Testbench, Scoreboard, params, stimulus


def _range(mode, bits):
    return signed_range(bits) if mode == "membrane" else unsigned_range(bits)


@cocotb.test()
async def residual_matches_golden(dut):
    p, s = params(), stimulus()
    lanes, channels, mode = p["lanes"], p["channels"], p["mode"]
    groups = ceil_div(channels, lanes)
    shape = signed if mode == "membrane" else unsigned
    layouts = {name: lane_beat(lanes=lanes, shape=shape(p[f"{name}_bits"]), lane_groups=groups)
               for name in ("residual", "branch", "out")}

    tb = Testbench(dut)
    await tb.reset()
    board = Scoreboard(dut._log, "beat")
    sources = {name: StreamSource(dut, name, tb.clk, rng=tb.rng, idle=s["in_idle"])
               for name in ("residual", "branch")}

    def decode(layout, raw):
        beat = layout.from_bits(raw)
        return [int(beat.data[i]) for i in range(lanes)], int(beat.group), int(beat.first), \
            int(beat.last)

    StreamSink(dut, "o", tb.clk, rng=tb.rng, stall=s["out_stall"],
               on_beat=lambda raw: board.check(decode(layouts["out"], raw)))

    def value(name):
        low, high = _range(mode, p[f"{name}_bits"])
        pick = tb.rng.random()
        if pick < 0.15:
            return low
        if pick < 0.3:
            return high
        return tb.rng.randint(low, high)

    for _ in range(s["tokens"]):
        for g in range(groups):
            for name, source in sources.items():
                beat = {"data": [value(name) for _ in range(lanes)], "group": g,
                        "first": g == 0, "last": g == groups - 1}
                source.send(layouts[name].const(beat).as_value().value)

    taken = {"residual": [], "branch": []}

    def monitor(name):
        def on_accept(raw):
            taken[name].append(decode(layouts[name], raw))
            while taken["residual"] and taken["branch"]:
                (r, group, first, last), (b, *_) = taken["residual"].pop(0), taken["branch"].pop(0)
                total = residual_add_int(torch.tensor(r), torch.tensor(b), mode=mode,
                                         bits=p["out_bits"])
                board.expect((total.tolist(), group, first, last))
        return on_accept

    for name, source in sources.items():
        source.on_accept = monitor(name)
    for source in sources.values():
        await source.wait_drained()
    await tb.until(lambda: board.pending == 0, timeout_cycles=200)
    await ClockCycles(tb.clk, 20)
    tb.report(board)
