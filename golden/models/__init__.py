"""Float (trainable) spike-driven transformers: blocks, the staged network, named variants.

The shipped default model file (``default.npz``) lives next to this module.
"""

from .config import ARCHS_ALL, SPIKE_DRIVEN, NetConfig, NotSpikeDriven
from .metaspikformer import SpikingTransformer, metaspikformer_config
from .variants import ARCHS, Spikeformer, arch_config, build_model, count_parameters, neuron_layers

__all__ = ["NetConfig", "SpikingTransformer", "metaspikformer_config", "ARCHS", "ARCHS_ALL",
           "SPIKE_DRIVEN", "NotSpikeDriven", "Spikeformer", "arch_config", "build_model",
           "count_parameters", "neuron_layers"]
