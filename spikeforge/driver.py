"""The host driver: a compiled model run on an accelerator behind a serial line (a board's UART,
or the simulated board of :mod:`spikeforge.verif.board_sim` at a ``socket://`` URL), speaking
the host protocol of :mod:`spikeforge.contract.host`.

:class:`Device` is one request at a time with retries: a request is sent again when its answer
does not come within ``timeout`` seconds (the host then sends a ``0x00`` first, which ends any
request the device holds half received), when the answer frame is unreadable (a bad COBS group
or CRC: bytes lost or flipped on the way back) or when the device answers BAD_FRAME or
BAD_CHECKSUM (bytes lost or flipped on the way there). Every request is idempotent (a WRITE
writes the same words again, a START answered BUSY on a retry had started), so a retry never
changes a result. Any other error answer, or ``retries`` failed attempts, raises
:class:`DriverError` with one line naming the request; a wrong answer is never returned: every
answer passed its CRC and echoes the request's command and tag.

:class:`Session` is the model level: load the compiled images, run samples (write the input,
START, wait for done, read the scores, the per-layer cycles and, on request, every layer's
output words).
"""

import time
from dataclasses import dataclass, field

import numpy as np

from spikeforge.contract import host
from spikeforge.contract.program import IMAGE_MEMORIES, Command, Error, Memory

__all__ = ["DriverError", "Device", "Session", "SampleResult", "DEFAULT_BAUD", "open_port",
           "image_rows", "spans"]

#: The ULX3S board's UART rate (its FT231X reaches 3 Mbaud).
DEFAULT_BAUD = 3_000_000

# Errors that mean the request was damaged on the line: send it again.
_LINE_ERRORS = (Error.BAD_FRAME, Error.BAD_CHECKSUM)


class DriverError(RuntimeError):
    """The device could not be reached or refused a request (one line, names the request)."""


def open_port(port, *, baud=DEFAULT_BAUD):
    """A pyserial port object for ``port``: a device path (``/dev/ttyUSB0``) or a pyserial URL
    (``socket://127.0.0.1:4000``); ``DriverError`` if it cannot be opened."""
    import serial
    try:
        return serial.serial_for_url(port, baudrate=baud, timeout=0.05)
    except (serial.SerialException, ValueError, OSError) as exc:
        raise DriverError(f"cannot open port {port}: {exc}") from None


