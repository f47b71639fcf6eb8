"""Contracts every side of SpikeForge shares: the golden model, the RTL, the testbenches, the
synthesis flow and the CLI import these leaf modules, and the leaf modules import nothing of the
project. Each quantity, formula or name defined here is defined nowhere else."""
