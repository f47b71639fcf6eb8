"""Formal harness of :class:`~spikeforge.hdl.residual.ResidualAdd`: both modes, 2 lanes,
3-bit values (so saturation is reached in a few cycles)."""

from amaranth.hdl import Cat, Signal

from spikeforge.hdl import residual
from spikeforge.hdl.residual import ResidualAdd

from .harness import Harness, Mutation, valid_drops
from .properties import (clamp, counter, delta, drops_last, implies, patched, stream_sink,
                         stream_source, transfer, wrap_signed, wrap_unsigned)

__all__ = ["ResidualHarness", "ResidualSEWHarness"]


def _ignores_stall(dut, m, internals):
    # Both inputs report "taken" whenever both are valid, even while the output is stalled.
    ready = dut.residual.valid & dut.branch.valid
    m.d.comb += [dut.residual.ready.eq(ready), dut.branch.ready.eq(ready)]


def _takes_branch_alone(dut, m, internals):
    # a branch beat is taken without its residual beat
    m.d.comb += dut.branch.ready.eq(dut.branch.valid & (~dut.o.valid | dut.o.ready))


_STREAM_MUTATIONS = {
    "valid_drops": valid_drops(),
    "takes_branch_alone": Mutation(catches="join_together",
                                   text="a branch beat is taken without its residual beat",
                                   after=_takes_branch_alone),
    "drops_last": Mutation(catches="o_framing", text="the sum beats lose their last flag",
                           after=drops_last("o")),
    "ignores_stall": Mutation(
        catches="beats_conserved",
        text="inputs reported taken while the output is stalled (a beat lost)",
        after=_ignores_stall),
}


class ResidualHarness(Harness):
    """Inputs: residual and branch beats from arbitrary producers; output to an arbitrary
    consumer. The harness keeps a copy of the last beats the join took."""

    unit = "residual"
    component = ResidualAdd
    params = {"lanes": 2, "channels": 3, "mode": "membrane", "residual_bits": 3,
              "branch_bits": 3, "out_bits": 3}
    cover_depth = 6
    mutations = {
        "wrap": Mutation(
            catches="o_clamped_sum", text="signed saturation replaced by wrapping truncation",
            during=lambda dut: patched(residual, "saturate_signed", wrap_signed)),
        **_STREAM_MUTATIONS,
    }
    suite_mutation = "wrap"

    def check(self, m, checks, dut, internals):
        r, b, o = dut.residual, dut.branch, dut.o
        stream_source(m, checks, r, name="residual")
        stream_source(m, checks, b, name="branch")
        stream_sink(m, checks, o, name="o")

        # The beats the join took last, kept by the harness.
        took_r = Signal.like(r.payload)
        took_b = Signal.like(b.payload)
        with m.If(transfer(r)):
            m.d.sync += [took_r.eq(r.payload), took_b.eq(b.payload)]

        checks.prove("join_together", transfer(r) == transfer(b),
                     "a residual beat is taken exactly when a branch beat is")
        taken = counter(m, transfer(r), bits=4, name="taken")
        given = counter(m, transfer(o), bits=4, name="given")
        checks.prove("beats_conserved", delta(taken, given) == o.valid,
                     "beats taken = beats delivered + the beat on offer (none lost or "
                     "repeated)")
        shape = o.payload.data.shape().elem_shape
        exact = [took_r.data[lane] + took_b.data[lane]
                 for lane in range(dut.lanes)]
        sums = Cat(*[o.payload.data[lane] == clamp(exact[lane], shape)
                     for lane in range(dut.lanes)])
        checks.prove("o_clamped_sum", implies(o.valid, sums.all()),
                     "each lane on offer is residual + branch of the taken beats, clamped to "
                     "the output range (never wrapped)")
        framing = Cat(o.payload.group == took_r.group, o.payload.first == took_r.first,
                      o.payload.last == took_r.last)
        checks.prove("o_framing", implies(o.valid, framing.all()),
                     "group, first and last on offer are the residual beat's")

        top = (1 << (shape.width - 1)) - 1 if shape.signed else (1 << shape.width) - 1
        checks.cover("token_done", transfer(o) & o.payload.last,
                     "a token's last beat is delivered")
        checks.cover("clamps", o.valid & (exact[0] > top),
                     "a sum above the output range is on offer (clamped)")


class ResidualSEWHarness(ResidualHarness):
    """The SEW mode: unsigned spike counts, 1-bit branch spikes."""

    unit = "residual_sew"
    params = {**ResidualHarness.params, "mode": "sew", "residual_bits": 2, "branch_bits": 1,
              "out_bits": 2}
    mutations = {
        "wrap": Mutation(
            catches="o_clamped_sum", text="unsigned saturation replaced by truncation",
            during=lambda dut: patched(residual, "saturate_unsigned", wrap_unsigned)),
        **_STREAM_MUTATIONS,
    }
