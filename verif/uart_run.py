"""The compiled model on an accelerator behind a serial port (``spikeforge run --backend
uart``): the host driver (:mod:`spikeforge.driver`) loads it, runs the samples, reads the
scores, the cycles and every layer's output, and each is compared with the accelerator's
golden model; the figures are :func:`~.bench_accelerator.rtl_figures`' (the ``--backend rtl``
JSON) plus the link's: bytes each way, retries, the load time and ``bytes_per_inference`` (the
median over the samples of the bytes both ways while one sample ran: what a board's line
carries per inference next to its cycles). ``port="sim"`` runs the simulated board (:mod:`.board_sim`).
"""

import statistics
import time

import numpy as np

from spikeforge.driver import DEFAULT_BAUD, Device, Session, open_port

from .bench_accelerator import rtl_figures
from .board_sim import board_sim

__all__ = ["run_uart", "SIM_PORT"]

#: The ``--port`` that names the simulated board.
SIM_PORT = "sim"


def run_uart(compiled, pixels, labels=None, *, port, baud=DEFAULT_BAUD, layers=True,
             simulator="verilator", timeout=None, retries=4, wrap=None, progress=None):
    """Figures of ``compiled`` on ``pixels`` (int ``(samples, C, H, W)``) at ``port``.

    ``layers``: read and compare every layer's output (else the scores only); ``timeout``:
    seconds per answer (default 2, 30 for the simulated board, whose clock is slow);
    ``wrap``: called with the open port, returns the port the driver uses (tests put a lossy
    line there); ``progress``: called after each sample. Raises
    :class:`~spikeforge.driver.DriverError` when the device cannot be reached or refuses a
    request."""
    if port == SIM_PORT:
        with board_sim(compiled.config.name, simulator=simulator) as url:
            out = _run(compiled, pixels, labels, url, baud, layers,
                       30.0 if timeout is None else timeout, retries, wrap, progress)
        out["simulator"] = simulator
    else:
        out = _run(compiled, pixels, labels, port, baud, layers,
                   2.0 if timeout is None else timeout, retries, wrap, progress)
        out["simulator"] = None
    out.update(port=port, baud=baud)
    return out


def _run(compiled, pixels, labels, port, baud, layers, timeout, retries, wrap, progress):
    from spikeforge.golden.accelerator import golden_sample, output_addresses

    started = time.perf_counter()
    serial = open_port(port, baud=baud)
    try:
        line = wrap(serial) if wrap else serial
        device = Device(line, config=compiled.config, timeout=timeout, retries=retries)
        session = Session(device, compiled, run_timeout=max(60.0, 10 * timeout))
        session.load()
        load_seconds = time.perf_counter() - started
        samples, checked, traffic = [], 0, []
        for pixel in np.asarray(pixels):
            accelerator, snaps, gold, _, _ = golden_sample(compiled.config, compiled.images,
                                                           pixel)
            before = device.sent + device.received
            result = session.run(pixel[None], outputs=layers)[0]
            traffic.append(device.sent + device.received - before)
            want_scores = gold.scores[0].numpy()
            sample = {"bound": list(gold.bound), "model_cycles": list(gold.cycles),
                      "golden_scores": want_scores.tolist(), "scores": result.scores.tolist(),
                      "inference_cycles": result.cycles,
                      "whole_layer_cycles": result.layer_cycles, "layer_mismatches": []}
            checked += len(want_scores)
            for i, (d, got) in enumerate(zip(accelerator.layers, result.outputs), start=1):
                memory, addresses = output_addresses(d, compiled.config)
                want = snaps[i + 1][memory.name.lower()][addresses]
                checked += len(want)
                if np.asarray(got).shape != want.shape or (np.asarray(got) != want).any():
                    sample["layer_mismatches"].append(i)
            samples.append(sample)
            if progress:
                progress()
    finally:
        serial.close()
    detail = {"mode": "whole", "samples": samples, "checked": checked, "cycles": None,
              "seconds": round(time.perf_counter() - started, 3)}
    out = rtl_figures(compiled, detail, labels)
    out.update(load_seconds=round(load_seconds, 3), bytes_sent=device.sent,
               bytes_received=device.received, retried=device.retried, layers_read=layers,
               bytes_per_inference=statistics.median(traffic) if traffic else None)
    return out
