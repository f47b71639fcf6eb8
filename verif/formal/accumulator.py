"""Formal harness of :class:`~spikeforge.hdl.engine.accumulator.SpikeAccumulator`: one lane, two
lane groups, two weight rows, 4-bit partial sums drained as 2-bit values (so the output
saturation is reached)."""

from amaranth.hdl import Cat, Mux, Signal, signed
from amaranth.lib import data

from spikeforge.contract.sizes import ceil_div
from spikeforge.hdl.engine import accumulator
from spikeforge.hdl.engine.accumulator import SpikeAccumulator

from .harness import Harness, Mutation, valid_drops
from .properties import (clamp, counter, delta, drops_last, free, implies, patched, stream_sink,
                         stream_source, transfer, wrap_signed)

__all__ = ["AccumulatorHarness"]

# A bank is freed once its last lane group enters the drain registers (d0, d1, the output
# register), whose beats may belong to several tokens.
BANKS = 2
DRAIN_REGISTERS = 3


def tokens_in_flight(lane_groups):
    """Tokens between their last op and their last beat, at most: one per bank, and those
    whose beats fill the drain registers."""
    return BANKS + 1 + ceil_div(DRAIN_REGISTERS - 1, lane_groups)


class AccumulatorHarness(Harness):
    """Input: accumulate ops from an arbitrary producer; weight and bias loads at any time
    (their values are arbitrary); output: lane beats of finished tokens."""

    unit = "accumulator"
    component = SpikeAccumulator
    params = {"lanes": 1, "channels": 2, "rows": 2, "weight_bits": 2, "bias_bits": 2,
              "sum_bits": 4, "acc_bits": 2, "ram_style": "distributed"}
    # an op reaches the output after 9 cycles: the base case must see two beats leave
    prove_depth = 12
    bound_depth = 20
    cover_depth = 14
    mutations = {
        "valid_drops": valid_drops(),
        "wrap": Mutation(catches="o_clamped",
                         text="output saturation replaced by wrapping truncation",
                         during=lambda dut: patched(accumulator, "saturate_signed",
                                                    wrap_signed)),
        "drops_last": Mutation(catches=("beats_framed", "tokens_in_flight"),
                               text="a token's last beat loses its last flag",
                               after=drops_last("o")),
    }
    suite_mutation = "wrap"

    def check(self, m, checks, dut, internals):
        lanes, groups = dut.lanes, dut.lane_groups
        sum_bits, acc_bits = self.params["sum_bits"], self.params["acc_bits"]
        stream_source(m, checks, dut.ops, name="ops")
        stream_sink(m, checks, dut.o, name="o")
        free(m, dut.load.valid, dut.load.payload)

        # The drain's last register: the sums of the beat the output register takes next
        # (its layout starts with `valid` and ends with the `data` field).
        d1 = internals("d1")
        sums = data.ArrayLayout(signed(sum_bits), lanes)(d1[-lanes * sum_bits:])
        emit = d1[0] & (~dut.o.valid | dut.o.ready)
        taken = Signal(sums.shape(), name="sums_taken")
        with m.If(emit):
            m.d.sync += taken.eq(sums)
        out = dut.o.payload
        clamped = Cat(*[out.data[j] == clamp(taken[j], signed(acc_bits)) for j in range(lanes)])
        checks.prove("o_clamped", implies(dut.o.valid, clamped.all()),
                     f"each value on offer is its {sum_bits}-bit partial sum clamped to "
                     f"{acc_bits} bits (never wrapped)")

        tokens_in = counter(m, transfer(dut.ops) & dut.ops.payload.last, bits=4,
                            name="tokens_in")
        tokens_out = counter(m, transfer(dut.o) & out.last, bits=4, name="tokens_out")
        bound = tokens_in_flight(groups)
        checks.bound("tokens_in_flight", delta(tokens_in, tokens_out) <= bound,
                     f"tokens whose last op was taken - tokens delivered <= {bound} (one per "
                     f"partial-sum bank, and those in the {DRAIN_REGISTERS} drain registers)")
        group = Signal(range(groups), name="out_group")
        with m.If(transfer(dut.o)):
            m.d.sync += group.eq(Mux(group == groups - 1, 0, group + 1))
        checks.bound("beats_framed",
                     implies(dut.o.valid, (out.group == group) & (out.first == (group == 0))
                             & (out.last == (group == groups - 1))),
                     f"each token leaves as its {groups} lane groups in order, first and last "
                     f"marked")
        top = (1 << (acc_bits - 1)) - 1
        checks.cover("token_done", transfer(dut.o) & out.last & (taken[0] > top),
                     "a token is drained, its last value clamped")
