"""Sparse spike-accumulate engine: spike words in, P-lane accumulator beats out, additions only.

The engine (:class:`SpikeEngine`, :mod:`.core`) is three units on streams::

    spikes ─▶ [WindowWalker] ─▶ SpikeEncoder ─▶ Queue ─▶ SpikeAccumulator ─▶ o
    (linear: no walker)          zero skipping   ops      P adder lanes, ping-pong drain

one module each (:mod:`.walker`, :mod:`.encoder`, :mod:`.accumulator`); its geometry is one
frozen :class:`EngineConfig` (:mod:`.config`), and :func:`memory_image` / :func:`load_beats`
(:mod:`.image`) are the host-side layout of its weight memory.
"""

from .config import EngineConfig, KINDS
from .core import SpikeEngine
from .image import memory_image, bias_rows, load_beats

__all__ = ["SpikeEngine", "EngineConfig", "KINDS", "memory_image", "bias_rows", "load_beats"]
