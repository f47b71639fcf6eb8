"""The compiled model on the accelerator's RTL (``spikeforge run --backend rtl``,
``spikeforge bench accelerator``): writes a case for the system testbench
(:mod:`spikeforge.verif.tb_accelerator`), simulates the ``accelerator`` unit for the compiled
configuration on Icarus or Verilator and turns the testbench's detail into figures.

The caller compiles (``spikeforge.compiler.compile_model``; this package does not import the
compiler): ``compiled`` is anything with ``config`` (a
:class:`~spikeforge.contract.configs.Config`), ``images`` (``{memory: array}``), ``layers``
(``[{"name", "op", ...}]``) and ``summary()``.
"""

import contextlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from . import runner
from .tb_accelerator import CASE_ENV, write_case
from .toolchain import BUILD_ROOT

__all__ = ["simulate_model", "rtl_figures", "run_rtl", "bench"]

#: The registered unit of the whole accelerator.
UNIT = "accelerator"


@contextlib.contextmanager
def _case_env(path):
    """The testbench finds the case through :data:`CASE_ENV` (the runner passes the
    environment on to the simulator)."""
    saved = os.environ.get(CASE_ENV)
    os.environ[CASE_ENV] = str(path)
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(CASE_ENV, None)
        else:
            os.environ[CASE_ENV] = saved


def simulate_model(compiled, pixels, *, simulator="verilator", mode="both", seed=None,
                   in_idle=0.2, out_stall=0.2, bad_crc=True, unit=UNIT):
    """Run the system testbench (of registered ``unit``) on ``pixels`` (int ``(samples, C, H,
    W)``) with ``compiled``'s images in ``mode`` (:data:`~.tb_accelerator.MODES`); return
    ``(detail, result)``: the testbench's detail dict and the runner's
    :class:`~spikeforge.verif.runner.SimResult` (``None`` when the run failed before
    reporting). Mismatches do not raise (they are in the detail); a testbench that ends
    without a detail (a build error, a hang) raises
    :class:`~spikeforge.verif.runner.SimulationFailed`."""
    cases = BUILD_ROOT / "cases"
    cases.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cases) as folder:
        case = Path(folder) / "case.npz"
        detail_path = Path(folder) / "detail.json"
        write_case(case, config=compiled.config, images=compiled.images, pixels=pixels,
                   mode=mode, names=[layer["name"] for layer in compiled.layers],
                   in_idle=in_idle, out_stall=out_stall, bad_crc=bad_crc,
                   detail=detail_path)
        with _case_env(case):
            try:
                result = runner.simulate(unit, params={"config": compiled.config.name},
                                         simulator=simulator, seed=seed)
            except runner.SimulationFailed as exc:
                if not detail_path.exists():
                    raise
                result, failure = exc.result, str(exc)
            else:
                failure = None
        detail = json.loads(detail_path.read_text())
    if failure is not None:
        detail.setdefault("failure", failure)
    return detail, result


def _mean(values):
    values = list(values)
    return round(sum(values) / len(values), 1) if values else None


