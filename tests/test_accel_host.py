"""The accelerator's host port (spikeforge.hdl.accelerator.host.HostPort) in Amaranth's Python
simulator, with real memories behind its ports (read latency 2), a fake sequencer on
``control`` and random stalls on both byte streams; every request's answer is checked against
the protocol (spikeforge.contract.host: ``check_request`` for the error, a Python model of the
memories for the data) and the memories are compared with the model after every session, so a
failing command that changed anything fails."""

import dataclasses
import random
import shutil
import subprocess
from collections import deque

import pytest
from amaranth.hdl import Cat, Elaboratable, Module, Signal, Value
from amaranth.sim import Simulator

from spikeforge.contract import host as protocol
from spikeforge.contract.configs import get_config
from spikeforge.contract.program import Command, Error, Memory, memory_map
from spikeforge.contract.sizes import signed_range
from spikeforge.hdl.accelerator.host import BUFFER_BYTES, HostPort, control_signature
from spikeforge.hdl.accelerator.ports import row_shape
from spikeforge.verif.accel_harness import ReadableMemory
from spikeforge.verif.runner import ICARUS_ARGS
from spikeforge.verif.sim_streams import fork_rng, run_bounded

CONFIG = get_config("sim-small")


def _cycles_of(layer):
    """The fake sequencer's cycle counter of descriptor ``layer``."""
    return (layer ^ 0x1234) | ((layer + 7) & 0xFFFF) << 16


class _Bench(Elaboratable):
    """The host port, its memories and a fake sequencer: counts the start and reset pulses,
    keeps the last START's range, answers each start ``check_delay`` cycles later with
    ``check_code`` (both set by the testbench), and gives the cycle counter
    :func:`_cycles_of` of ``cycles_layer`` two cycles later."""

    def __init__(self, config):
        self.config = config
        self.host = HostPort(config)
        self.memories = {memory: ReadableMemory(row_shape(config, memory),
                                         memory_map(config)[memory.name.lower()].depth)
                         for memory in Memory}
        self.starts = Signal(8)
        self.resets = Signal(8)
        self.first = Signal(16)
        self.stop = Signal(16)
        self.check_delay = Signal(8)
        self.check_code = Signal(4)

    def elaborate(self, platform):
        m = Module()
        m.submodules.host = host = self.host
        for memory, mem in self.memories.items():
            mem.port = getattr(host, memory.name.lower())
            m.submodules[memory.name.lower()] = mem
        ctl = host.control
        first = Signal(32)
        layer = ctl.cycles_layer
        m.d.sync += [first.eq(Cat(layer ^ 0x1234, layer + 7)), ctl.cycles_value.eq(first)]
        with m.If(ctl.reset):
            m.d.sync += self.resets.eq(self.resets + 1)
        waiting = Signal()
        left = Signal(8)
        m.d.sync += [ctl.check_done.eq(0), ctl.check_error.eq(0)]
        with m.If(ctl.start):
            m.d.sync += [self.starts.eq(self.starts + 1), self.first.eq(ctl.first),
                         self.stop.eq(ctl.stop), waiting.eq(1), left.eq(self.check_delay)]
        with m.Elif(waiting):
            with m.If(left == 0):
                m.d.sync += [waiting.eq(0), ctl.check_done.eq(1),
                             ctl.check_error.eq(self.check_code)]
            with m.Else():
                m.d.sync += left.eq(left - 1)
        return m


