"""cocotb system testbench: the whole accelerator (``spikeforge.hdl.accelerator.core``) driven
only through its host port (:class:`~spikeforge.verif.host_link.HostLink`: no backdoor), against
the accelerator's golden model (:class:`spikeforge.golden.accelerator.Accelerator`).

The case (a compiled model's images and the input samples) is an ``.npz`` file named by the
environment variable :data:`CASE_ENV` (or the stimulus setting ``case``), written by
:func:`write_case`; ``spikeforge.verif.bench_accelerator`` writes it and runs this testbench.
Without a case the testbench runs the ``link`` checks only.

Every run
    INFO equals the configuration (format version, lanes, word bits, every memory's depth and
    row bits); random rows written to every memory read back equal (``link`` mode) or every
    image is written and a few rows of each read back; a WRITE with a bad CRC is answered
    BAD_CHECKSUM and changes nothing (read back).
Per sample (modes ``layers``, ``whole``, ``both``)
    The input image's words (the golden model's ``write`` of the INPUT descriptor on zeroed
    spikes) are written to the INPUT tensor's address range. ``layers``: each layer descriptor
    ``i`` runs alone (START ``i``, ``i + 1``); when STATUS says done, its whole output (every
    word the descriptor writes: ``dst_base + t * dst_step + n * dst_token + w``) is read and
    compared with the golden model's memory after that layer, and CYCLES ``i`` is its RTL
    cycles. ``whole`` (the speed mode): one START 0, 0 runs the program; STATUS gives the
    cycles from start to done, CYCLES every layer's, and only the scores are read. The scores
    (the READOUT's output) are compared with the golden model's in either mode. Before the
    first sample's whole run, for each executor the program uses, a START is RESET a random
    part of the way through that executor's longest layer: STATUS must say busy in that layer
    before and idle (not done, no error) after, and the run that follows (the input written
    again) must still give the golden scores. While a program runs to its end no Python runs:
    the link waits for ``done`` to rise (one STATUS after it).
    ``whole`` mode may run the golden model on several samples at once (``golden_batch``).

The report (``SPIKEFORGE_REPORT``) counts the compared words (``checked``), the mismatching
layer outputs and scores (``mismatches``) and the simulated cycles; the case's ``detail`` file
gets per sample and layer the RTL cycles, the mismatches and the scores (JSON).
"""

import json
import os
import time

import cocotb
import numpy as np
import torch
from cocotb.triggers import ClockCycles, RisingEdge
from cocotb.utils import get_sim_time

from spikeforge.contract import host
from spikeforge.contract.configs import get_config
from spikeforge.contract.program import (DESCRIPTOR_SHIFT, FORMAT_VERSION, IMAGE_MEMORIES,
                                         Command, Error, Memory, Op, pack)
from spikeforge.driver import image_rows, spans
from spikeforge.golden.accelerator import (Accelerator, golden_sample, input_words,
                                           output_addresses)
from spikeforge.hdl.accelerator.sequencer import EXECUTOR_OPS
from spikeforge.verif.host_link import HostLink, random_rows, with_bad_crc
from spikeforge.verif.tb import Testbench, params, stimulus

__all__ = ["CASE_ENV", "MODES", "IMAGES", "write_case", "read_case", "output_addresses"]

#: Environment variable naming the case file.
CASE_ENV = "SPIKEFORGE_ACCEL_CASE"
#: What a run does per sample (``link``: no samples, the host-port checks only).
MODES = ("link", "layers", "whole", "both")
#: The memory images a case carries (what the compiler writes).
IMAGES = IMAGE_MEMORIES
_PERIOD_NS = 10


# -- the case file ------------------------------------------------------------------------------

