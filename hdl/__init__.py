"""Amaranth components of the SpikeForge accelerator, one concern per module."""