class Session:
    """One simulation of a :class:`_Bench`: a sender and a receiver testbench with random
    idle / stall cycles, a fake sequencer, and :meth:`transact` for the script."""

    def __init__(self, config=CONFIG, *, seed=0, idle=0.3, stall=0.3):
        self.config = config
        self.bench = _Bench(config)
        self.dut = self.bench.host
        self.rng = random.Random(seed)
        self.idle, self.stall = idle, stall
        self.splitter = protocol.FrameSplitter()
        self.answers = deque()
        self.model = {memory: [self._zero(memory)] * memory_map(config)[memory.name.lower()].depth
                      for memory in Memory}
        self.busy = False
        self.watched = {memory: set() for memory in Memory}    # rows check_memories compares
        self.out_stamps = []            # cycle of every byte out
        self.sent_at = 0                # cycle the last request's last byte was taken
        self.ready_low_in_frame = 0     # cycles i.ready was low while a frame was being sent
        self.cycle = 0

    def _zero(self, memory):
        return 0 if memory in (Memory.PROGRAM, Memory.SPIKES) else [0] * self.config.lanes

    async def _send(self, ctx, frame):
        port = self.dut.i
        for k, byte in enumerate(frame):
            while self.rng_in.random() < self.idle:
                await ctx.tick()
            ctx.set(port.valid, 1)
            ctx.set(port.payload, byte)
            while True:
                _, _, ready = await ctx.tick().sample(port.ready)
                if ready:
                    break
                if k:
                    self.ready_low_in_frame += 1
            ctx.set(port.valid, 0)
        self.sent_at = self.cycle

    async def _receiver(self, ctx):
        port = self.dut.o
        while True:
            self.cycle += 1
            if self.rng_out.random() < self.stall:
                ctx.set(port.ready, 0)
                await ctx.tick()
                continue
            ctx.set(port.ready, 1)
            _, _, valid, payload = await ctx.tick().sample(port.valid, port.payload)
            if valid:
                self.out_stamps.append(self.cycle)
                self.answers.extend(self.splitter.feed(bytes([payload])))

    def set_busy(self, ctx, busy):
        self.busy = bool(busy)
        ctx.set(self.dut.control.busy, self.busy)

    def starts(self, ctx):
        return ctx.get(self.bench.starts)

    def resets(self, ctx):
        return ctx.get(self.bench.resets)

    async def transact(self, ctx, frame, *, answered=True):
        """Send ``frame``; return the answer frame (``None`` with ``answered=False``, after
        waiting long enough to see there is none)."""
        await self._send(ctx, frame)
        if not answered:
            for _ in range(8 * len(frame) + 50):
                await ctx.tick()
            assert not self.answers, "a frame that must be ignored was answered"
            return None
        while not self.answers:
            await ctx.tick()
        answer = self.answers.popleft()
        return answer

    async def request(self, ctx, frame, *, busy=None):
        """Send ``frame``, check its answer's command, tag and error against
        ``check_request``, update the memory model for a WRITE that passed, check a READ's
        words; returns the :class:`~spikeforge.contract.host.Answer`."""
        expected = protocol.check_request(self.config, frame, busy=self.busy)
        self.watch(frame)
        answer = protocol.parse_answer(await self.transact(ctx, frame))
        command, tag, error = expected
        assert (answer.command, answer.tag) == (command, tag), (answer, expected)
        if command == Command.START and error == Error.OK:
            return answer               # the sequencer's check answers
        assert answer.error == error, (answer, expected)
        if error != Error.OK:
            return answer
        body = protocol.decode_frame(frame)
        if command in (Command.WRITE, Command.READ):
            memory = Memory(body[2])
            address = int.from_bytes(body[3:7], "little")
            count = int.from_bytes(body[7:9], "little")
            if command == Command.WRITE:
                rows = protocol.decode_words(self.config, memory, body[9:])
                self.model[memory][address:address + count] = rows
                assert answer.payload == b""
            else:
                assert protocol.decode_words(self.config, memory, answer.payload) == (
                    self.model[memory][address:address + count]), (memory, address, count)
        return answer

    def watch(self, frame):
        """Add the rows a request names (or would name, its address and count wrapped at every
        memory's depth, whatever its memory id) to the rows :meth:`check_memories` compares,
        with the first and last 4 rows of every memory."""
        try:
            body = protocol.decode_frame(frame)
        except ValueError:
            return
        if len(body) < 9:
            return
        address = int.from_bytes(body[3:7], "little")
        count = int.from_bytes(body[7:9], "little")
        for memory in Memory:
            depth = len(self.model[memory])
            rows = self.watched[memory]
            rows.update((address + k) % depth for k in range(min(count + 1, depth)))
            rows.update(range(min(4, depth)))
            rows.update(range(max(0, depth - 4), depth))

    def check_memories(self, ctx):
        """Every watched row of every memory equals the model (reading all the rows takes the
        simulator seconds)."""
        for memory, mem in self.bench.memories.items():
            size = protocol.word_bytes(self.config, memory)
            for address in sorted(self.watched[memory]):
                expected = self.model[memory][address]
                word = ctx.get(Value.cast(mem.storage.data[address]))
                got = protocol.decode_words(self.config, memory, word.to_bytes(size, "little"))
                assert got == [expected], (memory.name, address, got, expected)

    def run(self, script, *, max_cycles=400_000):
        self.rng_in, self.rng_out, self.rng_script = fork_rng(self.rng, 3)
        sim = Simulator(self.bench)
        sim.add_clock(1e-8)
        sim.add_testbench(self._receiver, background=True)

        async def main(ctx):
            await script(ctx, self)
            assert not self.answers, "answers nobody asked for"
            self.check_memories(ctx)

        sim.add_testbench(main)
        return run_bounded(sim, max_cycles=max_cycles)


