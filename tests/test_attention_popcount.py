"""``KVPopcount`` (:mod:`spikeforge.hdl.attention.popcount`) alone in the Amaranth simulator:
every row of the per-head ``K^T V`` against :func:`spikeforge.golden.attention.kv_int`, over
products at several firing rates with idle input cycles, and its parameter check."""

import random

import pytest
import torch
from amaranth.sim import Simulator

from spikeforge.golden.attention import kv_int
from spikeforge.hdl.attention import KVPopcount
from spikeforge.verif.sim_streams import put_stream
from spikeforge.verif.tb_sdsa import pack_word


def _spikes(shape, rate, gen):
    return (torch.rand(shape, generator=gen) < rate).to(torch.int64)


def test_kv_popcount_amaranth_sim():
    tokens, channels, heads = 6, 8, 2
    dut = KVPopcount(tokens=tokens, channels=channels, heads=heads)
    dh = channels // heads
    gen = torch.Generator().manual_seed(4)
    rng = random.Random(4)
    products = [(_spikes((1, tokens, channels), r, gen), _spikes((1, tokens, channels), r, gen))
                for r in (0.5, 1.0, 0.0, 0.3)]

    async def bench(ctx):
        for k, v in products:
            beats = [{"k": pack_word(k[0, n]), "v": pack_word(v[0, n])} for n in range(tokens)]
            await put_stream(ctx, dut.i, beats, rng=rng, idle=0.3)
            await ctx.tick().until(dut.done)
            want = kv_int(k, v, heads=heads)[0]
            for row in range(channels):
                ctx.set(dut.rd_addr, row)
                ctx.set(dut.rd_en, 1)
                await ctx.tick()
                ctx.set(dut.rd_en, 0)
                got = [ctx.get(dut.rd_data[j]) for j in range(dh)]
                assert got == want[row // dh, row % dh].tolist(), f"row {row}"
            ctx.set(dut.release, 1)
            await ctx.tick()
            ctx.set(dut.release, 0)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def test_kv_popcount_bad_parameters():
    with pytest.raises(ValueError, match="heads"):
        KVPopcount(tokens=4, channels=6, heads=4)
