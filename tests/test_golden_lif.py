"""Golden neuron models: the float LIF against spikingjelly itself, the integer LIF against the
float LIF (exact when F >= k*T, floor otherwise), saturation, and the V3 multi-level neuron."""

import itertools

import numpy as np
import pytest
import torch

from spikeforge.golden.lif import (lif_float, lif_int, multispike, multispike_int,
                                   to_lane_order, from_lane_order)

neuron = pytest.importorskip("spikingjelly.activation_based.neuron")
surrogate = pytest.importorskip("spikingjelly.activation_based.surrogate")


def _spikingjelly(x, *, tau, v_threshold, v_reset, alpha=4.0):
    node = neuron.LIFNode(tau=tau, v_threshold=v_threshold, v_reset=v_reset, step_mode="m",
                          detach_reset=True, surrogate_function=surrogate.Sigmoid(alpha=alpha))
    spikes = node(x)
    return spikes, node.v


@pytest.mark.parametrize("tau", [2.0, 4.0])
@pytest.mark.parametrize("v_reset", [0.0, None, -0.25])
def test_float_matches_spikingjelly(tau, v_reset):
    gen = torch.Generator().manual_seed(int(tau) * 10 + (v_reset is None))
    for trial in range(6):
        v_threshold = float(torch.rand((), generator=gen) + 0.1)
        x = torch.randn(8, 4, 32, generator=gen) * 3
        want, want_v = _spikingjelly(x, tau=tau, v_threshold=v_threshold, v_reset=v_reset)
        got, got_v = lif_float(x, tau=tau, v_threshold=v_threshold, v_reset=v_reset,
                               return_membrane=True)
        assert torch.equal(got, want), f"trial {trial}"
        assert torch.equal(got_v, want_v)
        assert 0.01 < got.mean() < 0.99


@pytest.mark.parametrize("tau", [2.0, 4.0])
def test_float_per_channel_threshold_matches_spikingjelly(tau):
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(6, 5, 7, generator=gen)
    thresholds = torch.rand(7, generator=gen) + 0.2
    got = lif_float(x, tau=tau, v_threshold=thresholds)
    for c in range(7):
        want, _ = _spikingjelly(x[..., c], tau=tau, v_threshold=float(thresholds[c]),
                                v_reset=0.0)
        assert torch.equal(got[..., c], want)


@pytest.mark.parametrize("v_reset", [0.0, None])
def test_float_surrogate_gradient_matches_spikingjelly(v_reset):
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(4, 3, 16, generator=gen)
    ours = x.clone().requires_grad_()
    theirs = x.clone().requires_grad_()
    weights = torch.randn(4, 3, 16, generator=gen)
    (lif_float(ours, v_threshold=0.5, v_reset=v_reset, surrogate_alpha=4.0) * weights).sum() \
        .backward()
    spikes, _ = _spikingjelly(theirs, tau=2.0, v_threshold=0.5, v_reset=v_reset)
    (spikes * weights).sum().backward()
    assert torch.allclose(ours.grad, theirs.grad, rtol=1e-5, atol=1e-7)
    assert ours.grad.abs().sum() > 0


def _int_vs_float(currents, threshold, k, reset):
    steps = currents.shape[0]
    frac = k * steps
    got, got_v = lif_int(currents, threshold=threshold, tau_log2=k, frac_bits=frac, reset=reset,
                         return_membrane=True)
    want, want_v = lif_float(currents.double(), tau=float(2 ** k),
                             v_threshold=threshold if isinstance(threshold, int)
                             else threshold.double(),
                             v_reset=0.0 if reset == "hard" else None, return_membrane=True)
    assert torch.equal(got, want.long())
    assert torch.equal(got_v.double() / 2 ** frac, want_v)