def _random_rows(config, memory, count, rng):
    spec = memory_map(config)[memory.name.lower()]
    if memory in (Memory.PROGRAM, Memory.SPIKES):
        top = (1 << spec.element_bits) - 1
        special = [top, 0, 1 << (spec.element_bits - 1), 1]
        return [special[k] if k < len(special) and rng.random() < 0.5 else rng.randrange(top + 1)
                for k in range(count)]
    lo, hi = signed_range(spec.element_bits)
    rows = []
    for _ in range(count):
        rows.append([rng.choice([lo, hi, -1, 0, rng.randint(lo, hi), rng.randint(lo, hi)])
                     for _ in range(spec.lanes)])
    return rows


def test_signature():
    dut = HostPort(CONFIG)
    members = dut.signature.members
    for memory in Memory:
        assert memory.name.lower() in members
    assert members["control"].signature == control_signature()
    assert set(control_signature().members) == {
        "start", "first", "stop", "check_done", "check_error", "reset", "busy", "done",
        "error", "layer", "cycles", "cycles_layer", "cycles_value"}
    assert BUFFER_BYTES >= protocol.MAX_PACKET
    wide = dataclasses.replace(CONFIG, lanes=64, word_bits=64, membrane_bits=200)
    with pytest.raises(ValueError, match="membranes word of 1600 bytes exceeds MAX_DATA"):
        HostPort(wide)


def test_write_read_every_memory():
    """WRITE random rows (lane extremes included) to every memory, at its start, its end and a
    random place, with 1, a few and the most words a packet takes, then READ them back in
    other slices."""
    session = Session(seed=1)

    async def script(ctx, s):
        rng = s.rng_script
        for memory in Memory:
            depth = memory_map(s.config)[memory.name.lower()].depth
            most = min(protocol.max_words(s.config, memory), depth)
            middle = rng.randrange(1, depth - 4)
            for address, count in ((depth - most, most), (0, 1), (middle, 3)):
                rows = _random_rows(s.config, memory, count, rng)
                await s.request(ctx, protocol.write_request(memory, address, rows,
                                                            config=s.config,
                                                            tag=rng.randrange(256)))
            for address, count in ((depth - most, most), (0, 2), (middle - 1, 5)):
                await s.request(ctx, protocol.read_request(memory, address, count,
                                                           config=s.config,
                                                           tag=rng.randrange(256)))

    session.run(script)