class Device:
    """The accelerator at the other end of ``port`` (an open pyserial-like object with
    ``write``, ``read``, ``reset_input_buffer``), configured as ``config``.

    ``timeout``: seconds to wait for an answer's last byte; ``retries``: attempts after the
    first. ``sent``, ``received``, ``retried`` count bytes and retried requests."""

    def __init__(self, port, *, config, timeout=2.0, retries=4):
        self._port = port
        self.config = config
        self.timeout = float(timeout)
        self.retries = int(retries)
        self._tag = 0
        self._pending = bytearray()
        self.sent = self.received = self.retried = 0

    # -- one request --------------------------------------------------------------------------
    def request(self, command, build):
        """Send ``build(tag)`` (a request frame) until a valid answer to it comes; return the
        answer's payload. Raises :class:`DriverError` as the module says."""
        self._tag = self._tag % 255 + 1
        tag = self._tag
        frame = build(tag)
        problem = None
        for attempt in range(self.retries + 1):
            if attempt:
                self.retried += 1
            self._port.reset_input_buffer()
            self._pending.clear()
            self._send(frame)
            answer, unreadable = self._answer(command, tag)
            if answer is None and unreadable is None:
                problem = f"no answer within {self.timeout:g} s"
                self._send(b"\x00")              # end whatever the device holds
                self._drain()
                continue
            if answer is None:
                problem = f"an unreadable answer ({unreadable})"
                continue
            if answer.error in _LINE_ERRORS:
                problem = f"the device read it as {answer.error.name}"
                continue
            if command == Command.START and attempt and answer.error == Error.BUSY:
                return b""                       # the first attempt started it
            if answer.error != Error.OK:
                raise DriverError(f"{command.name} refused: {answer.error.name}")
            return answer.payload
        raise DriverError(f"{command.name}: no valid answer after {self.retries + 1} attempts "
                          f"({problem})")

    def _send(self, data):
        self._port.write(data)
        self.sent += len(data)

    def _answer(self, command, tag):
        """``(answer, None)``; ``(None, why)`` for an unreadable answer frame; ``(None, None)``
        when the time is up. Frames answering anything but ``command``/``tag`` (e.g. a late
        answer to an earlier attempt) are skipped."""
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            chunk = self._port.read(max(1, self._port.in_waiting))
            self.received += len(chunk)
            self._pending += chunk
            while 0 in self._pending:
                end = self._pending.index(0) + 1
                raw = bytes(self._pending[:end])
                del self._pending[:end]
                if len(raw) == 1:
                    continue
                try:
                    answer = host.parse_answer(raw)
                except ValueError as exc:
                    return None, str(exc)
                if answer.command == 0 and answer.tag == 0 and answer.error in _LINE_ERRORS:
                    return answer, None          # a damaged request: not echoed
                if answer.command == command and answer.tag == tag:
                    return answer, None
        return None, None

    def _drain(self):
        """Drop what arrives within half a second (at most ``timeout``): the answer to a
        resynchronising 0x00."""
        deadline = time.monotonic() + min(self.timeout, 0.5)
        while time.monotonic() < deadline:
            self.received += len(self._port.read(max(1, self._port.in_waiting)))
        self._pending.clear()

    # -- the commands -------------------------------------------------------------------------
    def info(self):
        return host.parse_info(self.request(Command.INFO,
                                            lambda tag: host.info_request(tag=tag)))

    def check_config(self):
        """INFO against ``config``: ``DriverError`` naming both when the device differs."""
        info = self.info()
        if not info.matches(self.config):
            raise DriverError(f"the device is not configured as {self.config.name} (INFO: "
                              f"lanes {info.lanes}, word bits {info.word_bits}, format "
                              f"{info.format_version})")
        return info

    def write(self, memory, address, rows):
        """WRITE ``rows`` (ints or lane lists) from ``address``, in as many requests as needed."""
        step = host.max_words(self.config, memory)
        for k in range(0, len(rows), step):
            chunk = rows[k:k + step]
            self.request(Command.WRITE, lambda tag, a=address + k, c=chunk: host.write_request(
                memory, a, c, config=self.config, tag=tag))

    def read(self, memory, address, count):
        """READ ``count`` rows from ``address`` (several requests when needed)."""
        rows, step = [], host.max_words(self.config, memory)
        for k in range(0, count, step):
            n = min(step, count - k)
            payload = self.request(Command.READ, lambda tag, a=address + k, n=n:
                                   host.read_request(memory, a, n, config=self.config, tag=tag))
            rows += host.decode_words(self.config, memory, payload)
        return rows

    def start(self, first=0, stop=0):
        self.request(Command.START, lambda tag: host.start_request(first, stop, tag=tag))

    def status(self):
        return host.parse_status(self.request(Command.STATUS,
                                              lambda tag: host.status_request(tag=tag)))

    def cycles(self, layer):
        return host.parse_cycles(self.request(Command.CYCLES,
                                              lambda tag: host.cycles_request(layer, tag=tag)))

    def reset(self):
        self.request(Command.RESET, lambda tag: host.reset_request(tag=tag))

    def wait_done(self, *, timeout, poll=0.02):
        """STATUS until the program is done; its :class:`~spikeforge.contract.host.Status`.
        ``DriverError`` on a START error code or after ``timeout`` seconds. The polls start at
        once and back off (1 ms, doubling, at most ``poll`` seconds apart): an inference on a
        board takes a few milliseconds, a layer less."""
        deadline = time.monotonic() + timeout
        pause = 0.0
        while True:
            status = self.status()
            if status.error != Error.OK:
                raise DriverError(f"the program stopped at descriptor {status.layer}: "
                                  f"{status.error.name}")
            if status.done and not status.busy:
                return status
            if time.monotonic() > deadline:
                raise DriverError(f"the program did not finish within {timeout:g} s (at "
                                  f"descriptor {status.layer}, {status.cycles} cycles)")
            time.sleep(pause)
            pause = min(poll, max(0.001, 2 * pause))