def write_case(path, *, config, images, pixels=None, mode="both", names=None, in_idle=0.2,
               out_stall=0.2, bad_crc=True, detail=None, golden_batch=1, started=None,
               membranes=()):
    """Write a case: ``config`` (its name), ``images`` (``{memory: int array}``: at least
    :data:`IMAGES`), ``pixels`` (int ``(samples, C, H, W)``), ``mode`` (:data:`MODES`), the
    layer ``names`` (for the detail), the host link's ``in_idle`` / ``out_stall`` probabilities,
    whether to check a bad-CRC WRITE, and the ``detail`` JSON path the testbench writes.

    ``golden_batch`` (``whole`` mode only): the golden model runs that many samples at once
    (scores and input words per sample as before; ``bound`` and ``model_cycles`` per sample
    become the batch's means). ``started``: a file the testbench creates when the simulation
    starts (the build is done). ``membranes`` (``layers`` and ``both`` modes): the indices
    (1-based) of LIF descriptors whose membranes memory (its rows 0 .. ``out_tokens *
    lane_groups - 1``) is read back after each step into the sample's detail (``membranes``:
    ``{index: [rows after step 1, …, after step T]}``; the steps before the last by running
    the descriptor rewritten with fewer steps)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    meta = {"config": getattr(config, "name", config), "mode": mode, "names": names,
            "in_idle": in_idle, "out_stall": out_stall, "bad_crc": bad_crc,
            "detail": None if detail is None else str(detail),
            "golden_batch": int(golden_batch),
            "started": None if started is None else str(started),
            "membranes": [int(i) for i in membranes]}
    arrays = {name: np.asarray(images[name], dtype=np.int64) for name in IMAGES}
    if pixels is None:
        pixels = np.zeros((0, 1, 1, 1), dtype=np.int64)
    arrays["pixels"] = np.asarray(pixels, dtype=np.int64)
    np.savez(path, meta=np.array(json.dumps(meta)), **arrays)
    return path


def read_case(path):
    """``(meta, images, pixels)`` of a :func:`write_case` file."""
    with np.load(path) as f:
        meta = json.loads(str(f["meta"]))
        images = {name: f[name] for name in IMAGES}
        pixels = f["pixels"]
    return meta, images, pixels


# -- the testbench ------------------------------------------------------------------------------

class _Run:
    """Counters of one testbench run."""

    def __init__(self, log):
        self.log = log
        self.checked = 0
        self.mismatches = 0

    def compare(self, what, got, want, *, show=True):
        """Compare two arrays word by word; count one mismatch for ``what`` if any differ."""
        got, want = np.asarray(got), np.asarray(want)
        self.checked += len(want)
        if got.shape == want.shape and (got == want).all():
            return True
        self.mismatches += 1
        if show:
            if got.shape != want.shape:
                self.log.error("%s: got shape %s, expected %s", what, got.shape, want.shape)
            else:
                bad = np.nonzero((got != want).reshape(len(want), -1).any(axis=1))[0]
                self.log.error("%s: %d of %d words differ, first at #%d: got %s, expected %s",
                               what, len(bad), len(want), bad[0], got[bad[0]].tolist(),
                               want[bad[0]].tolist())
        return False


async def _check_info(link, config, run):
    info = await link.info()
    want = host.parse_info(host.info_payload(config))
    run.checked += 1
    if info != want or info.format_version != FORMAT_VERSION:
        run.mismatches += 1
        run.log.error("INFO %s, expected %s", info, want)


async def _check_bad_crc(link, config, run, memory, address, rows, current):
    """A WRITE of ``rows`` at ``address`` with a bad CRC is answered BAD_CHECKSUM (command
    0x80, tag 0) and the memory still holds ``current`` there."""
    frame = with_bad_crc(host.write_request(memory, address, rows, config=config, tag=0x5A))
    answer = await link.transact(Command.WRITE, frame=frame)
    run.checked += 1
    if answer.error != Error.BAD_CHECKSUM:
        run.mismatches += 1
        run.log.error("bad-CRC WRITE answered %s", answer.error.name)
    got = await link.read(memory, address, len(rows))
    run.compare(f"{Memory(memory).name.lower()} after a bad-CRC WRITE", got, current)


async def _link_checks(link, config, run, rng):
    """``link`` mode: random rows in every memory read back equal; a bad-CRC WRITE of
    other rows changes none of them."""
    for memory in Memory:
        spec = config.memories()[memory.name.lower()]
        count = min(spec.depth, 2 * host.max_words(config, memory) + 3)
        address = rng.randrange(spec.depth - count + 1)
        rows = random_rows(rng, config, memory, count)
        await link.write(memory, address, rows)
        got = await link.read(memory, address, count)
        run.compare(f"{memory.name.lower()} read back", got, rows)
        other = random_rows(rng, config, memory, min(count, 5))
        await _check_bad_crc(link, config, run, memory, address, other, rows[:len(other)])


async def _load_images(link, config, images, run, rng, bad_crc):
    """WRITE every image; READ back its first, last and a random row; a bad-CRC WRITE over
    the program's first descriptor changes nothing."""
    for name in IMAGES:
        memory = Memory[name.upper()]
        rows = image_rows(config, memory, images[name])
        if not rows:
            continue
        await link.write(memory, 0, rows)
        for address in sorted({0, len(rows) - 1, rng.randrange(len(rows))}):
            got = await link.read(memory, address, 1)
            run.compare(f"{name} row {address} read back", got, rows[address:address + 1])
    if bad_crc:
        program = image_rows(config, Memory.PROGRAM, images["program"])
        garbage = [rng.getrandbits(32) for _ in range(16)]
        await _check_bad_crc(link, config, run, Memory.PROGRAM, 0, garbage, program[:16])