@pytest.mark.parametrize("k", [1, 2])
@pytest.mark.parametrize("reset", ["hard", "soft"])
def test_int_equals_float_exhaustive(k, reset):
    """Every current sequence over {-3..3}^3 and every threshold 0..3: F = k*T is exact."""
    seqs = torch.tensor(list(itertools.product(range(-3, 4), repeat=3))).T  # (T=3, 343)
    currents = seqs.unsqueeze(-1).expand(3, 343, 4).contiguous()
    _int_vs_float(currents, torch.arange(4), k, reset)


@pytest.mark.parametrize("k,steps", [(1, 1), (1, 4), (2, 4), (1, 10), (3, 6)])
@pytest.mark.parametrize("reset", ["hard", "soft"])
def test_int_equals_float_random(k, steps, reset):
    gen = torch.Generator().manual_seed(k * 100 + steps)
    currents = torch.randint(-128, 128, (steps, 9, 16), generator=gen)
    thresholds = torch.randint(0, 60, (16,), generator=gen)
    _int_vs_float(currents, thresholds, k, reset)
    _int_vs_float(currents, 17, k, reset)


@pytest.mark.parametrize("k,frac", [(1, 0), (1, 2), (2, 0), (2, 3), (3, 2)])
def test_int_floors_when_frac_bits_are_few(k, frac):
    """Below F = k*T the leak is floored: the integer membrane trails the exact one by less than
    tau - 1 LSBs (per-step errors < 1 LSB, decaying by 1 - 1/tau); for tau > 2 spikes differ."""
    gen = torch.Generator().manual_seed(11)
    steps = 8
    currents = torch.randint(-50, 50, (steps, 64, 8), generator=gen)
    never = 10 ** 6
    for t in range(1, steps + 1):
        _, v_int = lif_int(currents[:t], threshold=never, tau_log2=k, frac_bits=frac,
                           return_membrane=True)
        _, v_float = lif_float(currents[:t].double(), tau=float(2 ** k), v_threshold=never,
                               return_membrane=True)
        error = v_float * 2 ** frac - v_int.double()
        assert (error >= 0).all() and (error < max(1, 2 ** k - 1)).all()
    exact = lif_int(currents, threshold=5, tau_log2=k, frac_bits=k * steps)
    coarse = lif_int(currents, threshold=5, tau_log2=k, frac_bits=frac)
    assert torch.equal(exact, coarse) == (k == 1)


@pytest.mark.parametrize("frac", [0, 1, 3])
@pytest.mark.parametrize("reset", ["hard", "soft"])
def test_int_tau2_spikes_exact_for_any_frac_bits(frac, reset):
    """tau = 2: H_int = floor(H * 2**F) at every step, so spikes equal the float LIF's."""
    gen = torch.Generator().manual_seed(frac)
    currents = torch.randint(-60, 60, (12, 40, 8), generator=gen)
    thresholds = torch.randint(0, 30, (8,), generator=gen)
    got, v_int = lif_int(currents, threshold=thresholds, frac_bits=frac, reset=reset,
                         return_membrane=True)
    want, v = lif_float(currents.double(), v_threshold=thresholds.double(),
                        v_reset=0.0 if reset == "hard" else None, return_membrane=True)
    assert torch.equal(got, want.long())
    assert torch.equal(v_int.double(), torch.floor(v * 2 ** frac))


@pytest.mark.parametrize("reset", ["hard", "soft"])
def test_int_saturates_never_wraps(reset):
    bits = 8
    low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    up = torch.full((6, 1), 100)
    spikes, v = lif_int(up, threshold=100, frac_bits=3, membrane_bits=bits, reset=reset,
                        return_membrane=True)
    assert spikes.sum() == 0 and v.item() == high      # threshold 800 is out of reach
    down = torch.full((6, 1), -100)
    spikes, v = lif_int(down, threshold=1, frac_bits=3, membrane_bits=bits, reset=reset,
                        return_membrane=True)
    assert spikes.sum() == 0 and v.item() == low
    # Saturated and unbounded membranes agree while nothing reaches the bounds.
    gen = torch.Generator().manual_seed(2)
    small = torch.randint(-8, 8, (8, 50), generator=gen)
    assert torch.equal(lif_int(small, threshold=3, frac_bits=3, membrane_bits=bits, reset=reset),
                       lif_int(small, threshold=3, frac_bits=3, reset=reset))


