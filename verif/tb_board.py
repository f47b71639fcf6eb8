"""cocotb testbench of :class:`spikeforge.hdl.board.AcceleratorLink`: the accelerator behind its
UART pins, driven bit by bit on ``rx`` and read bit by bit from ``tx`` (8N1, ``divisor``
cycles per bit, sampled at the bit centres).

Check mode (no ``serve`` stimulus)
    Over the line: INFO equals the configuration; STATUS after reset is idle; random rows
    written to the spikes and weights memories read back equal; a WRITE with a bad CRC is
    answered BAD_CHECKSUM and changes nothing; a request cut short by a lost delimiter is
    answered (BAD_FRAME or BAD_CHECKSUM) only once the host sends ``0x00``, and the next
    request works;
    ``line_error`` stays low.
Serve mode (stimulus ``serve``: a file name)
    The testbench listens on a TCP port of 127.0.0.1, writes the port number into that file and
    bridges one connection to the pins: bytes from the socket go out on ``rx`` as they come,
    bytes decoded from ``tx`` go back. It ends when the peer closes the connection (or after
    :data:`IDLE_SECONDS` without one). This is ``spikeforge run --backend uart --port sim``:
    the host driver sees exactly the bytes a board's serial port would carry.
"""

import os
import socket
import time

import cocotb
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly, RisingEdge

from spikeforge.contract import host
from spikeforge.contract.configs import get_config
from spikeforge.contract.program import Command, Error, Memory
from spikeforge.verif.host_link import random_rows, with_bad_crc
from spikeforge.verif.tb import Scoreboard, Testbench, params, stimulus

__all__ = ["IDLE_SECONDS"]

#: Serve mode ends after this long without a connection or a byte either way.
IDLE_SECONDS = 600


