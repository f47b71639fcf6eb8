"""``SSAQKFirst`` (:mod:`spikeforge.hdl.attention.qk_first`) against its cost model: without
idle or stalls the unit visits only the keys a Q token overlaps, so its cycles lie just above
:func:`spikeforge.verif.bench_sdsa.model_cycles` and well below the sweep it replaced. (Its
words against the golden under stalls, on every simulator: ``test_attention.py``.)"""

import random

from spikeforge.contract.attention import VARIANT_QK_FIRST
from spikeforge.golden.attention import sdsa_int
from spikeforge.hdl.attention import SDSA
from spikeforge.verif.bench_sdsa import model_cycles
from spikeforge.verif.sim_streams import stream_through
from spikeforge.verif.tb_sdsa import make_samples, pack_word, unpack_words


def test_qk_first_cycles_follow_model():
    # No idle, no stalls: the qk_first unit visits only the overlapping keys, so its cycles are
    # the cost model plus a few cycles of pipeline latency per step (a sweep of every stored key
    # per Q token would take about twice as long here).
    shape = {"tokens": 12, "channels": 16, "heads": 4, "steps": 3}
    steps, tokens, channels = shape["steps"], shape["tokens"], shape["channels"]
    samples = make_samples(random.Random(5), count=1, tokens=tokens, channels=channels,
                           steps=steps, rates=(0.3, 0.08, 0.3))
    dut = SDSA(variant=VARIANT_QK_FIRST, shift=3, **shape)

    q, k, v = (unpack_words([triple[i] for triple in samples[0]], steps=steps, tokens=tokens,
                            channels=channels) for i in range(3))
    want = [pack_word(row) for row in sdsa_int(q, k, v, variant=VARIANT_QK_FIRST,
                                               heads=shape["heads"], shift=3).view(-1, channels)]
    run = stream_through(dut, feeds=[(dut.kv, [{"k": k, "v": v} for _, k, v in samples[0]]),
                                     (dut.q, [{"data": q, "last": 1} for q, _, _ in samples[0]])],
                         drain=dut.o, count=len(want), rng=random.Random(5), max_cycles=5000)
    assert [int(w.data) for w in run.payloads] == want
    model = model_cycles(samples, **shape)
    stored = [sum(1 for _, kk, _ in samples[0][t * tokens:(t + 1) * tokens] if kk)
              for t in range(steps)]
    sweep = sum(tokens * (1 + max(1, m)) for m in stored)      # the previous design's cost
    assert model < run.delivered[-1] <= model + 10 * steps + 12 < sweep
