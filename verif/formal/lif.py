"""Formal harness of :class:`~spikeforge.hdl.lif.LIFArray`: 2 lanes, 2 lane groups, 4
membrane rows (the registered-read pipeline, latency 4), 2 time steps, 3-bit currents, one
fractional bit and 3-bit membranes (narrower than ``current_bits + frac_bits``, so the membrane
saturates)."""

from amaranth.hdl import Array, Cat, Mux, Signal, signed
from amaranth.lib import data

from spikeforge.hdl import lif
from spikeforge.hdl.lif import LIFArray

from .harness import Harness, Mutation, valid_drops
from .properties import (ShadowQueue, clamp, counter, delta, drops_last, forces_ready, free,
                         implies, lane_beat_framing, patched, stream_sink, stream_source, transfer,
                         wrap_signed)

__all__ = ["LIFHarness"]


def _row_stuck(dut, m, internals):
    # the membrane row never advances: every beat updates row 0
    m.d.sync += internals("row").eq(0)


class LIFHarness(Harness):
    """Input: current beats framed as tokens (assumed); threshold writes at any time; output:
    spike beats.

    The harness copies every membrane write of the unit into a shadow of the membrane memory
    and keeps, per beat in flight, its current, its row and whether it starts a sample, so the
    membrane ``H`` computed for the beat in the compare stage (``c_h``) can be checked against
    the membrane it started from.
    """

    unit = "lif"
    component = LIFArray
    params = {"lanes": 1, "neurons": 4, "lane_groups": 1, "steps": 2, "current_bits": 2,
              "frac_bits": 1, "membrane_bits": 2, "threshold_bits": 1, "thresholds": 1}
    bound_depth = 12
    cover_depth = 16
    # the bounded membrane check takes about a minute: benchmark set only
    suite_groups = ("prove", "cover")
    mutations = {
        "valid_drops": valid_drops(),
        "wrap": Mutation(catches="membrane_between",
                         text="membrane saturation replaced by wrapping truncation",
                         during=lambda dut: patched(lif, "saturate_signed", wrap_signed)),
        "ready_while_full": Mutation(catches="in_flight",
                                     text="i.ready stays high while the pipeline is stalled",
                                     after=forces_ready("i")),
        "drops_last": Mutation(catches="framing_kept",
                               text="the spike beats lose their last flag",
                               after=drops_last("o")),
        "row_stuck": Mutation(catches="position_tracks",
                              text="the membrane row never advances (every beat updates row 0)",
                              after=_row_stuck),
    }
    suite_mutation = "wrap"

    def check(self, m, checks, dut, internals):
        lanes, rows, steps = dut.lanes, dut.beats_per_step, dut.steps
        mw, frac = dut.membrane_bits, dut.frac_bits
        stream_source(m, checks, dut.i, name="i")
        stream_sink(m, checks, dut.o, name="o")
        free(m, dut.thr.valid, dut.thr.payload)
        lane_beat_framing(m, checks, dut.i, lane_groups=dut.lane_groups, name="i")

        # Position of the next beat: its membrane row and time step.
        row = Signal(range(rows), name="h_row")
        step = Signal(range(steps), name="h_step")
        with m.If(transfer(dut.i)):
            m.d.sync += row.eq(Mux(row == rows - 1, 0, row + 1))
            with m.If(row == rows - 1):
                m.d.sync += step.eq(Mux(step == steps - 1, 0, step + 1))
        checks.prove("position_tracks",
                     (internals("row") == row) & (internals("step") == step)
                     & (row < rows) & (step < steps),
                     "beat b of a time step updates membrane row b (the unit's row and step "
                     "counters are the harness's)")

        latency = dut.latency
        taken = counter(m, transfer(dut.i), bits=4, name="taken")
        given = counter(m, transfer(dut.o), bits=4, name="given")
        checks.bound("in_flight", delta(taken, given) <= latency,
                     f"beats taken - spike beats delivered <= {latency} (the pipeline's "
                     f"stages)")

        # Per beat in flight: framing, current, row, and whether its membrane reads as 0.
        meta = data.StructLayout({"group": dut.i.payload.group.shape(), "first": 1, "last": 1})
        entry = data.StructLayout({"meta": meta, "x": dut.i.payload.data.shape(),
                                   "row": row.shape(), "fresh": 1})
        beat = Signal(entry, name="beat_in")
        m.d.comb += [
            beat.meta.group.eq(dut.i.payload.group), beat.meta.first.eq(dut.i.payload.first),
            beat.meta.last.eq(dut.i.payload.last), beat.x.eq(dut.i.payload.data),
            beat.row.eq(row), beat.fresh.eq(step == 0),
        ]
        shadow = ShadowQueue(m, push=transfer(dut.i), pop=transfer(dut.o), data=beat,
                             capacity=latency + 1, name="flight")
        head = entry(shadow.entries[0])
        out = dut.o.payload
        checks.bound("framing_kept",
                     implies(dut.o.valid, (shadow.count != 0) & (out.group == head.meta.group)
                             & (out.first == head.meta.first) & (out.last == head.meta.last)),
                     "each spike beat carries the group, first and last of the current beat "
                     "it answers, in order")

        # The membranes as the unit wrote them.
        membranes = Array(Signal(data.ArrayLayout(signed(mw), lanes), name=f"membrane_{r}")
                          for r in range(rows))
        with m.If(internals("mem_wr__en")):
            m.d.sync += membranes[internals("mem_wr__addr")].eq(internals("mem_wr__data"))
        compared = entry(Array(shadow.entries)[dut.o.valid])
        before = membranes[compared.row]
        c_h = data.ArrayLayout(signed(mw), lanes)(internals("c_h"))
        between = []
        for lane in range(lanes):
            v = Mux(compared.fresh, 0, before[lane])
            target = clamp(compared.x[lane] << frac, signed(mw))
            low, high = Mux(v < target, v, target), Mux(v < target, target, v)
            between.append((c_h[lane] >= low) & (c_h[lane] <= high))
        checks.bound("membrane_between",
                     implies(internals("c_valid"), Cat(*between).all()),
                     "the new membrane H of each lane lies between its old membrane V and the "
                     "drive X << F clamped to the membrane range: it saturates, never wraps")

        top = (1 << (mw - 1)) - 1
        exact = (Mux(compared.fresh, 0, before[0]) + (compared.x[0] << frac)) >> 1
        checks.cover("saturates", internals("c_valid") & ((exact > top) | (exact < -top - 1)),
                     "a membrane outside the range is computed (and clamped)")
        checks.cover("token_done", transfer(dut.o) & dut.o.payload.last & (given == rows - 1),
                     "the last spike beat of a time step is delivered")