@pytest.mark.parametrize("reset", ["hard", "soft"])
def test_int_numpy_equals_torch(reset):
    """The testbenches run the integer golden on numpy arrays: same results as on tensors."""
    gen = torch.Generator().manual_seed(4)
    currents = torch.randint(-128, 128, (6, 10, 8), generator=gen)
    thresholds = torch.randint(0, 100, (8,), generator=gen)
    kwargs = dict(tau_log2=2, frac_bits=5, reset=reset, membrane_bits=10, return_membrane=True)
    s_t, v_t = lif_int(currents, threshold=thresholds, **kwargs)
    s_n, v_n = lif_int(currents.numpy().astype(np.int32), threshold=thresholds.numpy(), **kwargs)
    assert isinstance(s_n, np.ndarray) and s_n.dtype == np.int64
    assert (s_n == s_t.numpy()).all() and (v_n == v_t.numpy()).all()
    x = torch.arange(-70, 70)
    assert (multispike_int(x.numpy(), frac_bits=3) == multispike_int(x, frac_bits=3).numpy()).all()
    assert (to_lane_order(currents[:, :, :7].numpy(), 4)
            == to_lane_order(currents[:, :, :7], 4).numpy()).all()


def test_int_bad_arguments():
    x = torch.zeros(2, 3, dtype=torch.int64)
    with pytest.raises(TypeError, match="currents"):
        lif_int(x.float(), threshold=1, frac_bits=2)
    with pytest.raises(ValueError, match="reset"):
        lif_int(x, threshold=1, frac_bits=2, reset="none")
    with pytest.raises(ValueError, match="tau_log2"):
        lif_int(x, threshold=1, frac_bits=2, tau_log2=0)
    with pytest.raises(TypeError, match="threshold"):
        lif_int(x, threshold=1.5, frac_bits=2)
    with pytest.raises(ValueError, match="membrane_bits"):
        lif_int(x, threshold=1, frac_bits=2, membrane_bits=1)
    with pytest.raises(TypeError, match="x must"):
        lif_float(x)
    with pytest.raises(TypeError, match="currents"):
        lif_int(np.zeros((2, 3)), threshold=1, frac_bits=2)


def test_multispike_roundings():
    x = torch.tensor([-1.0, 0.4, 0.5, 1.5, 2.5, 3.5, 3.6, 9.0])
    assert multispike(x, rounding="half_even").tolist() == [0, 0, 0, 2, 2, 4, 4, 4]
    assert multispike(x, rounding="half_up").tolist() == [0, 0, 1, 2, 3, 4, 4, 4]
    assert multispike(x, norm=4).tolist() == [0, 0, 0, 0.5, 0.5, 1, 1, 1]
    assert multispike(x, max_value=8).tolist() == [0, 0, 0, 2, 2, 4, 4, 8]
    with pytest.raises(ValueError, match="rounding"):
        multispike(x, rounding="nearest")


@pytest.mark.parametrize("rounding", ["half_even", "half_up"])
@pytest.mark.parametrize("frac", [0, 1, 4])
def test_multispike_int_equals_float(rounding, frac):
    x = torch.arange(-40 << frac, 40 << frac) if frac else torch.arange(-40, 40)
    want = multispike(x.double() / 2 ** frac, max_value=6, rounding=rounding)
    got = multispike_int(x, frac_bits=frac, max_value=6, rounding=rounding)
    assert torch.equal(got, want.long())


def test_lane_order_round_trip():
    x = torch.arange(2 * 3 * 10).reshape(2, 3, 10)
    beats = to_lane_order(x, 4)
    assert beats.shape == (2 * 3 * 3, 4)
    assert beats[1].tolist() == [4, 5, 6, 7] and beats[2].tolist() == [8, 9, 0, 0]
    assert torch.equal(from_lane_order(beats, steps=2, tokens=3, channels=10), x)
