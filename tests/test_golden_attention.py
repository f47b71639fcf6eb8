"""Golden attention and residual models: float versions against an independent straightforward
formulation (per-head loops of ``@`` on float spikes, spikingjelly's own LIF), integer versions
against the float ones exactly, and the parameter checks."""

import pytest
import torch

from spikeforge.contract.attention import (ORDER_KV_FIRST, ORDER_QK_FIRST, VARIANTS,
                                           lif_frac_bits, lif_membrane_bits, lif_threshold)
from spikeforge.golden.attention import (sdsa_v1_float, sdsa_v1_int, kv_int, scores_int,
                                         ssa_float, ssa_int, sdsa_int)
from spikeforge.golden.lif import lif_int
from spikeforge.golden.residual import (membrane_add_float, membrane_add_int, sew_add_float,
                                        sew_add_int, residual_add_int)

neuron = pytest.importorskip("spikingjelly.activation_based.neuron")


def _lif(x):
    """The attention LIF as the seeds build it (tau 2, Vth 0.5, hard reset to 0), multi-step."""
    return neuron.LIFNode(tau=2.0, v_threshold=0.5, v_reset=0.0, step_mode="m")(x)


def _spikes(shape, rate, gen):
    return (torch.rand(shape, generator=gen) < rate).to(torch.float32)


def _qkv(steps, tokens, channels, rates, seed):
    gen = torch.Generator().manual_seed(seed)
    return [_spikes((steps, tokens, channels), r, gen) for r in rates]


CASES = [  # (T, N, D, heads, rates of q, k, v)
    (4, 16, 32, 4, (0.3, 0.2, 0.3)),
    (4, 64, 64, 8, (0.2, 0.05, 0.08)),
    (2, 9, 12, 3, (0.5, 0.5, 0.5)),
    (6, 5, 8, 1, (0.4, 0.6, 0.6)),
    (4, 196, 64, 8, (0.2, 0.02, 0.03)),
]


def _reference_v1(q, k, v):
    steps, tokens, channels = q.shape
    sums = torch.zeros(steps, channels)
    for n in range(tokens):
        sums += k[:, n, :] * v[:, n, :]
    return q * _lif(sums).unsqueeze(1)


def _reference_ssa(q, k, v, heads, scale, order):
    steps, tokens, channels = q.shape
    dh = channels // heads
    x = torch.zeros(steps, tokens, channels)
    for t in range(steps):
        for h in range(heads):
            cols = slice(h * dh, (h + 1) * dh)
            qh, kh, vh = q[t, :, cols], k[t, :, cols], v[t, :, cols]
            if order == ORDER_KV_FIRST:
                x[t, :, cols] = qh @ (kh.T @ vh) * scale
            else:
                x[t, :, cols] = (qh @ kh.T) @ vh * scale
    return _lif(x)


@pytest.mark.parametrize("case", CASES)
def test_v1_float_matches_reference_and_int(case):
    steps, tokens, channels, heads, rates = case
    q, k, v = _qkv(steps, tokens, channels, rates, seed=tokens)
    out = sdsa_v1_float(q, k, v)
    assert torch.equal(out, _reference_v1(q, k, v))
    assert torch.equal(sdsa_v1_int(q, k, v), out.to(torch.int64))


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("order,scale", [(ORDER_KV_FIRST, 0.125), (ORDER_QK_FIRST, 0.125),
                                         (ORDER_QK_FIRST, 0.25), (ORDER_KV_FIRST, 0.5)])
def test_ssa_float_matches_reference_and_int(case, order, scale):
    steps, tokens, channels, heads, rates = case
    q, k, v = _qkv(steps, tokens, channels, rates, seed=channels + tokens)
    out = ssa_float(q, k, v, heads=heads, scale=scale, order=order)
    assert torch.equal(out, _reference_ssa(q, k, v, heads, scale, order))
    shift = {0.5: 1, 0.25: 2, 0.125: 3}[scale]
    assert torch.equal(ssa_int(q, k, v, heads=heads, shift=shift, order=order),
                       out.to(torch.int64))


def test_ssa_int_hits_the_state_dependent_band():
    # A = 5..7 fires or not depending on the carried membrane: drive A through 0..9 over many
    # steps so that the exact equality above is not vacuous there. Heads of width 1 with Q = 1
    # and K = V = 1 on the first a[t, c] tokens make A[t, n, c] = a[t, c].
    gen = torch.Generator().manual_seed(5)
    steps, tokens, channels = 8, 9, 64
    a = torch.randint(0, 10, (steps, 1, channels), generator=gen)
    k = (torch.arange(tokens).view(1, tokens, 1) < a).to(torch.float32)
    q = torch.ones(steps, tokens, channels)
    assert torch.equal(scores_int(q, k, k, heads=channels), a.expand(-1, tokens, -1))
    got = ssa_int(q, k, k, heads=channels, shift=3)[:, 0, :]
    assert torch.equal(got, ssa_float(q, k, k, heads=channels, scale=0.125)[:, 0, :].long())
    a = a[:, 0, :]
    band = (a >= 5) & (a <= 7)
    assert 0 < int(got[band].sum()) < int(band.sum())
    assert bool((got[a >= 8] == 1).all()) and bool((got[a <= 4] == 0).all())


