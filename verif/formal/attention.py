"""Formal harnesses of the attention unit :class:`~spikeforge.hdl.attention.SDSA`, one per
variant, at 2 tokens, 2 channels, 1 head and 2 time steps.

Every variant is held to the shared contract of :mod:`spikeforge.hdl.attention`: per step it
takes the ``tokens`` K/V beats, then the ``tokens`` Q words, and answers each Q word with one
output word (``last`` set), in order. For ``v1`` the output word itself is checked:
``Q AND OR_n (K AND V)``.
"""

from amaranth.hdl import Mux, Signal

from spikeforge.contract.attention import VARIANT_KV_FIRST, VARIANT_QK_FIRST, VARIANT_V1
from spikeforge.hdl.attention import SDSA

from .harness import Harness, Mutation, valid_drops
from .properties import counter, delta, drops_last, implies, stream_sink, stream_source, transfer

__all__ = ["SDSAv1Harness", "SSAHarness", "SSAQKFirstHarness"]


def _q_ready_early(dut, m, internals):
    # Q words are taken before the step's K/V beats are all in
    m.d.comb += dut.q.ready.eq(~dut.o.valid | dut.o.ready)


def _mask_kept(dut, m, internals):
    # the OR of K AND V is not restarted with a new step
    with m.If(transfer(dut.kv)):
        m.d.sync += internals("mask", under=("core",)).eq(
            internals("mask", under=("core",)) | (dut.kv.payload.k & dut.kv.payload.v))


def _repeats_word(dut, m, internals):
    # an output word is offered again after it was taken
    with m.If(transfer(dut.o)):
        m.d.sync += internals("o__valid", under=("core",)).eq(1)


def _served_stuck(dut, m, internals):
    # the Q count of a step never advances: Q words are taken without end
    m.d.sync += internals("served", under=("core",)).eq(0)


def _valid_stuck(dut, m, internals):
    # o.valid is stuck high: words are offered with no Q word to answer
    m.d.comb += dut.o.valid.eq(1)


class AttentionHarness(Harness):
    """Inputs: K/V beats and Q words from arbitrary producers; output: to an arbitrary
    consumer."""

    component = SDSA
    # Q words taken and not yet answered, at most (None: not bounded by the harness)
    in_flight = 1
    # "bound" where the properties need the unit's state to close by induction
    group = "prove"
    cover_depth = 16
    mutations = {
        "valid_drops": valid_drops(comb=True),
        "q_ready_early": Mutation(catches="kv_then_q",
                                  text="Q words are taken before the step's K/V beats",
                                  after=_q_ready_early),
        "drops_last": Mutation(catches="last_always", text="an output word without last",
                               after=drops_last("o", comb=True)),
    }
    suite_mutation = "q_ready_early"


    def check(self, m, checks, dut, internals):
        tokens = dut.tokens
        stream_source(m, checks, dut.kv, name="kv")
        stream_source(m, checks, dut.q, name="q")
        stream_sink(m, checks, dut.o, name="o", group=self.group)

        # Position in the step: K/V beats taken, Q words taken.
        loaded = Signal(range(tokens + 1), name="kv_taken")
        served = Signal(range(tokens), name="q_taken")
        with m.If(transfer(dut.kv)):
            m.d.sync += loaded.eq(loaded + 1)
        with m.If(transfer(dut.q)):
            m.d.sync += served.eq(Mux(served == tokens - 1, 0, served + 1))
            with m.If(served == tokens - 1):
                m.d.sync += loaded.eq(0)
        self.loaded, self.served = loaded, served
        check = getattr(checks, self.group)
        check("kv_then_q",
              implies(transfer(dut.kv), loaded < tokens)
              & implies(transfer(dut.q), loaded == tokens)
              & (loaded <= tokens) & (served < tokens),
              f"per step the {tokens} K/V beats are taken before any of the {tokens} Q words")
        check("last_always", implies(dut.o.valid, dut.o.payload.last),
              "every output word is a whole token (last set)")
        asked = counter(m, transfer(dut.q), bits=4, name="q_in")
        answered = counter(m, transfer(dut.o), bits=4, name="o_out")
        self.unanswered = delta(asked, answered)
        if self.in_flight is None:
            check("no_answer_without_q", delta(asked, answered) < 8,
                  "output words delivered never outnumber the Q words taken")
        else:
            check("words_in_flight", delta(asked, answered) <= self.in_flight,
                  f"Q words taken - output words delivered <= {self.in_flight} (no answer "
                  f"without a Q word; none lost)")
        self.datapath(m, checks, dut, internals)
        checks.cover("sample_done", transfer(dut.o) & (answered == tokens * dut.steps - 1),
                     "the last output word of a sample is delivered")

    def datapath(self, m, checks, dut, internals):
        """Properties of the output words themselves (none by default)."""


