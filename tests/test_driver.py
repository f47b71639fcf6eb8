"""The host driver (``spikeforge/driver.py``): its retries and refusals against scripted ports
(fast), then against the simulated board (``hdl/board.py`` behind ``verif/board_sim.py``): the
board's own line checks on both simulators, the shipped Spikformer end to end over the
simulated UART with every layer's output read back (0 mismatches), and the same with bytes
flipped and dropped on the line (the driver recovers; never a wrong score)."""

import functools
import random
import time

import numpy as np
import pytest

from spikeforge.compiler import compile_model
from spikeforge.contract import host
from spikeforge.contract.configs import get_config
from spikeforge.contract.program import Command, Error, Memory
from spikeforge.driver import Device, DriverError
from spikeforge.golden.data import load_digits
from spikeforge.golden.modelfile import load_model
from spikeforge.verif import runner
from spikeforge.verif.accel_cases import shipped_model_path
from spikeforge.verif.lossy_line import LossyLine
from spikeforge.verif.uart_run import run_uart

CONFIG = get_config("ulx3s-85f")


class ScriptedPort:
    """A pyserial-like port: each request frame written is handed to ``answer(body, n)``
    (the decoded request body, the request's index), whose bytes (or ``None``: silence) come
    back."""

    def __init__(self, answer):
        self._answer, self._inbox, self._outbox = answer, bytearray(), bytearray()
        self.requests = 0

    def write(self, data):
        self._inbox += data
        while 0 in self._inbox:
            end = self._inbox.index(0) + 1
            frame, self._inbox = bytes(self._inbox[:end]), self._inbox[end:]
            if len(frame) == 1:
                continue
            reply = self._answer(host.decode_frame(frame), self.requests)
            self.requests += 1
            if reply:
                self._outbox += reply

    def read(self, size=1):
        out, self._outbox = bytes(self._outbox[:size]), self._outbox[size:]
        return out

    @property
    def in_waiting(self):
        return len(self._outbox)

    def reset_input_buffer(self):
        self._outbox.clear()


def _ok(body, payload=b""):
    return host.answer_frame(Command(body[0]), body[1], Error.OK, payload)


STATUS_IDLE = host.status_payload(host.Status(busy=False, done=True, error=Error.OK, layer=3,
                                              cycles=77))


def test_silent_device_times_out_with_one_line():
    port = ScriptedPort(lambda body, n: None)
    device = Device(port, config=CONFIG, timeout=0.05, retries=2)
    with pytest.raises(DriverError, match=r"^STATUS: no valid answer after 3 attempts "
                                          r"\(no answer within 0.05 s\)$"):
        device.status()
    assert port.requests == 3


def test_refusal_is_not_retried():
    port = ScriptedPort(lambda body, n: host.answer_frame(Command(body[0]), body[1],
                                                          Error.ADDRESS_RANGE))
    device = Device(port, config=CONFIG, timeout=0.05)
    with pytest.raises(DriverError, match="^READ refused: ADDRESS_RANGE$"):
        device.read(Memory.SPIKES, 0, 4)
    assert port.requests == 1


def test_damaged_answers_and_requests_are_retried():
    def answer(body, n):
        reply = bytearray(_ok(body, STATUS_IDLE))
        if n == 0:                               # a bit flipped on the way back
            reply[3] ^= 0x10
            return bytes(reply)
        if n == 1:                               # the request arrived damaged
            return host.answer_frame(0, 0, Error.BAD_CHECKSUM)
        if n == 2:                               # an answer to an earlier request first
            stale = host.status_payload(host.Status(busy=True, done=False, error=Error.OK,
                                                    layer=9, cycles=1))
            return host.answer_frame(Command.STATUS, (body[1] - 1) % 256, Error.OK,
                                     stale) + reply
        return bytes(reply)

    port = ScriptedPort(answer)
    device = Device(port, config=CONFIG, timeout=2.0)
    started = time.monotonic()
    status = device.status()
    assert (status.done, status.layer, status.cycles) == (True, 3, 77)
    assert device.retried == 2 and port.requests == 3
    assert time.monotonic() - started < 1.0          # retried at once, never timed out


def test_start_busy_on_a_retry_means_started():
    def answer(body, n):
        if n == 0:
            return None                          # the answer was lost; START did run
        return host.answer_frame(Command.START, body[1], Error.BUSY)

    device = Device(ScriptedPort(answer), config=CONFIG, timeout=0.05)
    device.start(0, 0)
    assert device.retried == 1
    # a first START answered BUSY is a refusal
    device = Device(ScriptedPort(lambda body, n: host.answer_frame(Command.START, body[1],
                                                                   Error.BUSY)),
                    config=CONFIG, timeout=0.05)
    with pytest.raises(DriverError, match="^START refused: BUSY$"):
        device.start(0, 0)


def test_wait_done_reports_the_error_code():
    error = host.status_payload(host.Status(busy=False, done=False, error=Error.CAPACITY,
                                            layer=2, cycles=0))
    device = Device(ScriptedPort(lambda body, n: _ok(body, error)), config=CONFIG,
                    timeout=0.05)
    with pytest.raises(DriverError, match="^the program stopped at descriptor 2: CAPACITY$"):
        device.wait_done(timeout=1)


# -- the simulated board ----------------------------------------------------------------------

def board_build(simulator):
    return [pytest.mark.slow, pytest.mark.xdist_group(f"board-{simulator}")]


@pytest.mark.parametrize("simulator", [pytest.param(s, marks=board_build(s))
                                       for s in runner.SIMULATORS])
def test_board_link_checks(simulator):
    result = runner.simulate("board", simulator=simulator)
    assert result.checked > 0 and result.mismatches == 0


@functools.cache
def _spikformer():
    return compile_model(load_model(shipped_model_path("spikformer")), CONFIG.name)


def _test_images(count):
    test = load_digits()[1]
    return test.images[:count].numpy(), test.labels[:count].numpy()


@pytest.mark.slow
@pytest.mark.xdist_group("board-verilator")
def test_uart_sim_matches_golden():
    pixels, labels = _test_images(1)
    out = run_uart(_spikformer(), pixels, labels, port="sim")
    print({k: out[k] for k in ("mismatches", "cycles_per_inference", "bound_cycles",
                               "seconds", "bytes_sent", "bytes_received")})
    assert out["layers_read"] and out["samples"] == 1
    assert out["checked"] > 1000
    assert out["mismatches"] == 0 and out["score_mismatches"] == 0
    assert out["retried"] == 0
    assert all(layer["cycles"] > 0 for layer in out["layers"])
    assert out["cycles_per_inference"] >= out["bound_cycles"]


@pytest.mark.slow
@pytest.mark.xdist_group("board-verilator")
def test_uart_sim_survives_line_errors():
    pixels, labels = _test_images(2)
    lines = []

    def lossy(port):
        lines.append(LossyLine(port, rng=random.Random(5), flip=3e-4, drop=3e-4))
        return lines[-1]

    out = run_uart(_spikformer(), pixels, labels, port="sim", layers=False, timeout=5.0,
                   retries=8, wrap=lossy)
    line = lines[0]
    print({"flipped": line.flipped, "dropped": line.dropped, "retried": out["retried"]})
    assert line.flipped > 0 and line.dropped > 0
    assert out["retried"] > 0
    assert out["mismatches"] == 0 and out["score_mismatches"] == 0
    assert np.isfinite(out["cycles_per_inference"])
