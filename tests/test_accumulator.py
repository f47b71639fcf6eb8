"""SpikeAccumulator (hdl/engine/accumulator.py), the engine's adder array on its own: random ops
(expanded events, masked depthwise events, null closing ops) with random stalls against an
independent model computed from the op list, in the Amaranth simulator."""

import random

import pytest

from spikeforge.contract.sizes import ceil_div
from spikeforge.golden.conv import saturate
from spikeforge.hdl.engine.accumulator import SpikeAccumulator
from spikeforge.contract.program import group_bits
from spikeforge.verif.sim_streams import put_stream, get_stream, run_testbenches


def accumulator_model(ops, weights, bias, *, lanes, channels, planes, signed_input, acc_bits):
    """Sums of each token, straight from the op list (an independent model of the array)."""
    groups = ceil_div(channels, lanes)
    gbits = group_bits(groups)
    tokens, sums = [], None
    for op in ops:
        if sums is None:
            sums = [bias[g][j] for g in range(groups) for j in range(lanes)]
        if not op["null"]:
            sign = -1 if signed_input and op["plane"] == planes - 1 else 1
            for g in (range(groups) if op["expand"] else [op["group"]]):
                row = weights[op["row"] << gbits | g]
                for j in range(lanes):
                    if op["expand"] or (op["mask"] >> j) & 1:
                        sums[g * lanes + j] += sign * (row[j] << op["plane"])
        if op["last"]:
            tokens.append([saturate(v, acc_bits) if c < channels else 0
                           for c, v in enumerate(sums)])
            sums = None
    return tokens


@pytest.mark.parametrize("lanes, channels, planes, signed_input", [
    (4, 10, 1, False),
    (4, 16, 3, True),
    (8, 5, 2, False),
])
def test_adder_array(lanes, channels, planes, signed_input):
    rng = random.Random(lanes * 100 + channels)
    rows, acc_bits, weight_bits, bias_bits = 6, 10, 6, 9
    groups = ceil_div(channels, lanes)
    dut = SpikeAccumulator(lanes=lanes, channels=channels, rows=rows, planes=planes,
                           input_signed=signed_input, weight_bits=weight_bits,
                           bias_bits=bias_bits, sum_bits=20, acc_bits=acc_bits)
    gbits = group_bits(groups)
    weights = {r << gbits | g: [rng.choice([-32, 31, rng.randint(-32, 31)]) for _ in range(lanes)]
               for r in range(rows) for g in range(groups)}
    bias = [[rng.randint(-256, 255) for _ in range(lanes)] for _ in range(groups)]
    ops = []
    for _ in range(30):
        n = rng.choice([0, 1, 2, 8])
        for i in range(n):
            ops.append({"row": rng.randrange(rows), "group": rng.randrange(groups),
                        "mask": rng.randrange(1 << lanes), "plane": rng.randrange(planes),
                        "expand": rng.random() < 0.6, "null": False, "last": i == n - 1})
        if not n:
            ops.append({"row": 0, "group": 0, "mask": 0, "plane": 0, "expand": True,
                        "null": True, "last": True})
    expected = accumulator_model(ops, weights, bias, lanes=lanes, channels=channels,
                                 planes=planes, signed_input=signed_input, acc_bits=acc_bits)
    load_layout = dut.load.payload.shape()
    op_layout = dut.ops.payload.shape()
    done = {"load": False}
    got = []

    async def loader(ctx):
        beats = ([{"addr": a, "bias": 0, "data": row} for a, row in weights.items()]
                 + [{"addr": g, "bias": 1, "data": row} for g, row in enumerate(bias)])
        await put_stream(ctx, dut.load, [load_layout.const(b) for b in beats], rng=rng, idle=0.3)
        done["load"] = True

    async def producer(ctx):
        while not done["load"]:
            await ctx.tick()
        await put_stream(ctx, dut.ops, [op_layout.const(op) for op in ops], rng=rng, idle=0.3)

    async def consumer(ctx):
        beats = await get_stream(ctx, dut.o, len(expected) * groups, rng=rng, stall=0.4)
        for t in range(len(expected)):
            token = []
            for g, beat in enumerate(beats[t * groups:(t + 1) * groups]):
                assert (int(beat.group), bool(beat.first), bool(beat.last)) == \
                    (g, g == 0, g == groups - 1)
                token += [int(beat.data[j]) for j in range(lanes)]
            got.append(token)

    run_testbenches(dut, loader, producer, consumer,
                    max_cycles=20 * (len(ops) * groups + len(weights)) + 1000)
    assert got == expected