class Line:
    """The host's side of the serial pins: :meth:`send` drives ``rx`` (one coroutine at a
    time), a background coroutine decodes ``tx`` into :attr:`received` (and ``on_byte``)."""

    def __init__(self, dut, clk, divisor, on_byte=None):
        self._dut, self._clk, self._divisor = dut, clk, divisor
        self.received = bytearray()
        self.framing_errors = 0
        self.count = 0                       # bytes decoded
        self.on_byte = on_byte
        dut.rx.value = 1
        cocotb.start_soon(self._decode())

    async def send(self, data):
        for byte in bytes(data):
            for bit in (0, *((byte >> i) & 1 for i in range(8)), 1):
                self._dut.rx.value = bit
                await ClockCycles(self._clk, self._divisor)

    async def _decode(self):
        d = self._divisor
        while True:
            await FallingEdge(self._dut.tx)
            await ClockCycles(self._clk, d // 2)
            await ReadOnly()
            bits = [int(self._dut.tx.value)]
            for _ in range(9):
                await ClockCycles(self._clk, d)
                await ReadOnly()
                bits.append(int(self._dut.tx.value))
            if bits[0] or not bits[9]:
                self.framing_errors += 1
                self._dut._log.error("bad frame on tx: %s", bits)
                continue
            byte = sum(bit << i for i, bit in enumerate(bits[1:9]))
            self.count += 1
            if self.on_byte:
                self.on_byte(byte)
            else:
                self.received.append(byte)

    async def answer(self, timeout_cycles):
        """The next answer frame (up to its ``0x00``), removed from :attr:`received`."""
        for _ in range(timeout_cycles // self._divisor):
            if 0 in self.received:
                end = self.received.index(0) + 1
                frame = bytes(self.received[:end])
                del self.received[:end]
                return frame
            await ClockCycles(self._clk, self._divisor)
        raise AssertionError(f"no answer within {timeout_cycles} cycles")


@cocotb.test()
async def board_link(dut):
    p, s = params(), stimulus()
    config = get_config(p["config"])
    tb = Testbench(dut)
    dut.rx.value = 1                 # the idle line before and through reset
    await tb.reset()
    line = Line(dut, tb.clk, p["divisor"])
    if s.get("serve"):
        await _serve(dut, tb, line, s["serve"])
    else:
        await _check(dut, tb, line, config, p["divisor"])


async def _check(dut, tb, line, config, divisor):
    board = Scoreboard(dut._log, "answer")
    timeout = 40 * divisor * (host.MAX_PACKET + 16)

    async def ask(frame):
        await line.send(frame)
        return host.parse_answer(await line.answer(timeout))

    info = await ask(host.info_request(tag=1))
    board.expect((Command.INFO, 1, Error.OK, host.parse_info(host.info_payload(config))))
    board.check((info.command, info.tag, info.error, host.parse_info(info.payload)))
    status = await ask(host.status_request(tag=2))
    state = host.parse_status(status.payload)
    board.expect((Error.OK, False, False, Error.OK))
    board.check((status.error, state.busy, state.done, state.error))

    for k, memory in enumerate((Memory.SPIKES, Memory.WEIGHTS)):
        spec = config.memories()[memory.name.lower()]
        rows = random_rows(tb.rng, config, memory, 6)
        address = tb.rng.randrange(spec.depth - len(rows))
        written = await ask(host.write_request(memory, address, rows, config=config, tag=3 + k))
        board.expect((Command.WRITE, Error.OK))
        board.check((written.command, written.error))
        # the same WRITE of other rows with its CRC broken: refused, memory unchanged
        refused = await ask(with_bad_crc(host.write_request(
            memory, address, random_rows(tb.rng, config, memory, 6), config=config, tag=9)))
        board.expect(Error.BAD_CHECKSUM)
        board.check(refused.error)
        read = await ask(host.read_request(memory, address, len(rows), config=config, tag=5 + k))
        board.expect((Error.OK, rows))
        board.check((read.error, host.decode_words(config, memory, read.payload)))

    # a request cut short (its last bytes and the delimiter lost): no answer until the host's
    # resynchronising 0x00, which ends it as a bad frame
    await line.send(host.status_request(tag=7)[:-3])
    await ClockCycles(tb.clk, 20 * divisor)
    board.expect(0)
    board.check(len(line.received))
    await line.send(b"\x00")
    lost = host.parse_answer(await line.answer(timeout))
    board.expect(True)
    board.check(lost.error in (Error.BAD_FRAME, Error.BAD_CHECKSUM))
    again = await ask(host.status_request(tag=8))
    board.expect((Command.STATUS, 8, Error.OK))
    board.check((again.command, again.tag, again.error))

    board.expect((0, 0))
    board.check((int(dut.line_error.value), line.framing_errors))
    tb.report(board)


async def _serve(dut, tb, line, port_file):
    """Bridge one TCP connection to the pins until the peer closes it."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(IDLE_SECONDS)
    tmp = f"{port_file}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(str(server.getsockname()[1]))
    os.replace(tmp, port_file)
    try:
        conn, _ = server.accept()
    finally:
        server.close()
    conn.setblocking(False)
    sent = 0
    line.on_byte = lambda byte: conn.sendall(bytes([byte]))
    poll = 20 * line._divisor
    last = time.monotonic()
    try:
        while True:
            try:
                data = conn.recv(4096)
            except BlockingIOError:
                data = None
            if data == b"":                      # the peer closed the connection
                break
            if data:
                await line.send(data)
                sent += len(data)
                last = time.monotonic()
            else:
                if time.monotonic() - last > IDLE_SECONDS:
                    dut._log.error("serve: nothing from the host for %d s", IDLE_SECONDS)
                    break
                await ClockCycles(tb.clk, poll)
        await ClockCycles(tb.clk, 12 * line._divisor)
    finally:
        conn.close()
    await RisingEdge(tb.clk)
    errors = int(dut.line_error.value) + line.framing_errors
    bridged = Scoreboard(dut._log, "line errors")
    bridged.expect(0)
    bridged.check(errors)
    bridged.checked += sent + line.count
    tb.report(bridged)