@pytest.mark.parametrize("case", CASES)
def test_orders_and_kv_agree(case):
    steps, tokens, channels, heads, rates = case
    q, k, v = _qkv(steps, tokens, channels, rates, seed=1)
    a = scores_int(q, k, v, heads=heads, order=ORDER_KV_FIRST)
    assert torch.equal(a, scores_int(q, k, v, heads=heads, order=ORDER_QK_FIRST))
    assert int(a.max()) <= tokens * channels // heads
    kv = kv_int(k, v, heads=heads)
    dh = channels // heads
    assert kv.shape == (steps, heads, dh, dh) and int(kv.max()) <= tokens
    want = torch.einsum("tni,tnj->tij", k[:, :, :dh], v[:, :, :dh]).to(torch.int64)
    assert torch.equal(kv[:, 0], want)


def test_all_zero_and_all_one():
    zeros, ones = torch.zeros(3, 4, 8), torch.ones(3, 4, 8)
    for variant in VARIANTS:
        assert int(sdsa_int(zeros, zeros, zeros, variant=variant, heads=2).sum()) == 0
        assert torch.equal(sdsa_int(ones, ones, ones, variant=variant, heads=2),
                           torch.ones(3, 4, 8, dtype=torch.int64))
        assert int(sdsa_int(ones, zeros, ones, variant=variant, heads=2).sum()) == 0


@pytest.mark.parametrize("call,name", [
    (lambda x: sdsa_int(x, x, x, variant="v2", heads=1), "variant"),
    (lambda x: ssa_int(x, x, x, heads=3), "heads"),
    (lambda x: ssa_int(x, x, x, heads=2, shift=0), "shift"),
    (lambda x: scores_int(x, x, x, heads=2, order="kq"), "order"),
    (lambda x: sdsa_v1_int(x * 2, x, x), "q"),
    (lambda x: sdsa_v1_int(x, x[:, :2], x), "k"),
    (lambda x: kv_int(x[0], x[0], heads=1), "k"),
])
def test_bad_arguments(call, name):
    with pytest.raises((TypeError, ValueError), match=name):
        call(torch.ones(2, 4, 8))


def test_membrane_add():
    gen = torch.Generator().manual_seed(2)
    a = torch.randint(-3000, 3000, (4, 10, 16), generator=gen)
    b = torch.randint(-3000, 3000, (4, 10, 16), generator=gen)
    want = membrane_add_float(a.to(torch.float64), b.to(torch.float64))
    assert torch.equal(membrane_add_int(a, b, bits=14).to(torch.float64), want)
    sat = membrane_add_int(a, b, bits=12)
    assert int(sat.max()) == 2047 and int(sat.min()) == -2048
    assert torch.equal(sat, want.clamp(-2048, 2047).to(torch.int64))
    assert torch.equal(residual_add_int(a, b, mode="membrane", bits=12), sat)


def test_sew_add():
    gen = torch.Generator().manual_seed(3)
    s1 = (torch.rand(4, 10, 16, generator=gen) < 0.5).to(torch.int64)
    s2 = (torch.rand(4, 10, 16, generator=gen) < 0.5).to(torch.int64)
    assert torch.equal(sew_add_int(s1, s2, bits=2), sew_add_float(s1, s2))
    assert int(sew_add_int(s1, s2, bits=2).max()) == 2
    three = sew_add_int(sew_add_int(s1, s2, bits=2), torch.ones_like(s1), bits=2)
    assert int(three.max()) == 3 and torch.equal(sew_add_int(three, s1, bits=2).clamp(max=3),
                                                 sew_add_int(three, s1, bits=2))
    with pytest.raises(ValueError, match="non-negative"):
        sew_add_int(-s1, s2, bits=2)
    with pytest.raises(ValueError, match="mode"):
        residual_add_int(s1, s2, mode="add", bits=2)
    with pytest.raises(ValueError, match="bits"):
        sew_add_int(s1, s2, bits=0)


@pytest.mark.parametrize("shift", [1, 2, 3])
def test_narrow_membrane_keeps_the_spikes(shift):
    # The RTL's attention LIF keeps a signed membrane of shift + T + 1 bits
    # (lif_membrane_bits): it saturates only where H >= 2**(shift + T), above the threshold, so
    # the spikes are those of ssa_int.
    steps, tokens, channels, heads = 4, 30, 32, 4
    q, k, v = _qkv(steps, tokens, channels, (0.5, 0.4, 0.4), seed=shift)
    a = scores_int(q, k, v, heads=heads)
    assert int(a.max()) >= 1 << (shift + 1)           # saturation really happens
    narrow = lif_int(a, threshold=lif_threshold(shift), frac_bits=lif_frac_bits(steps),
                     membrane_bits=lif_membrane_bits(shift=shift, steps=steps))
    assert torch.equal(narrow, ssa_int(q, k, v, heads=heads, shift=shift))
