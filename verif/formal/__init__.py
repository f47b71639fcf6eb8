"""Formal proofs of the units' stream contracts, beat conservation, buffer bounds and
saturation (SymbiYosys with Yices, through the yowasp tools).

One harness module per unit; :data:`HARNESSES` names them (imported lazily). See
``docs/formal.md`` for the properties, depths and times.
"""

import importlib

__all__ = ["HARNESSES", "get_harness", "UnknownFormalUnit"]


class UnknownFormalUnit(LookupError):
    pass


# Harness name -> "module:class" under spikeforge.verif.formal.
HARNESSES = {
    "packer": "packer:PackerHarness",
    "lif": "lif:LIFHarness",
    "uart": "uart:UARTHarness",
    "encoder": "encoder:EncoderHarness",
    "walker": "walker:WalkerHarness",
    "walker_distributed": "walker:DistributedWalkerHarness",
    "accumulator": "accumulator:AccumulatorHarness",
    "sdsa_v1": "attention:SDSAv1Harness",
    "sdsa_ssa": "attention:SSAHarness",
    "sdsa_qk_first": "attention:SSAQKFirstHarness",
    "residual": "residual:ResidualHarness",
    "residual_sew": "residual:ResidualSEWHarness",
    "stream_buffer": "buffers:StreamBufferHarness",
    "skid": "buffers:SkidHarness",
    "skid_registered": "buffers:RegisteredSkidHarness",
    "queue": "buffers:QueueHarness",
}


def get_harness(name):
    """The harness class called ``name``; an unknown name raises :class:`UnknownFormalUnit`."""
    try:
        module, cls = HARNESSES[name].split(":")
    except KeyError:
        known = ", ".join(sorted(HARNESSES))
        raise UnknownFormalUnit(f"unknown formal unit {name!r} (units: {known})") from None
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)
