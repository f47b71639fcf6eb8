"""Turn a registered unit into Verilog and run its cocotb testbench on Icarus or Verilator.

Verilog is cached per (unit, parameters, elaboration platform family, ``hdl/`` sources); each
parameter set and simulator gets its own build folder, so parallel pytest workers never
collide. The testbench receives its parameters and stimulus through environment variables and
writes a JSON report (checked transfers, mismatches, cycles) that :func:`simulate` returns; a
failing testbench raises :class:`SimulationFailed`.
"""

import hashlib
import inspect
import json
import logging
import os
import time
from dataclasses import dataclass, asdict
from pathlib import Path

from amaranth.back import verilog

from .toolchain import setup_environment, BUILD_ROOT, PROJECT_ROOT
from .units import get_unit

__all__ = ["SIMULATORS", "SIM_MODELS", "SimResult", "SimulationFailed", "generate_verilog",
           "simulate", "run_testbench"]

SIMULATORS = ("icarus", "verilator")
TOPLEVEL = "top"
# Amaranth emits no `timescale; the clock in the testbenches is 10 ns.
TIMESCALE = ("1ns", "1ps")
VERILATOR_ARGS = ["-Wno-fatal", "--x-assign", "0", "--x-initial", "0"]
# Simulation models of the vendor primitives a unit may instantiate when it is elaborated for a
# platform family (``family=`` of :func:`simulate`); without a family units use none.
SIM_MODELS = {"ecp5": (Path(__file__).resolve().parent / "models" / "dp16kd.v",)}


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


def _sources_digest():
    digest = hashlib.sha256()
    for path in sorted((PROJECT_ROOT / "hdl").rglob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _key(unit, params, family=None, sources=()):
    component = inspect.getsourcefile(unit.component_class())
    source = hashlib.sha256(Path(component).read_bytes()).hexdigest()[:12]
    text = json.dumps({"unit": unit.name, "params": params, "src": _sources_digest(),
                       "component": source}, sort_keys=True)
    if family is not None or sources:
        extra = [hashlib.sha256(Path(p).read_bytes()).hexdigest()[:12] for p in sources]
        text += json.dumps({"family": family, "sources": extra})
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _platform(family):
    if family is None:
        return None
    from spikeforge.synth.flow import SynthTarget
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
    path = BUILD_ROOT / "verilog" / f"{unit.name}-{_key(unit, params, family)}.v"
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

    build_args = list(VERILATOR_ARGS) if simulator == "verilator" else []
    if waves and simulator == "verilator":
        build_args.append("--trace-fst")
    runner = get_runner(simulator)
    # The runner's own chatter ("Skipping compilation …") would garble --json output.
    runner.log.setLevel(logging.ERROR)
    started = time.monotonic()
    try:
        runner.build(sources=list(sources), includes=list(includes), hdl_toplevel=TOPLEVEL,
                     build_dir=build_dir, build_args=build_args, timescale=TIMESCALE,
                     waves=waves, log_file=test_dir / "build.log")
        results = runner.test(
            test_module=testbench, hdl_toplevel=TOPLEVEL, build_dir=build_dir,
            test_dir=test_dir, seed=seed, waves=waves, timescale=TIMESCALE,
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
                           failed=failed)
    if failed or result is None:
        what = f"{result.mismatches} mismatches" if result else "no report"
        raise SimulationFailed(
            f"{name} on {simulator} failed ({what}; seed {seed}; "
            f"log in {test_dir}/sim.log){_errors(test_dir)}", result)
    return result
