"""cocotb testbench: SDSA (every variant) against :func:`spikeforge.golden.attention.sdsa_int`.

Samples of ``steps x tokens`` Q, K, V spike tokens go in on ``kv`` and ``q`` with random idle
cycles, the output words are taken with random back-pressure. The first samples are all-zero,
all-one and mixed all-one/all-zero, then one where every token's K spikes in the same channel
(back-to-back updates of one scratch row); the rest draw a random firing rate per tensor. With
the ``rates`` stimulus every sample fires at those rates instead (the benchmark). The model is
fed from what the DUT accepted: once a whole sample's K/V beats and Q words have transferred,
the golden function computes its output words, which the in-order scoreboard compares. The
reported cycles run from reset to the last output word. The samples are drawn from the run's
seed (:func:`run_seed`), so ``spikeforge bench sdsa`` recomputes exactly what was sent.
"""

import os
import random

import cocotb
import torch
from cocotb.triggers import ClockCycles

from spikeforge.golden.attention import sdsa_int
from spikeforge.hdl.layouts import kv_pair, spike_word
from spikeforge.verif.stream import StreamSource, StreamSink
from spikeforge.verif.tb import Testbench, Scoreboard, params, stimulus

# (q, k, v) firing rates of the fixed samples at the start of every run.
FIXED_RATES = [(0.0, 0.0, 0.0), (1.0, 1.0, 1.0), (1.0, 0.0, 1.0), (1.0, 1.0, 0.0),
               (0.0, 1.0, 1.0)]


def pack_word(bits):
    """The spike word of ``bits`` (bit ``i`` is channel ``i``)."""
    return sum(int(b) << i for i, b in enumerate(bits))


def unpack_words(words, *, steps, tokens, channels):
    """``steps * tokens`` spike words, in order, as a ``(steps, tokens, channels)`` 0/1 tensor
    (the golden's input)."""
    return torch.tensor([[(int(word) >> c) & 1 for c in range(channels)]
                         for word in words]).view(steps, tokens, channels)


def make_samples(rng, *, count, tokens, channels, steps, rates=None):
    """The stimulus: ``count`` samples, each ``steps * tokens`` ``(q, k, v)`` word triples.

    With ``rates=(q, k, v)`` every sample fires at those rates (the benchmark's realistic load).
    Otherwise the fixed samples come first (:data:`FIXED_RATES`, then one where every token's K
    spikes in one channel per step, so the same scratch row is read back to back while it is
    being written), then samples with random rates. Deterministic for a given ``rng`` state, so
    the benchmark regenerates exactly what the testbench sent.
    """
    def random_word(rate):
        return pack_word(rng.random() < rate for _ in range(channels))

    def rate_sample(q_rate, k_rate, v_rate):
        return [(random_word(q_rate), random_word(k_rate), random_word(v_rate))
                for _ in range(steps * tokens)]

    def column_sample():
        column = [1 << rng.randrange(channels) for _ in range(steps)]
        return [(random_word(0.5), column[t], random_word(0.7))
                for t in range(steps) for _ in range(tokens)]

    if rates is not None:
        return [rate_sample(*rates) for _ in range(count)]
    samples = [rate_sample(*fixed) for fixed in FIXED_RATES] + [column_sample()]
    while len(samples) < count:
        samples.append(rate_sample(*(rng.random() for _ in range(3))))
    return samples[:count]


def run_seed():
    """The seed the run was started with (``simulate(seed=...)``).

    cocotb 2 reseeds every test with that seed plus a hash of the test's name
    (``cocotb.RANDOM_SEED`` inside a test), so the stimulus is drawn from the run's own seed,
    which the benchmark can regenerate."""
    return int(os.environ.get("COCOTB_RANDOM_SEED", cocotb.RANDOM_SEED))


@cocotb.test()
async def sdsa_matches_golden(dut):
    p, s = params(), stimulus()
    variant, tokens, channels = p["variant"], p["tokens"], p["channels"]
    heads, steps, shift = p["heads"], p["steps"], p["shift"]
    kv_layout, word_layout = kv_pair(word_bits=channels), spike_word(word_bits=channels)

    tb = Testbench(dut)
    await tb.reset()
    board = Scoreboard(dut._log, "word")
    kv_source = StreamSource(dut, "kv", tb.clk, rng=tb.rng, idle=s["kv_idle"])
    q_source = StreamSource(dut, "q", tb.clk, rng=tb.rng, idle=s["q_idle"])

    last_output = [0]

    def on_output(raw):
        word = word_layout.from_bits(raw)
        board.check((int(word.data), int(word.last)))
        last_output[0] = tb.cycles

    StreamSink(dut, "o", tb.clk, rng=tb.rng, stall=s["out_stall"], on_beat=on_output)

    samples = make_samples(random.Random(run_seed()), count=s["samples"], tokens=tokens,
                           channels=channels, steps=steps, rates=s["rates"])
    for sample in samples:
        for q, k, v in sample:
            kv_source.send(kv_layout.const({"k": k, "v": v}).as_value().value)
            q_source.send(word_layout.const({"data": q, "last": 1}).as_value().value)

    # The input monitors: a sample is modelled once all of its beats have transferred.
    per_sample = steps * tokens
    taken = {"kv": [], "q": []}

    def model():
        if len(taken["kv"]) < per_sample or len(taken["q"]) < per_sample:
            return
        kv = [kv_layout.from_bits(raw) for raw in taken["kv"][:per_sample]]
        qw = [word_layout.from_bits(raw) for raw in taken["q"][:per_sample]]
        del taken["kv"][:per_sample], taken["q"][:per_sample]

        shape = {"steps": steps, "tokens": tokens, "channels": channels}
        out = sdsa_int(unpack_words([w.data for w in qw], **shape),
                       unpack_words([b.k for b in kv], **shape),
                       unpack_words([b.v for b in kv], **shape),
                       variant=variant, heads=heads, shift=shift)
        for row in out.view(per_sample, channels):
            board.expect((pack_word(row.tolist()), 1))

    def monitor(name):
        def on_accept(raw):
            taken[name].append(raw)
            model()
        return on_accept

    kv_source.on_accept = monitor("kv")
    q_source.on_accept = monitor("q")

    await kv_source.wait_drained()
    await q_source.wait_drained()
    # Worst case after the last input: the last step's Q phase with every pair of tokens, in
    # every channel (qk_first walks a pair once per shared channel).
    budget = 40 * steps * tokens * (tokens * channels + heads + 2) + 200
    await tb.until(lambda: board.pending == 0, timeout_cycles=budget)
    await ClockCycles(tb.clk, 50)           # any extra output word shows up as pending
    # The figure is the cycles from reset to the last output word (the benchmark's measure).
    tb.cycles = last_output[0] + 1
    dut._log.info("%d words checked, %d mismatches, %d cycles to the last word",
                  board.checked, board.mismatches, tb.cycles)
    tb.report(board)
