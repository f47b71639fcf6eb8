"""The elaboration target: what a unit may know of the device it is built for.

Units are elaborated with ``platform=None`` for simulation and with a :class:`SynthTarget` when
the synthesis flow (``synth/flow.py``) or a testbench of the vendor-primitive Verilog
(``verif/runner.py``, ``family=``) builds them for a device family. It lives here, below both
of them, so that neither has to import the other for it.
"""

from dataclasses import dataclass

from .params import check_choice

__all__ = ["SynthTarget", "FAMILIES", "family_of"]

#: Device families a unit may be elaborated for.
FAMILIES = ("ecp5", "ice40")


@dataclass(frozen=True, kw_only=True)
class SynthTarget:
    """The ``platform`` a unit is elaborated with for a device: only the device's ``family``.

    Units may choose vendor primitives from it (the block RAMs read through the EBR output
    register on ECP5: :class:`spikeforge.hdl.memory.RegisteredReadMemory`, which tests
    ``platform.family`` as Amaranth's own Lattice platforms also allow).

    Parameters
    ----------
    family : str
        One of :data:`FAMILIES`, e.g. ``"ecp5"``.
    """

    family: str

    def __post_init__(self):
        check_choice("family", self.family, FAMILIES)


def family_of(platform):
    """``platform.family`` in lower case (Amaranth's iCE40 platforms say ``"iCE40"``), or
    ``None`` (no platform: simulation, ``verilog.convert`` without one)."""
    family = getattr(platform, "family", None)
    return None if family is None else str(family).lower()
