"""Spiking neuron layers for the float (trainable) models.

Every layer is multi-step: it takes a ``(T, ...)`` tensor of input currents for the T time steps of
one batch of samples and returns the ``(T, ...)`` spikes, with the membrane starting at ``V = 0``
for every call (the seeds' ``functional.reset_net`` between samples). The LIF arithmetic itself is
:func:`spikeforge.golden.lif.lif_float`; this module only wraps it as ``nn.Module`` so that models
can name their neurons, record firing rates and be walked by the quantizer.
"""

import math

import torch
from torch import nn

from .lif import lif_float, sigmoid_spike

__all__ = ["LIF", "PLIF", "SURROGATE_ALPHA"]

#: The seeds' surrogate gradient: ``spikingjelly.surrogate.Sigmoid(alpha=4)``, detached reset.
SURROGATE_ALPHA = 4.0


class LIF(nn.Module):
    """Multi-step LIF neuron as the seeds instantiate it (``MultiStepLIFNode(tau=2)``).

    ``H[t] = V[t-1] + (X[t] - V[t-1]) / tau``, ``S[t] = H[t] >= v_threshold``, hard reset to
    ``v_reset``. The forward pass is exact; the backward pass uses the sigmoid surrogate
    (``alpha = 4``) with the reset detached, as the seeds train.

    Parameters
    ----------
    tau : float
        Membrane time constant (2 in every seed layer).
    v_threshold : float
        Firing threshold (1.0; 0.5 for the attention neurons).
    v_reset : float
        Hard-reset potential.

    Attributes
    ----------
    record : bool
        When set, the last forward pass keeps ``last_rate`` (mean spike rate, a float).
    """

    def __init__(self, *, tau=2.0, v_threshold=1.0, v_reset=0.0):
        super().__init__()
        if not (isinstance(tau, (int, float)) and tau >= 1.0):
            raise ValueError(f"tau must be a number >= 1, not {tau!r}")
        if not (isinstance(v_threshold, (int, float)) and v_threshold > 0):
            raise ValueError(f"v_threshold must be a positive number, not {v_threshold!r}")
        self.tau = float(tau)
        self.v_threshold = float(v_threshold)
        self.v_reset = float(v_reset)
        self.record = False
        self.last_rate = None

    def forward(self, x):
        spikes = lif_float(x, tau=self.tau, v_threshold=self.v_threshold, v_reset=self.v_reset,
                           surrogate_alpha=SURROGATE_ALPHA if self.training else None)
        if self.record:
            self.last_rate = float(spikes.detach().float().mean())
        return spikes

    def extra_repr(self):
        return f"tau={self.tau}, v_threshold={self.v_threshold}, v_reset={self.v_reset}"


class PLIF(nn.Module):
    """Parametric LIF (Spikeformer): ``1/tau = sigmoid(w)``, one learned ``w`` per layer.

    ``H[t] = V[t-1] + (X[t] - V[t-1]) · sigmoid(w)``, spike at ``H >= v_threshold``, hard reset.
    ``w`` starts at ``-ln(tau0 - 1)`` (0 for ``tau0 = 2``, where PLIF equals LIF). Float only:
    a learned decay is not a shift, so the integer model has no PLIF layer.

    Parameters
    ----------
    init_tau : float
        Initial time constant, > 1.
    v_threshold : float
        Firing threshold.
    """

    def __init__(self, *, init_tau=2.0, v_threshold=1.0, v_reset=0.0):
        super().__init__()
        if not (isinstance(init_tau, (int, float)) and init_tau > 1.0):
            raise ValueError(f"init_tau must be a number > 1, not {init_tau!r}")
        self.w = nn.Parameter(torch.tensor(-math.log(init_tau - 1.0)))
        self.v_threshold = float(v_threshold)
        self.v_reset = float(v_reset)
        self.record = False
        self.last_rate = None

    def forward(self, x):
        decay = torch.sigmoid(self.w)
        v = torch.full_like(x[0], self.v_reset)
        out = []
        for xt in x:
            h = v + (xt - v) * decay
            s = sigmoid_spike(h - self.v_threshold, SURROGATE_ALPHA)
            reset = s.detach()
            v = h * (1 - reset) + self.v_reset * reset
            out.append(s)
        spikes = torch.stack(out)
        if self.record:
            self.last_rate = float(spikes.detach().mean())
        return spikes
