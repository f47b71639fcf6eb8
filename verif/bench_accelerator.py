"""The compiled model on the accelerator's RTL (``spikeforge run --backend rtl``,
``spikeforge bench accelerator``): writes a case for the system testbench
(:mod:`spikeforge.verif.tb_accelerator`), simulates the ``accelerator`` unit for the compiled
configuration on Icarus or Verilator and turns the testbench's detail into figures.

The caller compiles (``spikeforge.compiler.compile_model``; this package does not import the
compiler): ``compiled`` is anything with ``config`` (a
:class:`~spikeforge.contract.configs.Config`), ``images`` (``{memory: array}``), ``layers``
(``[{"name", "op", ...}]``) and ``summary()``.
"""

import json
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from . import runner
from .tb_accelerator import write_case
from .toolchain import BUILD_ROOT

__all__ = ["simulate_model", "rtl_figures", "run_rtl", "bench"]

#: The registered unit of the whole accelerator.
UNIT = "accelerator"


def simulate_model(compiled, pixels, *, simulator="verilator", mode="both", seed=None,
                   in_idle=0.2, out_stall=0.2, bad_crc=True, unit=UNIT, golden_batch=1,
                   started=None, membranes=(), waves=False):
    """Run the system testbench (of registered ``unit``) on ``pixels`` (int ``(samples, C, H,
    W)``) with ``compiled``'s images in ``mode`` (:data:`~.tb_accelerator.MODES`); return
    ``(detail, result)``: the testbench's detail dict and the runner's
    :class:`~spikeforge.verif.runner.SimResult` (``None`` when the run failed before
    reporting). Mismatches do not raise (they are in the detail); a testbench that ends
    without a detail (a build error, a hang) raises
    :class:`~spikeforge.verif.runner.SimulationFailed`. ``golden_batch`` and ``started``: as
    :func:`~.tb_accelerator.write_case`. The case reaches the testbench as the unit's ``case``
    stimulus (not the environment), so several runs may go at once from threads.
    ``membranes``: as :func:`~.tb_accelerator.write_case`; ``waves``: record the run's signals
    (``result.waves`` is the file)."""
    cases = BUILD_ROOT / "cases"
    cases.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cases) as folder:
        case = Path(folder) / "case.npz"
        detail_path = Path(folder) / "detail.json"
        write_case(case, config=compiled.config, images=compiled.images, pixels=pixels,
                   mode=mode, names=[layer["name"] for layer in compiled.layers],
                   in_idle=in_idle, out_stall=out_stall, bad_crc=bad_crc,
                   detail=detail_path, golden_batch=golden_batch, started=started,
                   membranes=membranes)
        try:
            result = runner.simulate(unit, params={"config": compiled.config.name},
                                     stimulus={"case": str(case)}, simulator=simulator,
                                     seed=seed, waves=waves)
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
            in_idle=0.2, out_stall=0.2, membranes=(), waves=False):
    """:func:`simulate_model` then :func:`rtl_figures` (plus ``simulator`` and ``seed``; with
    ``membranes``, the first sample's read-back membranes as ``membranes``; with ``waves``,
    the wave file as ``waves``)."""
    detail, result = simulate_model(compiled, pixels, simulator=simulator, mode=mode,
                                    seed=seed, in_idle=in_idle, out_stall=out_stall,
                                    membranes=membranes, waves=waves)
    detail["simulator"] = simulator
    out = rtl_figures(compiled, detail, labels)
    out["seed"] = None if result is None else result.seed
    if waves:
        out["waves"] = None if result is None else result.waves
    if membranes and detail["samples"]:
        out["membranes"] = detail["samples"][0].get("membranes", {})
    return out


#: The test split the speed target is about: its images, and the wall time they must take.
TEST_SPLIT = 450
TARGET_SECONDS = 15 * 60


def _shards(pixels, jobs):
    """``pixels`` in ``jobs`` contiguous parts (fewer when there are fewer samples)."""
    jobs = max(1, min(int(jobs), len(pixels)))
    return [part for part in np.array_split(np.asarray(pixels), jobs) if len(part)]


def _median(values):
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 3) if values else None