def rtl_figures(compiled, detail, labels=None):
    """The ``run --backend rtl`` figures of a testbench ``detail``: ``mismatches`` (per
    sample, every layer output that differs from the golden model's, plus the whole run's
    scores), ``score_mismatches``, ``accuracy`` (of the RTL's scores, given ``labels``),
    ``cycles_per_inference`` (RTL, start to done of one whole run; the sum of the layers' in
    ``layers`` mode), ``bound_cycles`` and ``model_cycles`` (the golden cost model) and per
    layer its mismatches, RTL cycles, bound and model cycles."""
    samples = detail["samples"]
    names = [layer["name"] for layer in compiled.layers]
    per_layer = [0] * len(names)
    score_mismatches = correct = 0
    for k, s in enumerate(samples):
        for i in s.get("layer_mismatches", []):
            per_layer[i - 1] += 1
        scores = s.get("scores", s.get("layers_scores"))
        wrong = scores != s["golden_scores"]
        score_mismatches += int(wrong)
        if labels is not None:
            correct += int(int(np.argmax(scores)) == int(labels[k]))
    whole = "inference_cycles" in samples[0] if samples else False
    rtl = [s["whole_layer_cycles"] if whole else s["layer_cycles"] for s in samples]
    inference = [s["inference_cycles"] if whole else sum(s["layer_cycles"]) for s in samples]
    table = [{"name": name, "op": layer["op"], "mismatches": per_layer[i],
              "cycles": _mean(r[i] for r in rtl),
              "bound_cycles": _mean(s["bound"][i] for s in samples),
              "model_cycles": _mean(s["model_cycles"][i] for s in samples)}
             for i, (name, layer) in enumerate(zip(names, compiled.layers))]
    whole_scores = sum(int(s["scores"] != s["golden_scores"]) for s in samples
                       if "scores" in s)
    out = {"config": compiled.config.name, "simulator": detail.get("simulator"),
           "mode": detail["mode"], "samples": len(samples),
           "accuracy": correct / len(samples) if labels is not None and samples else None,
           "mismatches": sum(per_layer) + whole_scores,
           "score_mismatches": score_mismatches,
           "cycles_per_inference": _mean(inference),
           "bound_cycles": _mean(sum(s["bound"]) for s in samples),
           "model_cycles": _mean(sum(s["model_cycles"]) for s in samples),
           "checked": detail["checked"], "simulated_cycles": detail["cycles"],
           "seconds": detail["seconds"]}
    if "failure" in detail or "error" in detail:
        out["failure"] = detail.get("error") or detail["failure"]
    out["memories"] = compiled.summary()["memories"]
    out["layers"] = table
    return out


def run_rtl(compiled, pixels, labels=None, *, simulator="verilator", mode="both", seed=None,
            in_idle=0.2, out_stall=0.2):
    """:func:`simulate_model` then :func:`rtl_figures` (plus ``simulator`` and ``seed``)."""
    detail, result = simulate_model(compiled, pixels, simulator=simulator, mode=mode,
                                    seed=seed, in_idle=in_idle, out_stall=out_stall)
    detail["simulator"] = simulator
    out = rtl_figures(compiled, detail, labels)
    out["seed"] = None if result is None else result.seed
    return out


def bench(compiled, pixels, *, simulator="verilator", seed=None):
    """Inferences per minute of the RTL in simulation (speed mode: one START 0, 0 per sample,
    no host stalls, only the scores read): ``inferences_per_minute`` counts the simulator's
    wall time from each START to done; ``cycles_per_inference`` is measured on the RTL
    (STATUS), next to the cost model's ``bound_cycles`` and ``model_cycles``."""
    detail, result = simulate_model(compiled, pixels, simulator=simulator, mode="whole",
                                    seed=seed, in_idle=0.0, out_stall=0.0, bad_crc=False)
    detail["simulator"] = simulator
    figures = rtl_figures(compiled, detail)
    samples = detail["samples"]
    seconds = sum(s["inference_seconds"] for s in samples)
    cycles = sum(s["inference_cycles"] for s in samples)
    rate = 60 * len(samples) / seconds if seconds else None
    out = {"benchmark": "accelerator", "config": compiled.config.name,
           "simulator": simulator, "samples": len(samples),
           "inferences_per_minute": None if rate is None else round(rate, 2),
           "simulated_cycles_per_second": round(cycles / seconds) if seconds else None,
           "inference_seconds": round(seconds, 3),
           "load_seconds": detail.get("load_seconds"),
           "total_seconds": None if result is None else result.seconds,
           "cycles_per_inference": figures["cycles_per_inference"],
           "bound_cycles": figures["bound_cycles"], "model_cycles": figures["model_cycles"],
           "ratio": (round(figures["cycles_per_inference"] / figures["bound_cycles"], 3)
                     if figures["cycles_per_inference"] and figures["bound_cycles"] else None),
           "mismatches": figures["mismatches"],
           "seed": None if result is None else result.seed}
    if "failure" in figures:
        out["failure"] = figures["failure"]
    return out