def _golden_batch(config, images, pixels):
    """``whole`` mode: one golden run of ``pixels`` ``(B, C, H, W)``; ``(accelerator,
    addresses, samples)`` with per sample ``(scores, input words, bound, model cycles)``, the
    last two per layer and the batch's means (exact for ``B = 1``)."""
    accelerator = Accelerator(config, images)
    batch = len(pixels)
    with torch.no_grad():
        run = accelerator.run(torch.as_tensor(pixels))
        addresses, words = input_words(config, images, pixels)

    def mean(values):
        return [int(v) if batch == 1 else round(v / batch, 2) for v in values]

    bound, cycles = mean(run.bound), mean(run.cycles)
    return accelerator, addresses, [(run.scores[k].numpy(), words[k], bound, cycles)
                                    for k in range(batch)]


async def _write_input(link, addresses, words):
    """WRITE the input words (``addresses`` ascending; written as contiguous spans)."""
    for start, stop in spans(addresses):
        await link.write(Memory.SPIKES, int(addresses[start]),
                         [int(w) for w in words[start:stop]])


async def _read_words(link, memory, addresses):
    """The words at ``addresses`` (ascending), read as one span."""
    lo, hi = int(addresses[0]), int(addresses[-1])
    rows = np.asarray(await link.read(memory, lo, hi - lo + 1))
    return rows[addresses - lo]


def _budget(cycles):
    """Cycles to wait for a run the cost model puts at ``cycles``."""
    return 20 * int(cycles) + 20_000


async def _run_layers(link, config, accelerator, snaps, gold, run, names, membranes=()):
    """Each layer alone; its output against the golden memory after it. Returns the per-layer
    RTL cycles, the mismatching layers' indices and, for the LIF descriptors of
    ``membranes``, the membranes memory after each step (``{index: [rows after step 1, …,
    after step T]}``: :func:`_membranes_per_step`)."""
    cycles, bad, state = [], [], {}
    for i, d in enumerate(accelerator.layers, start=1):
        if i in membranes and d["op"] == Op.LIF:
            state[str(i)] = await _membranes_per_step(link, i, d, gold.cycles[i - 1])
        await link.start(i, i + 1)
        await link.wait_done(timeout_cycles=_budget(gold.cycles[i - 1]))
        cycles.append(await link.cycles(i))
        memory, addresses = output_addresses(d, config)
        got = await _read_words(link, memory, addresses)
        want = snaps[i + 1][memory.name.lower()][addresses]
        name = names[i - 1] if names else f"descriptor {i}"
        if not run.compare(f"layer {i} {name} ({Op(d['op']).name}) output", got, want):
            bad.append(i)
        if str(i) in state:
            state[str(i)].append(await link.read(Memory.MEMBRANES, 0,
                                                 d["out_tokens"] * d["lane_groups"]))
    return cycles, bad, state


async def _membranes_per_step(link, i, d, cycles):
    """The membranes memory of LIF descriptor ``i`` (``d``) after each step but the last:
    descriptor ``i`` rewritten over the host port with ``steps`` = 1, 2, …, T - 1 and run
    alone each time (the LIF starts every run from V = 0 and reads step t's input where the
    whole layer does), then written back as it was; the caller's run gives step T."""
    rows = d["out_tokens"] * d["lane_groups"]
    out = []
    for steps in range(1, d["steps"]):
        await link.write(Memory.PROGRAM, i << DESCRIPTOR_SHIFT, pack({**d, "steps": steps}))
        await link.start(i, i + 1)
        await link.wait_done(timeout_cycles=_budget(cycles))
        out.append(await link.read(Memory.MEMBRANES, 0, rows))
    await link.write(Memory.PROGRAM, i << DESCRIPTOR_SHIFT, pack(d))
    return out


async def _read_scores(link, config, accelerator):
    d = accelerator.layers[-1]
    memory, addresses = output_addresses(d, config)
    rows = await _read_words(link, memory, addresses)
    return np.asarray(rows).reshape(-1)[:d["out_channels"]]


