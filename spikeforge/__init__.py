"""SpikeForge: an open, multiplier-free accelerator for spike-driven transformers.

Sub-packages: :mod:`spikeforge.hdl` (Amaranth components), :mod:`spikeforge.golden` (PyTorch golden
models), :mod:`spikeforge.verif` (cocotb testbenches and the simulator runner),
:mod:`spikeforge.synth` (Yosys/nextpnr flow). The ``spikeforge`` command is :mod:`spikeforge.cli`.
"""

__version__ = "0.1.0"