def bench(compiled, pixels, *, simulator="verilator", seed=None, jobs=2, golden_batch=16):
    """The RTL's simulation speed on ``pixels``: the compiled model loaded once per simulator
    process, then per sample the input written, one START 0, 0, the wait for ``done`` (no
    Python runs while the program does) and the scores read and compared with the golden
    model's (``mismatches``); no host stalls, the golden model run ``golden_batch`` samples at
    a time. ``jobs`` simulator processes share the samples (contiguous parts): the first
    builds, the others start once its simulation has started.

    Figures: ``wall_seconds`` (measured, build included), ``build_seconds`` (the first
    process's start to its simulation's start), ``seconds_per_inference`` (median over the
    samples of each sample's wall time in its process: input, run, scores, golden model),
    ``run_seconds`` (median START → done), ``inferences_per_minute`` (all samples over the
    wall time after the build, all processes together) and the 450-image projection
    ``test_split_seconds`` (build + load + 450 samples at that rate) against
    :data:`TARGET_SECONDS`. The bound of the rate is the simulator alone: every sample's
    cycles at the measured cycles per second of its runs, ``jobs`` at once
    (``bound_inferences_per_minute``); ``ratio`` is the rate over it (1: the testbench costs
    nothing). ``cycles_per_inference`` is measured on the RTL (STATUS) next to the cost
    model's ``bound_cycles`` (``cycles_ratio``: their medians' ratio)."""
    shards = _shards(pixels, jobs)
    began, began_clock = time.monotonic(), time.time()
    cases = BUILD_ROOT / "cases"
    cases.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cases) as folder:
        started = [Path(folder) / f"started-{k}" for k in range(len(shards))]
        first_done = threading.Event()
        sim_started = {}

        def shard(k):
            if k:       # the first process builds; the others reuse its build
                while not started[0].exists() and not first_done.is_set():
                    time.sleep(0.2)
            try:
                return simulate_model(
                    compiled, shards[k], simulator=simulator, mode="whole",
                    seed=None if seed is None else seed + k, in_idle=0.0, out_stall=0.0,
                    bad_crc=False, golden_batch=golden_batch, started=started[k])
            finally:
                if started[k].exists():
                    sim_started[k] = started[k].stat().st_mtime
                if not k:
                    first_done.set()

        with ThreadPoolExecutor(len(shards)) as pool:
            runs = list(pool.map(shard, range(len(shards))))
        started_at = min(sim_started.values()) if sim_started else None
    wall = time.monotonic() - began
    build = None if started_at is None else max(0.0, started_at - began_clock)
    details = [detail for detail, _ in runs]
    samples = [s for detail in details for s in detail["samples"]]
    detail = {"mode": "whole", "simulator": simulator, "samples": samples,
              "checked": sum(d["checked"] for d in details),
              "cycles": sum(d["cycles"] for d in details),
              "seconds": max(d["seconds"] for d in details)}
    failures = [d.get("error") or d.get("failure") for d in details
                if "error" in d or "failure" in d]
    if failures:
        detail["failure"] = failures[0]
    figures = rtl_figures(compiled, detail)
    run_seconds = [s["inference_seconds"] for s in samples]
    sample_seconds = [s.get("sample_seconds", s["inference_seconds"]) for s in samples]
    cycles = [s["inference_cycles"] for s in samples]
    rate_cps = sum(cycles) / sum(run_seconds) if samples and sum(run_seconds) else None
    load = max((d.get("load_seconds") or 0) for d in details)
    after_build = wall - (build or 0)
    rate = 60 * len(samples) / after_build if samples and after_build > 0 else None
    bound_rate = (60 * len(shards) * rate_cps / statistics.median(cycles)
                  if rate_cps else None)
    per_sample = _median(sample_seconds)
    projection = (None if per_sample is None or build is None else
                  round(build + load + TEST_SPLIT * per_sample / len(shards), 1))
    median_cycles = statistics.median(cycles) if cycles else None
    median_bound = (statistics.median(sum(s["bound"]) for s in samples) if samples else None)
    out = {"benchmark": "accelerator", "config": compiled.config.name,
           "simulator": simulator, "jobs": len(shards), "samples": len(samples),
           "golden_batch": golden_batch,
           "inferences_per_minute": None if rate is None else round(rate, 2),
           "bound_inferences_per_minute": (None if bound_rate is None
                                           else round(bound_rate, 2)),
           "ratio": (round(rate / bound_rate, 3) if rate and bound_rate else None),
           "test_split_images": TEST_SPLIT, "test_split_seconds": projection,
           "target_seconds": TARGET_SECONDS,
           "target_met": None if projection is None else projection <= TARGET_SECONDS,
           "wall_seconds": round(wall, 1),
           "build_seconds": None if build is None else round(build, 1),
           "load_seconds": load,
           "seconds_per_inference": per_sample,
           "run_seconds": _median(run_seconds),
           "host_seconds": _median(s["sample_seconds"] - s["inference_seconds"]
                                   - s.get("golden_seconds", 0) for s in samples
                                   if "sample_seconds" in s),
           "golden_seconds": _median(s.get("golden_seconds") for s in samples),
           "simulated_cycles_per_second": None if rate_cps is None else round(rate_cps),
           "cycles_per_inference": median_cycles,
           "mean_cycles_per_inference": figures["cycles_per_inference"],
           "bound_cycles": median_bound, "model_cycles": figures["model_cycles"],
           "cycles_ratio": (round(median_cycles / median_bound, 3)
                            if median_cycles and median_bound else None),
           "mismatches": figures["mismatches"],
           "score_mismatches": figures["score_mismatches"],
           "checked": detail["checked"],
           "seed": [None if result is None else result.seed for _, result in runs]}
    if "failure" in figures:
        out["failure"] = figures["failure"]
    return out