def _interrupt_points(accelerator, layer_cycles):
    """Per executor the program uses, its longest layer (by the cost model's
    ``layer_cycles``): ``[(executor, descriptor index), …]`` in program order."""
    longest = {}
    for i, d in enumerate(accelerator.layers, start=1):
        for executor, ops in EXECUTOR_OPS.items():
            if d["op"] in ops and (executor not in longest
                                   or layer_cycles[i - 1] > layer_cycles[longest[executor] - 1]):
                longest[executor] = i
    return sorted(longest.items(), key=lambda item: item[1])


async def _interrupted_runs(dut, link, addresses, words, accelerator, layer_cycles, run, rng):
    """For each executor the program uses: START the whole program and RESET it a random part
    of the way through that executor's longest layer (STATUS polled from three quarters of the
    cost model's cycles before it): STATUS must say busy in that layer before and idle, not
    done, no error after. So every executor is stopped mid-layer once, its data registers
    (reset-less) left as the layer had them, before the run whose scores are compared. The
    input is written again after each (RESET keeps the memories as the run left them)."""
    for executor, i in _interrupt_points(accelerator, layer_cycles):
        await link.start(0, 0)
        await ClockCycles(dut.clk, max(1, 3 * sum(layer_cycles[:i - 1]) // 4))
        status = await link.status()
        while status.busy and status.layer < i:
            status = await link.status()
        await ClockCycles(dut.clk, rng.randrange(1, max(2, layer_cycles[i - 1] // 2)))
        before = await link.status()
        await link.reset()
        after = await link.status()
        run.log.info("RESET in layer %d (%s) at cycle %d of the run", before.layer, executor,
                     before.cycles)
        run.checked += 1
        if (not before.busy or before.layer != i or after.busy or after.done
                or after.error != Error.OK):
            run.mismatches += 1
            run.log.error("RESET during layer %d (%s): STATUS %s before, %s after", i,
                          executor, before, after)
        await _write_input(link, addresses, words)


async def _run_whole(link, accelerator, model_cycles):
    """START 0, 0: the whole program (the cost model puts it at ``model_cycles``); ``(cycles
    start → done, per-layer cycles, seconds)``."""
    started = time.perf_counter()
    await link.start(0, 0)
    status = await link.wait_done(timeout_cycles=_budget(model_cycles))
    seconds = time.perf_counter() - started
    layers = [await link.cycles(i) for i in range(1, len(accelerator.layers) + 1)]
    return status.cycles, layers, seconds


@cocotb.test()
async def accelerator_matches_golden(dut):
    p, s = params(), stimulus()
    config = get_config(p["config"])
    case_path = os.environ.get(CASE_ENV) or s.get("case")
    if case_path:
        meta, images, pixels = read_case(case_path)
        if meta["config"] != config.name:
            raise AssertionError(f"the case is compiled for {meta['config']}, the design is "
                                 f"{config.name}")
    else:
        meta = {"mode": "link", "names": None, "bad_crc": True, "detail": None,
                "in_idle": s.get("in_idle", 0.2), "out_stall": s.get("out_stall", 0.2)}
        images, pixels = None, np.zeros((0,))
    mode = meta["mode"]
    if meta.get("started"):
        open(meta["started"], "w").close()

    tb = Testbench(dut, period_ns=_PERIOD_NS)
    dut.rst.value = 1
    await ClockCycles(tb.clk, 3)
    dut.rst.value = 0
    await RisingEdge(tb.clk)
    link = HostLink(dut, tb.clk, config, rng=tb.rng, idle=meta["in_idle"],
                    stall=meta["out_stall"], period_ns=_PERIOD_NS)
    run = _Run(dut._log)
    detail = {"config": config.name, "mode": mode, "samples": []}
    started = time.perf_counter()
    try:
        await _check_info(link, config, run)
        status = await link.status()
        run.checked += 1
        if status.busy or status.done or status.error != Error.OK:
            run.mismatches += 1
            run.log.error("STATUS after reset: %s", status)
        if mode == "link":
            await _link_checks(link, config, run, tb.rng)
        else:
            await _load_images(link, config, images, run, tb.rng, meta["bad_crc"])
            detail["load_seconds"] = round(time.perf_counter() - started, 3)
        batch = max(1, meta.get("golden_batch", 1)) if mode == "whole" else 0
        for j in range(len(pixels) if mode != "link" else 0):
            if batch and j % batch == 0:
                golden_started = time.perf_counter()
                accelerator, addresses, golden = _golden_batch(config, images,
                                                               pixels[j:j + batch])
                golden_seconds = (time.perf_counter() - golden_started) / len(golden)
            if batch:
                out = await _sample_whole(dut, link, config, accelerator, addresses,
                                          golden[j % batch], run, j, tb.rng)
                out["golden_seconds"] = round(golden_seconds, 4)
                out["sample_seconds"] = round(out["sample_seconds"] + golden_seconds, 4)
            else:
                out = await _sample(dut, link, config, images, pixels[j], run, mode,
                                    meta["names"], j, tb.rng, meta.get("membranes", ()))
            detail["samples"].append(out)
    except Exception as exc:               # an error answer, a hang, a malformed answer
        run.mismatches += 1
        detail["error"] = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        detail.update(checked=run.checked, mismatches=run.mismatches,
                      cycles=int(get_sim_time("ns") // _PERIOD_NS),
                      seconds=round(time.perf_counter() - started, 3),
                      bytes_sent=link.sent, bytes_received=link.received,
                      requests=link.requests)
        _write_report(detail, meta.get("detail"))
    assert run.checked > 0, "the testbench checked nothing"
    assert run.mismatches == 0, f"{run.mismatches} mismatches against the golden model"


async def _sample_whole(dut, link, config, accelerator, addresses, golden, run, j, rng):
    """One sample in ``whole`` mode from a :func:`_golden_batch` entry: the detail dict."""
    started = time.perf_counter()
    want_scores, words, bound, model_cycles = golden
    out = {"bound": bound, "model_cycles": model_cycles, "golden_scores": want_scores.tolist()}
    await _write_input(link, addresses, words)
    if j == 0:
        await _interrupted_runs(dut, link, addresses, words, accelerator, model_cycles, run,
                                rng)
    out["inference_cycles"], out["whole_layer_cycles"], out["inference_seconds"] = (
        await _run_whole(link, accelerator, sum(model_cycles)))
    out["scores"] = (await _read_scores(link, config, accelerator)).tolist()
    out["score_match"] = run.compare(f"sample {j} scores", out["scores"], want_scores)
    out["sample_seconds"] = round(time.perf_counter() - started, 4)
    dut._log.info("sample %d: %d cycles, %.2f s", j, out["inference_cycles"],
                  out["sample_seconds"])
    return out


async def _sample(dut, link, config, images, pixels, run, mode, names, j, rng,
                  membranes=()):
    """One sample in ``mode``: the detail dict."""
    started = time.perf_counter()
    accelerator, snaps, gold, addresses, words = golden_sample(config, images, pixels)
    golden_seconds = time.perf_counter() - started
    want_scores = gold.scores[0].numpy()
    out = {"bound": list(gold.bound), "model_cycles": list(gold.cycles),
           "golden_scores": want_scores.tolist()}
    if mode in ("layers", "both"):
        await _write_input(link, addresses, words)
        out["layer_cycles"], out["layer_mismatches"], state = await _run_layers(
            link, config, accelerator, snaps, gold, run, names, membranes)
        if state:
            out["membranes"] = state
        # the READOUT layer's output: compared (and counted) with the layers above
        out["layers_scores"] = (await _read_scores(link, config, accelerator)).tolist()
    if mode in ("whole", "both"):
        await _write_input(link, addresses, words)
        if j == 0:
            await _interrupted_runs(dut, link, addresses, words, accelerator, gold.cycles, run,
                                    rng)
        out["inference_cycles"], out["whole_layer_cycles"], out["inference_seconds"] = (
            await _run_whole(link, accelerator, sum(gold.cycles)))
        out["scores"] = (await _read_scores(link, config, accelerator)).tolist()
        out["score_match"] = run.compare(f"sample {j} scores", out["scores"], want_scores)
    out["golden_seconds"] = round(golden_seconds, 4)
    out["sample_seconds"] = round(time.perf_counter() - started, 4)
    dut._log.info("sample %d: %s", j, {k: v for k, v in out.items()
                                       if k in ("inference_cycles", "layer_mismatches")})
    return out


def _write_report(detail, detail_path):
    path = os.environ.get("SPIKEFORGE_REPORT")
    if path:
        with open(path, "w") as f:
            json.dump({key: detail[key] for key in ("checked", "mismatches", "cycles")}, f)
    if detail_path:
        tmp = f"{detail_path}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            json.dump(detail, f)
        os.replace(tmp, detail_path)
