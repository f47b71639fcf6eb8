"""The back end that both SSA orders share: score beats → attention LIF → output words."""

from amaranth.hdl import Module, Signal, Mux, unsigned
from amaranth.lib import wiring, data

from spikeforge.contract.attention import lif_frac_bits, lif_membrane_bits, lif_threshold

from ..bits import count_bits
from ..lif import LIFArray
from ..packer import SpikePacker
from ..stream import SkidBuffer
from .base import AttentionUnit

__all__ = ["SSABackEnd"]


class SSABackEnd(AttentionUnit):
    """Base of the SSA orders: a subclass computes the scores ``A``, this class turns them into
    spikes.

    A subclass gives :attr:`score_lanes`, the lanes of a score beat, and ``_scores(m, beats)``,
    which drives ``beats`` from ``kv`` and ``q``: lane beats of ``A`` in token order, channel
    groups in order (its add stage, :meth:`_accumulate`, sums and registers them). ``beats`` is
    the input of a registered skid buffer (:class:`~spikeforge.hdl.stream.SkidBuffer`) whose
    ``ready`` is a register, so the score pipeline can advance on ``~beats.valid |
    beats.ready`` and the LIF's and packer's ready path stays out of it. Behind the skid buffer the :class:`~spikeforge.hdl.lif.LIFArray`
    runs ``lif_int(A, threshold=2**(shift-1), frac_bits=steps)`` per neuron
    (:func:`spikeforge.golden.attention.ssa_int`; the constants are those of
    :mod:`spikeforge.contract.attention`) with a membrane of ``shift + steps + 1`` signed bits:
    it saturates only where ``H >= 2**(shift+steps)``, above the threshold, where the neuron
    fires and resets whatever the exact value, so the spikes are exact. The
    :class:`~spikeforge.hdl.packer.SpikePacker` turns each token's spike beats into one output
    word. Parameters and ports: :class:`~.base.AttentionUnit`.
    """

    @property
    def score_lanes(self):
        """Lanes of a score beat (a divisor of ``channels``)."""
        raise NotImplementedError

    @property
    def score_bits(self):
        """Unsigned bits of a score: ``A <= tokens * D_h``."""
        return count_bits(self._tokens * self.head_channels)

    def _scores(self, m, beats):
        raise NotImplementedError

    def elaborate(self, platform):
        m = Module()
        lanes = self.score_lanes
        threshold = lif_threshold(self._shift)
        m.submodules.lif = lif = LIFArray(
            lanes=lanes, neurons=self._tokens * self._channels, steps=self._steps,
            lane_groups=self._channels // lanes, current_bits=self.score_bits + 1,
            frac_bits=lif_frac_bits(self._steps), tau_log2=1, reset="hard",
            membrane_bits=lif_membrane_bits(shift=self._shift, steps=self._steps),
            threshold_bits=count_bits(threshold), thresholds=threshold)
        m.submodules.packer = packer = SpikePacker(
            lanes=lanes, channels=self._channels, word_bits=self._channels)
        m.submodules.skid = skid = SkidBuffer(lif.i.payload.shape(), registered=True)
        wiring.connect(m, skid.o, lif.i)
        wiring.connect(m, lif.o, packer.i)
        wiring.connect(m, packer.o, wiring.flipped(self.o))
        self._scores(m, skid.i)
        return m

    def _accumulate(self, m, beats, advance, valid, last, addends, group):
        """The add stage: score accumulator ``j`` gains ``addends[j]`` for a ``valid`` item,
        under ``advance``; the token's (or head's) ``last`` item restarts the sums and
        registers them as one score beat of channel group ``group`` into ``beats``."""
        acc = Signal(data.ArrayLayout(unsigned(self.score_bits), len(addends)))
        sums = [acc[j] + addends[j] for j in range(len(addends))]
        with m.If(advance & valid):
            for j in range(len(addends)):
                m.d.sync += acc[j].eq(Mux(last, 0, sums[j]))
        fire = valid & last
        last_group = self._channels // self.score_lanes - 1
        with m.If(advance):
            m.d.sync += beats.valid.eq(fire)
            with m.If(fire):
                m.d.sync += [
                    beats.payload.group.eq(group),
                    beats.payload.first.eq(group == 0),
                    beats.payload.last.eq(group == last_group),
                ]
                for lane in range(len(sums)):
                    m.d.sync += beats.payload.data[lane].eq(sums[lane])
