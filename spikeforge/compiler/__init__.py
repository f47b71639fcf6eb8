"""The accelerator's compiler: a model file and a hardware configuration
(:mod:`spikeforge.contract.configs`) → the program (:mod:`spikeforge.contract.program`) and the
memory images that :mod:`spikeforge.golden.accelerator` and the RTL execute."""

from .core import IMAGE_MEMORIES, CompileError, Compiled, TensorPlace, compile_model

__all__ = ["CompileError", "Compiled", "TensorPlace", "compile_model", "IMAGE_MEMORIES"]