def test_errors_change_nothing():
    """Every error the port produces, each from a request that would otherwise write, read or
    start: the answer carries the error, no memory changes, nothing is started or reset."""
    session = Session(seed=2)
    config = CONFIG

    def head(memory, address, count):
        return bytes([memory]) + address.to_bytes(4, "little") + count.to_bytes(2, "little")

    def raw(body):
        return protocol.cobs_encode(body) + b"\x00"

    async def script(ctx, s):
        rng = s.rng_script
        # Some contents the failing writes would overwrite.
        for memory in (Memory.BIASES, Memory.SCORES, Memory.WEIGHTS):
            rows = _random_rows(config, memory, 4, rng)
            await s.request(ctx, protocol.write_request(memory, 0, rows, config=config))
        rows = _random_rows(config, Memory.BIASES, 4, rng)
        good = protocol.write_request(Memory.BIASES, 0, rows, config=config, tag=0x33)
        packet = protocol.cobs_decode(good[:-1])
        body = packet[:-2]
        data = protocol.encode_words(config, Memory.BIASES, rows)

        def broken_crc():
            bad = bytearray(packet)
            bad[-1] ^= 0x5A
            return raw(bytes(bad))

        cases = [
            # BAD_CHECKSUM: a changed byte of the body, and of the CRC.
            (raw(body[:-1] + bytes([body[-1] ^ 1]) + packet[-2:]), Error.BAD_CHECKSUM),
            (broken_crc(), Error.BAD_CHECKSUM),
            # BAD_FRAME: the last COBS group cut short, packets shorter than 4 bytes.
            (good[:-3] + b"\x00", Error.BAD_FRAME),
            (b"\x05\x01\x02\x00", Error.BAD_FRAME),
            (raw(b"\x01"), Error.BAD_FRAME),
            (raw(b"\x04\x01\x02"), Error.BAD_FRAME),
            # A packet truncated before its CRC: the CRC fails.
            (raw(packet[:len(packet) // 2]), Error.BAD_CHECKSUM),
            # UNKNOWN_COMMAND (echoing the command and the tag).
            (protocol.request(0, body[2:], tag=1), Error.UNKNOWN_COMMAND),
            (protocol.request(0x58, body[2:], tag=2), Error.UNKNOWN_COMMAND),
            (protocol.request(Command.WRITE | 0x80, body[2:], tag=3), Error.UNKNOWN_COMMAND),
            # BAD_MEMORY.
            (protocol.request(Command.WRITE, head(8, 0, 4) + data), Error.BAD_MEMORY),
            (protocol.request(Command.READ, head(0xFF, 0, 1)), Error.BAD_MEMORY),
            # ADDRESS_RANGE.
            (protocol.request(Command.WRITE, head(Memory.BIASES, 125, 4) + data),
             Error.ADDRESS_RANGE),
            (protocol.request(Command.WRITE, head(Memory.BIASES, 0xFFFFFFFF, 4) + data),
             Error.ADDRESS_RANGE),
            (protocol.request(Command.WRITE, head(Memory.BIASES, 1 << 16, 4) + data),
             Error.ADDRESS_RANGE),
            (protocol.request(Command.READ, head(Memory.SCORES, 6, 3)), Error.ADDRESS_RANGE),
            # BAD_LENGTH: words short, long, count 0, count past a packet, header short,
            # a packet past MAX_PACKET, fixed-length commands with a byte more or less.
            (protocol.request(Command.WRITE, head(Memory.BIASES, 0, 4) + data[:-1]),
             Error.BAD_LENGTH),
            (protocol.request(Command.WRITE, head(Memory.BIASES, 0, 4) + data + b"\x07"),
             Error.BAD_LENGTH),
            (protocol.request(Command.WRITE, head(Memory.BIASES, 0, 0) + data), Error.BAD_LENGTH),
            (protocol.request(Command.WRITE, head(Memory.BIASES, 0, 43) + bytes(43 * 24)),
             Error.BAD_LENGTH),
            (protocol.request(Command.WRITE, head(Memory.WEIGHTS, 0, 1)[:6]), Error.BAD_LENGTH),
            (protocol.request(Command.WRITE, head(Memory.WEIGHTS, 0, 129)
                              + bytes(range(1, 256)) * 5), Error.BAD_LENGTH),
            (protocol.request(Command.READ, head(Memory.SCORES, 0, 0)), Error.BAD_LENGTH),
            (protocol.request(Command.READ, head(Memory.VALUES, 0, 43)), Error.BAD_LENGTH),
            (protocol.request(Command.READ, head(Memory.SCORES, 0, 1) + b"\x00"),
             Error.BAD_LENGTH),
            (protocol.request(Command.START, b"\x00\x00\x00"), Error.BAD_LENGTH),
            (protocol.request(Command.RESET, b"\x00"), Error.BAD_LENGTH),
            (protocol.request(Command.STATUS, b"\x01"), Error.BAD_LENGTH),
            (protocol.request(Command.CYCLES, b"\x01"), Error.BAD_LENGTH),
            (protocol.request(Command.INFO, b"\x00\x00"), Error.BAD_LENGTH),
        ]
        rng.shuffle(cases)
        for frame, error in cases:
            assert protocol.check_request(config, frame)[2] == error, frame
            answer = await s.request(ctx, frame)
            assert answer.error == error
            if error in (Error.BAD_FRAME, Error.BAD_CHECKSUM):
                assert (answer.command, answer.tag) == (0, 0)
        # An empty frame is ignored, and the port still answers afterwards.
        await s.transact(ctx, b"\x00", answered=False)
        # BUSY: WRITE, READ and START while the program runs; STATUS and RESET still answered.
        s.set_busy(ctx, True)
        for _ in range(3):
            await ctx.tick()
        for frame in (good, protocol.read_request(Memory.BIASES, 0, 1, config=config),
                      protocol.start_request()):
            assert (await s.request(ctx, frame)).error == Error.BUSY
        assert protocol.parse_status((await s.request(ctx, protocol.status_request())).payload)
        assert s.starts(ctx) == 0 and s.resets(ctx) == 0
        await s.request(ctx, protocol.reset_request())
        assert s.resets(ctx) == 1
        s.set_busy(ctx, False)
        for _ in range(3):
            await ctx.tick()
        # After all that the good request still works.
        await s.request(ctx, good)
        for memory in (Memory.BIASES, Memory.SCORES, Memory.WEIGHTS):
            await s.request(ctx, protocol.read_request(memory, 0, 4, config=config))

    session.run(script)


def test_control_commands():
    """STATUS, CYCLES, INFO, RESET and START (its range to the sequencer, the sequencer's
    check error answered after a random delay)."""
    session = Session(seed=3)

    async def script(ctx, s):
        rng = s.rng_script
        ctl = s.dut.control
        for _ in range(6):
            status = protocol.Status(busy=rng.random() < 0.5, done=rng.random() < 0.5,
                                     error=rng.choice(list(Error)), layer=rng.randrange(1 << 16),
                                     cycles=rng.randrange(1 << 32))
            s.set_busy(ctx, status.busy)
            ctx.set(ctl.done, status.done)
            ctx.set(ctl.error, status.error)
            ctx.set(ctl.layer, status.layer)
            ctx.set(ctl.cycles, status.cycles)
            await ctx.tick()
            await ctx.tick()
            answer = await s.request(ctx, protocol.status_request(tag=rng.randrange(256)))
            assert protocol.parse_status(answer.payload) == status
        s.set_busy(ctx, False)
        for layer in (0, 1, 0xFFFF, rng.randrange(1 << 16), rng.randrange(1 << 16)):
            answer = await s.request(ctx, protocol.cycles_request(layer, tag=layer & 0xFF))
            assert protocol.parse_cycles(answer.payload) == _cycles_of(layer)
        answer = await s.request(ctx, protocol.info_request(tag=9))
        assert protocol.parse_info(answer.payload).matches(s.config)
        assert answer.payload == protocol.info_payload(s.config)
        for k in range(3):
            answer = await s.request(ctx, protocol.reset_request(tag=k))
            assert answer.ok and answer.payload == b""
            assert s.resets(ctx) == k + 1
        for first, stop, error, delay in ((0, 0, Error.OK, 0), (3, 9, Error.NO_END, 5),
                                          (0xFFFF, 0x8001, Error.CAPACITY, 1),
                                          (1, 2, Error.OK, 17)):
            ctx.set(s.bench.check_code, error)
            ctx.set(s.bench.check_delay, delay)
            answer = await s.request(ctx, protocol.start_request(first, stop, tag=first & 0xFF))
            assert answer.command == Command.START and answer.error == error
            assert answer.payload == b""
            assert (ctx.get(s.bench.first), ctx.get(s.bench.stop)) == (first, stop)
        assert s.starts(ctx) == 4 and s.resets(ctx) == 3

    session.run(script)


def test_full_rate_and_ulx3s():
    """Without stalls the port takes a request at one byte per cycle and sends a long answer at
    one byte per cycle (after up to a COBS group of look-ahead); on ulx3s-85f (64-byte membrane
    words) WRITE / READ / INFO agree."""
    config = get_config("ulx3s-85f")
    session = Session(config, seed=4, idle=0.0, stall=0.0)

    async def script(ctx, s):
        rng = s.rng_script
        for memory in (Memory.MEMBRANES, Memory.WEIGHTS, Memory.SPIKES):
            most = protocol.max_words(config, memory)
            rows = _random_rows(config, memory, most, rng)
            await s.request(ctx, protocol.write_request(memory, 100, rows, config=config))
            s.out_stamps.clear()
            await s.request(ctx, protocol.read_request(memory, 100, most, config=config))
            # The answer's last byte leaves at most a COBS group (254 bytes of look-ahead)
            # and ~40 cycles of checks and pipeline later than one byte per cycle from the
            # request's end.
            size = len(s.out_stamps)
            assert size >= protocol.MAX_DATA
            assert s.out_stamps[-1] - s.sent_at <= size + 254 + 40, (
                memory.name, s.out_stamps[-1] - s.sent_at, size)
        answer = await s.request(ctx, protocol.info_request())
        assert protocol.parse_info(answer.payload).matches(config)
        assert s.ready_low_in_frame == 0

    session.run(script)


def test_cobs_long_runs():
    """Runs of 253, 254, 255, 508 and 509 non-zero bytes at the end of an answer (CRC
    included) and in the WRITE requests: the 0xFF groups of COBS, with and without a group
    after them, both ways."""
    session = Session(seed=5, idle=0.1, stall=0.1)
    memory = Memory.SPIKES

    async def script(ctx, s):
        rng = s.rng_script
        for run in (253, 254, 255, 508, 509):
            count = -(-(run - 1) // 2)              # words: 2 * count >= run - 1
            zero_at = 2 * count + 1 - run           # the last zero of the answer's data
            tag = rng.randrange(1, 256)
            while True:
                data = bytearray(rng.randrange(1, 256) for _ in range(2 * count))
                data[zero_at] = 0
                packet = bytes([0x80 | Command.READ, tag, 0]) + bytes(data)
                packet += protocol.crc16(packet).to_bytes(2, "big")
                if 0 not in packet[-2:]:
                    break
            assert len(packet) - 1 - packet.rindex(0) == run
            rows = protocol.decode_words(s.config, memory, bytes(data))
            await s.request(ctx, protocol.write_request(memory, 7, rows, config=s.config))
            frame = await s.transact(ctx, protocol.read_request(memory, 7, count,
                                                                config=s.config, tag=tag))
            assert frame == protocol.cobs_encode(packet) + b"\x00"
            assert protocol.parse_answer(frame).payload == bytes(data)

    session.run(script)


_ICARUS_TB = """`timescale 1ns/1ps
module tb;
  reg clk = 0, rst = 1;
  always #5 clk = ~clk;
  reg [7:0] i_payload = 0;
  reg i_valid = 0;
  wire i_ready;
  wire [7:0] o_payload;
  wire o_valid;
  reg o_ready = 0;
  reg [7:0] frames [0:{last}];
  integer k = 0, cycle = 0;
  hostport dut(.clk(clk), .rst(rst),
    .i__payload(i_payload), .i__valid(i_valid), .i__ready(i_ready),
    .o__payload(o_payload), .o__valid(o_valid), .o__ready(o_ready),
    .control__busy(1'b0), .control__done(1'b1), .control__error(4'd0),
    .control__layer(16'h{layer:04x}), .control__cycles(32'h{cycles:08x}),
    .control__check_done(1'b0), .control__check_error(4'd0), .control__cycles_value(32'd0),
    {ports});
  initial begin
{init}
    repeat (3) @(posedge clk);
    rst <= 0;
    while (k <= {last}) begin
      i_valid <= 1;
      i_payload <= frames[k];
      @(posedge clk);
      if (i_ready) k = k + 1;
    end
    i_valid <= 0;
    repeat (2000) @(posedge clk);
    $finish;
  end
  initial begin
    #{timeout};
    $display("timeout");
    $finish;
  end
  always @(posedge clk) begin
    cycle <= cycle + 1;
    o_ready <= (cycle % 3) != 0;
    if (o_valid && o_ready) $display("byte %02x", o_payload);
  end
endmodule
"""


@pytest.mark.skipif(shutil.which("iverilog") is None, reason="needs Icarus Verilog")
def test_icarus_answers(tmp_path):
    """The Verilog of the port on Icarus, compiled with the runner's flags
    (:data:`~spikeforge.verif.runner.ICARUS_ARGS`: under ``-g2012`` a combinational block
    stays X until an input changes and the first answer never leaves): INFO, STATUS, a READ
    (every memory's r_data a constant) and a bad frame, sent back to back through i.ready,
    answered byte for byte, with stalls on o."""
    from amaranth.back import verilog

    dut = HostPort(CONFIG)
    layer, cycles = 0x1234, 0xDEADBEEF
    constants = {memory: (0xA5 << (protocol.row_bits(CONFIG, memory) - 8)) | 0x81
                 for memory in Memory}
    ports = ", ".join(
        f".{memory.name.lower()}__r_data({protocol.row_bits(CONFIG, memory)}'h"
        f"{constants[memory]:x})" for memory in Memory)
    requests = [protocol.info_request(tag=1), protocol.status_request(tag=2),
                protocol.read_request(Memory.WEIGHTS, 5, 3, config=CONFIG, tag=3),
                protocol.read_request(Memory.PROGRAM, 0, 2, config=CONFIG, tag=4),
                b"\x05\x01\x02\x00", protocol.status_request(tag=6)]
    status = protocol.Status(busy=False, done=True, error=Error.OK, layer=layer, cycles=cycles)

    def words(memory, count):
        row = protocol.decode_words(CONFIG, memory, constants[memory].to_bytes(
            protocol.word_bytes(CONFIG, memory), "little"))
        return protocol.encode_words(CONFIG, memory, row * count)

    expected = [protocol.answer_frame(Command.INFO, 1, Error.OK, protocol.info_payload(CONFIG)),
                protocol.answer_frame(Command.STATUS, 2, Error.OK,
                                      protocol.status_payload(status)),
                protocol.answer_frame(Command.READ, 3, Error.OK, words(Memory.WEIGHTS, 3)),
                protocol.answer_frame(Command.READ, 4, Error.OK, words(Memory.PROGRAM, 2)),
                protocol.answer_frame(0, 0, Error.BAD_FRAME),
                protocol.answer_frame(Command.STATUS, 6, Error.OK,
                                      protocol.status_payload(status))]
    stream = b"".join(requests)
    init = "\n".join(f"    frames[{k}] = 8'h{byte:02x};" for k, byte in enumerate(stream))
    (tmp_path / "hostport.v").write_text(verilog.convert(dut, name="hostport", emit_src=False))
    (tmp_path / "tb.v").write_text(_ICARUS_TB.format(
        last=len(stream) - 1, layer=layer, cycles=cycles, ports=ports, init=init,
        timeout=10 * 20 * (len(stream) + 2000)))
    subprocess.run(["iverilog", *ICARUS_ARGS, "-o", "sim", "tb.v", "hostport.v"],
                   cwd=tmp_path, check=True, capture_output=True)
    out = subprocess.run(["vvp", "-n", "sim"], cwd=tmp_path, check=True, capture_output=True,
                         text=True, timeout=300).stdout
    assert "timeout" not in out
    got = bytes(int(line.split()[1], 16) for line in out.splitlines()
                if line.startswith("byte "))
    assert protocol.FrameSplitter().feed(got) == expected
