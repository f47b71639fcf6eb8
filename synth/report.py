"""Reading what Yosys and nextpnr report: cell counts per module, Fmax, utilization, critical path.

- Yosys ``stat -json`` gives the cells of each module. The out-of-context wrapper keeps the unit as
  its own module, so the unit's LUTs, flip-flops, block RAMs and DSPs are counted apart from the
  wrapper's shift registers (:func:`unit_cells`, :func:`resources`).
- nextpnr ``--report`` gives the achieved frequency per clock, the utilization of the whole placed
  design and its critical paths (:func:`fmax`, :func:`placed`, :func:`critical_path`).
"""

import json
import re

__all__ = ["read_stat", "unit_cells", "register_bits", "resources", "fmax", "placed",
           "critical_path", "describe_path",
           "readable_cell", "overflows"]

TOP = "top"
DUT_PREFIX = "dut"


def read_stat(path):
    """Modules → cell counts by type, from a Yosys ``tee -o path stat -json`` file."""
    text = path.read_text()
    data = json.loads(text[text.index("{"):])
    return {name.lstrip("\\"): module.get("num_cells_by_type", {})
            for name, module in data["modules"].items()}


def unit_cells(stat):
    """Cell counts of everything below the top (wrapper) module: the unit itself.

    Submodule instances (cell types naming a module) are not cells and are left out.
    """
    counts = {}
    for name, cells in stat.items():
        if name == TOP:
            continue
        for cell, count in cells.items():
            if cell.lstrip("\\") not in stat:
                counts[cell] = counts.get(cell, 0) + count
    return dict(sorted(counts.items()))


def register_bits(stat):
    """Flip-flop bits of the unit's RTL, from ``stat -width`` after ``proc`` (``$dff_16`` → 16)."""
    bits = 0
    for cell, count in unit_cells(stat).items():
        match = re.fullmatch(r"\$\w*dff\w*_(\d+)", cell)
        if match:
            bits += int(match.group(1)) * count
    return bits


def resources(cells, device):
    """LUT / FF / BRAM / DSP counts of a cell census on ``device``."""
    return {
        "lut": sum(count * cells.get(cell, 0) for cell, count in device.lut_cells.items()),
        "ff": sum(count for cell, count in cells.items() if cell.startswith(device.ff_prefixes)),
        "bram": sum(cells.get(cell, 0) for cell in device.bram_cells),
        "dsp": sum(cells.get(cell, 0) for cell in device.dsp_cells),
    }


def fmax(report):
    """Lowest achieved frequency over the design's clocks (MHz), or ``None`` without clocks."""
    achieved = [clock["achieved"] for clock in report.get("fmax", {}).values()]
    return round(min(achieved), 2) if achieved else None


def placed(report):
    """nextpnr's utilization of the whole design: ``{bel type: used}`` for the used types."""
    return {bel: usage["used"] for bel, usage in sorted(report["utilization"].items())
            if usage["used"]}


def critical_path(report):
    """The worst register-to-register path, summarized.

    Returns ``{"start", "end", "levels", "delay_ns", "logic_ns", "routing_ns", "start_cell",
    "end_cell", "nets", "through"}``: the launching and capturing signals of the unit
    (``input port`` / ``output port`` where the path starts or ends in the wrapper's port
    registers), the logic cells crossed, the delay split into cell and wire delay, the mapped
    cells at both ends and the nets on the way (hierarchical names, ``dut.`` being the unit),
    and ``through``: the unit's signals among those nets, readable. ``None`` when the design
    has no such path.
    """
    paths = report.get("critical_paths", [])
    clocked = [p for p in paths
               if p["from"].startswith("posedge") and p["to"].startswith("posedge")]
    if not (clocked or paths):
        return None
    steps = (clocked or paths)[0]["path"]
    if not steps:
        return None
    logic = sum(s["delay"] for s in steps if s["type"] != "routing")
    routing = sum(s["delay"] for s in steps if s["type"] == "routing")
    return {
        "start": readable_cell(steps[0]["from"]["cell"], "input port"),
        "end": readable_cell(steps[-1]["to"]["cell"], "output port"),
        "levels": sum(1 for s in steps if s["type"] == "logic"),
        "delay_ns": round(logic + routing, 3),
        "logic_ns": round(logic, 3),
        "routing_ns": round(routing, 3),
        "start_cell": steps[0]["from"]["cell"],
        "end_cell": steps[-1]["to"]["cell"],
        "nets": [s["net"] for s in steps if s["type"] == "routing"],
        "through": _through(s["net"] for s in steps if s["type"] == "routing"),
    }


def _through(nets):
    """The unit's signals a path passes, in order, once each (mapped-cell noise removed)."""
    names = []
    for net in nets:
        name = readable_cell(net, None)
        if name and not name.startswith("$") and name not in names:
            names.append(name)
    return names


# Yosys and nextpnr name a mapped cell after its signal plus the cell types it went through
# (``c_h[1]_TRELLIS_FF_Q_5``, ``word_SB_DFFESR_Q_9_D_SB_LUT4_O_LC``): cut at the first of these.
# RAM outputs keep the RAM's pin name (``weights_DOA6[2]``, ``rows.0.0_DO[2]``).
_CELL_SUFFIX = r"_(TRELLIS|SB|LUT4|CCU2C|PFUMX|L6MUX21|DP16KD|DPR16X4|ICESTORM)|_DO[AB]?\d*\b"
_TECH_SUFFIX = re.compile(rf"({_CELL_SUFFIX}|\$).*")
_TECH_ONLY = re.compile(rf"({_CELL_SUFFIX}).*")


def readable_cell(cell, wrapper_side):
    """The signal a mapped cell implements, relative to the unit (``dut.c_h[1]_TRELLIS_FF_Q_5``
    → ``c_h[1]``); a cell of the wrapper is the unit's ``wrapper_side``."""
    prefix = f"{DUT_PREFIX}."
    if not cell.startswith(prefix):
        return wrapper_side
    cell = cell[len(prefix):].lstrip("\\")
    # A Yosys-internal name (``$like$39``) has no signal behind it: keep it as it is.
    return _TECH_SUFFIX.sub("", cell).rstrip(".") or _TECH_ONLY.sub("", cell) or cell


def describe_path(path):
    """One line for people: ``start → end: N levels, D ns (L logic + R routing)``."""
    if path is None:
        return "no register-to-register path"
    return (f"{path['start']} -> {path['end']}: {path['levels']} logic levels, "
            f"{path['delay_ns']} ns ({path['logic_ns']} logic + {path['routing_ns']} routing)")


# What Yosys and nextpnr print when a design is too big for the device (placer, packer, legaliser).
_OVERFLOW_MARKERS = (
    "Unable to place cell", "unable to place", "Failed to place", "too many",
    "Failed to expand region", "at utilisation limit",
    "Design utilisation exceeds", "exceeds device", "No BEL")


def overflows(log):
    """Whether a failed tool run's ``log`` says the design does not fit the device."""
    return any(marker in log for marker in _OVERFLOW_MARKERS)
