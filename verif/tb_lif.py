"""cocotb testbench: LIFArray against :func:`spikeforge.golden.lif.lif_int`.

Random currents (a share of them at the extremes of the input range), random per-channel
thresholds loaded through the ``thr`` port, random idle cycles on both input streams and random
back-pressure on the output, several samples back to back, then a new threshold table and more
samples. The model is fed from the beats the DUT accepted: each whole sample is run through the
golden integer LIF, and every neuron update (lane of a spike beat, with the beat's group and
first/last) is checked in order. Arrays are numpy: torch is slow to import inside a simulator.
"""

import cocotb
import numpy as np
from amaranth.hdl import signed

from spikeforge.contract.sizes import signed_range, unsigned_range
from spikeforge.golden.lif import lif_int, to_lane_order, from_lane_order
from spikeforge.hdl.layouts import lane_beat, threshold_row
from spikeforge.verif.stream import StreamSource, StreamSink
from spikeforge.verif.tb import Testbench, Scoreboard, params, stimulus

__all__ = ["random_currents", "random_thresholds", "golden_spikes", "sample_shape",
           "membrane_bits"]


def sample_shape(p):
    """``(steps, tokens, channels)`` of one sample of a ``LIFArray`` with parameters ``p``."""
    lanes, groups = p["lanes"], p.get("lane_groups", 1)
    return p["steps"], p["neurons"] // (lanes * groups), lanes * groups


def membrane_bits(p):
    """Membrane bits of a ``LIFArray`` with parameters ``p`` (its default when not given)."""
    return p.get("membrane_bits") or p["current_bits"] + p["frac_bits"]


def random_currents(rng, shape, *, bits, extremes=0.1):
    """int64 array of ``shape``: uniform over ``signed(bits)`` with a share ``extremes`` of
    values at its two ends, and half the rest small (so membranes hover near thresholds)."""
    low, high = signed_range(bits)
    small = max(1, high >> 3)
    values = []
    for _ in range(int(np.prod(shape))):
        r = rng.random()
        if r < extremes:
            values.append(rng.choice((low, high)))
        elif r < (1 + extremes) / 2:
            values.append(rng.randint(-small, small))
        else:
            values.append(rng.randint(low, high))
    return np.array(values, dtype=np.int64).reshape(shape)


def random_thresholds(rng, p):
    """One random threshold per channel for a ``LIFArray`` with parameters ``p``: a tenth over
    the whole range, the rest where the membrane can reach (inputs and membrane bits allowing),
    half of those as low as the small currents of :func:`random_currents`, so that membranes
    often land exactly on a threshold."""
    frac = p["frac_bits"]
    top = unsigned_range(p.get("threshold_bits", 8))[1]
    reach = min(top, 1 << (p["current_bits"] - 1), signed_range(membrane_bits(p))[1] >> frac)
    values = []
    for _ in range(sample_shape(p)[2]):
        r = rng.random()
        values.append(rng.randint(0, top) if r < 0.1 else
                      rng.randint(0, reach) if r < 0.55 else rng.randint(0, max(1, reach >> 3)))
    return values


def golden_spikes(p, currents, thresholds):
    """Spikes of one sample ``(steps, tokens, channels)`` through the golden integer LIF."""
    return lif_int(currents, threshold=np.array(thresholds, dtype=np.int64),
                   tau_log2=p.get("tau_log2", 1), frac_bits=p["frac_bits"],
                   reset=p.get("reset", "hard"),
                   membrane_bits=membrane_bits(p))


@cocotb.test()
async def lif_matches_golden(dut):
    p, s = params(), stimulus()
    lanes, groups = p["lanes"], p.get("lane_groups", 1)
    steps, tokens, channels = sample_shape(p)
    beats_per_sample = steps * tokens * groups
    in_layout = lane_beat(lanes=lanes, shape=signed(p["current_bits"]), lane_groups=groups)
    out_layout = lane_beat(lanes=lanes, shape=1, lane_groups=groups)
    thr_layout = threshold_row(lanes=lanes, threshold_bits=p.get("threshold_bits", 8),
                               lane_groups=groups)

    tb = Testbench(dut)
    board = Scoreboard(dut._log, "neuron")
    table = [0] * channels            # the threshold table as the DUT took it
    accepted = []                     # (currents, group, first, last) of the sample so far

    def on_threshold(raw):
        row = thr_layout.from_bits(raw)
        table[row.group * lanes:(row.group + 1) * lanes] = list(row.data)

    def on_current(raw):
        beat = in_layout.from_bits(raw)
        accepted.append((list(beat.data), beat.group, beat.first, beat.last))
        if len(accepted) == beats_per_sample:
            beats = np.array([a[0] for a in accepted], dtype=np.int64)
            currents = from_lane_order(beats, steps=steps, tokens=tokens, channels=channels)
            spikes = to_lane_order(golden_spikes(p, currents, table), lanes)
            for (_, group, first, last), row in zip(accepted, spikes.tolist()):
                for lane, spike in enumerate(row):
                    board.expect((group, first, last, lane, spike))
            accepted.clear()

    def on_spikes(raw):
        beat = out_layout.from_bits(raw)
        for lane in range(lanes):
            board.check((beat.group, beat.first, beat.last, lane, beat.data[lane]))

    thr = StreamSource(dut, "thr", tb.clk, rng=tb.rng, idle=s["thr_idle"],
                       on_accept=on_threshold)
    source = StreamSource(dut, "i", tb.clk, rng=tb.rng, idle=s["in_idle"],
                          on_accept=on_current)
    StreamSink(dut, "o", tb.clk, rng=tb.rng, stall=s["out_stall"], on_beat=on_spikes)
    # The streams drive valid low before reset ends, so no input is ever left floating.
    await tb.reset()

    phases = [n for n in (s["samples"] - s["samples"] // 2, s["samples"] // 2) if n]
    for phase, samples in enumerate(phases):
        # A new threshold table, loaded while the array is idle.
        values = random_thresholds(tb.rng, p)
        for g in range(groups):
            thr.send(thr_layout.const({"group": g,
                                       "data": values[g * lanes:(g + 1) * lanes]})
                     .as_value().value)
        await thr.wait_drained()

        start = tb.cycles
        for _ in range(samples):
            currents = random_currents(tb.rng, (steps, tokens, channels),
                                       bits=p["current_bits"], extremes=s["extremes"])
            for b, row in enumerate(to_lane_order(currents, lanes).tolist()):
                g = b % groups
                source.send(in_layout.const({"data": row, "group": g, "first": g == 0,
                                             "last": g == groups - 1}).as_value().value)
        await source.wait_drained()
        await tb.until(lambda: board.pending == 0, timeout_cycles=100 + 50 * beats_per_sample)
        beats = samples * beats_per_sample
        cycles = tb.cycles - start
        dut._log.info("phase %d: %d beats, %d neuron updates in %d cycles: %.3f updates/cycle",
                      phase, beats, beats * lanes, cycles, beats * lanes / max(cycles, 1))
    tb.report(board)