def _params(variant):
    return {"variant": variant, "tokens": 2, "channels": 2, "heads": 1, "steps": 2, "shift": 1}


class SDSAv1Harness(AttentionHarness):
    unit = "sdsa_v1"
    params = _params(VARIANT_V1)
    # a step is 4 cycles: the base case must see the second step answered
    prove_depth = 10
    mutations = {**AttentionHarness.mutations,
                 "mask_kept": Mutation(catches="o_data",
                                       text="the K AND V column OR is not restarted per step",
                                       after=_mask_kept, under=("core",)),
                 "repeats_word": Mutation(catches="words_in_flight",
                                          text="an output word is offered again after it was "
                                               "taken",
                                          after=_repeats_word, under=("core",)),
                 "served_stuck": Mutation(catches="state_tracks",
                                          text="the Q count of a step never advances (Q words "
                                               "are taken without end)",
                                          after=_served_stuck, under=("core",))}

    def datapath(self, m, checks, dut, internals):
        # The harness's own OR of K AND V over the step, and the Q word answered.
        mask = Signal(dut.channels, name="kv_mask")
        with m.If(transfer(dut.kv)):
            both = dut.kv.payload.k & dut.kv.payload.v
            m.d.sync += mask.eq(Mux(self.loaded == 0, 0, mask) | both)
        expected = Signal(dut.channels, name="o_expected")
        with m.If(transfer(dut.q)):
            m.d.sync += expected.eq(dut.q.payload.data & mask)
        checks.prove("o_data", implies(dut.o.valid, dut.o.payload.data == expected),
                     "each output word is Q AND OR_n (K AND V) over the step's tokens")
        core = ("core",)
        checks.prove("state_tracks",
                     (internals("loaded", under=core) == self.loaded)
                     & (internals("served", under=core) == self.served)
                     & implies(self.loaded != 0, internals("mask", under=core) == mask)
                     & (self.unanswered == dut.o.valid),
                     "the unit's K/V and Q counts and column OR are the harness's; the only "
                     "unanswered Q word is the one on offer")


class SSAHarness(AttentionHarness):
    """``ssa`` (``kv_first``): bounded checks of the stream contract."""

    unit = "sdsa_ssa"
    params = _params(VARIANT_KV_FIRST)
    group = "bound"
    # the score pipeline, skid buffer, attention LIF and packer hold five or more Q words (and
    # take the next step's K/V behind them): no bound is asserted
    in_flight = None
    mutations = {**AttentionHarness.mutations,
                 "valid_stuck": Mutation(catches="no_answer_without_q",
                                         text="o.valid stuck high: words offered with no Q "
                                              "word to answer",
                                         after=_valid_stuck)}
    bound_depth = 24
    cover_depth = 30
    # about half a minute each: benchmark set only (the suite keeps the mutation)
    suite_groups = ()


class SSAQKFirstHarness(SSAHarness):
    unit = "sdsa_qk_first"
    params = _params(VARIANT_QK_FIRST)