@dataclass
class SampleResult:
    """One sample run: ``scores`` (the READOUT's output), ``cycles`` (start to done of the
    whole program), ``layer_cycles`` (per layer, in that run), ``outputs`` (per layer its
    output words, when asked)."""
    scores: np.ndarray
    cycles: int
    layer_cycles: list
    outputs: list = field(default_factory=list)


class Session:
    """A compiled model (``compiled``: ``config``, ``images``, ``layers``) on ``device``."""

    def __init__(self, device, compiled, *, run_timeout=60.0):
        from spikeforge.golden.accelerator import Accelerator
        self.device, self.compiled = device, compiled
        self.config = compiled.config
        self.run_timeout = run_timeout
        self._program = Accelerator(self.config, compiled.images)

    def load(self):
        """RESET, INFO checked against the configuration, every image written."""
        self.device.reset()
        self.device.check_config()
        for name in IMAGE_MEMORIES:
            memory = Memory[name.upper()]
            rows = image_rows(self.config, memory, self.compiled.images[name])
            if rows:
                self.device.write(memory, 0, rows)

    def run(self, pixels, *, outputs=False):
        """Run each sample of ``pixels`` (int ``(B, C, H, W)``); a :class:`SampleResult` each.
        ``outputs``: first run every layer alone (START ``i``, ``i + 1``) and read its output
        words right after it (:func:`~spikeforge.golden.accelerator.output_addresses`; later
        layers may reuse its buffer), then the whole program."""
        from spikeforge.golden.accelerator import input_words, output_addresses
        addresses, words = input_words(self.config, self.compiled.images, pixels)
        layers = self._program.layers
        results = []
        for sample in words:
            read = []
            if outputs:
                self._write_input(addresses, sample)
                read = [self.run_layer(i) for i in range(1, len(layers) + 1)]
            self._write_input(addresses, sample)
            self.device.start(0, 0)
            status = self.device.wait_done(timeout=self.run_timeout)
            layer_cycles = [self.device.cycles(i) for i in range(1, len(layers) + 1)]
            last = layers[-1]
            scores = self._read(output_addresses(last, self.config))
            scores = np.asarray(scores).reshape(-1)[:last["out_channels"]]
            results.append(SampleResult(scores, status.cycles, layer_cycles, read))
        return results

    def run_layer(self, index):
        """Run descriptor ``index`` (1 .. layers) alone on what the memories hold (START
        ``index``, ``index + 1``) and return its output words (ascending addresses)."""
        from spikeforge.golden.accelerator import output_addresses
        self.device.start(index, index + 1)
        self.device.wait_done(timeout=self.run_timeout)
        return self._read(output_addresses(self._program.program[index], self.config))

    def _write_input(self, addresses, words):
        for start, stop in spans(addresses):
            self.device.write(Memory.SPIKES, int(addresses[start]),
                              [int(w) for w in words[start:stop]])

    def _read(self, where):
        memory, addresses = where
        lo, hi = int(addresses[0]), int(addresses[-1])
        rows = np.asarray(self.device.read(memory, lo, hi - lo + 1))
        return rows[addresses - lo]


def image_rows(config, memory, array):
    """An image's rows as :func:`~spikeforge.contract.host.write_request` takes them."""
    array = np.asarray(array, dtype=np.int64)
    if Memory(memory) in (Memory.PROGRAM, Memory.SPIKES):
        return [int(v) for v in array.reshape(-1)]
    return array.reshape(-1, config.lanes).tolist()


def spans(addresses):
    """``(start, stop)`` index ranges of the contiguous runs of ``addresses``."""
    start = 0
    for k in range(1, len(addresses) + 1):
        if k == len(addresses) or addresses[k] != addresses[k - 1] + 1:
            yield start, k
            start = k
