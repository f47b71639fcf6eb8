"""cocotb model of the accelerator's host: requests of :mod:`spikeforge.contract.host` sent
byte by byte on the DUT's ``i`` stream, answers taken from its ``o`` stream, with random idle
cycles before each request byte and random ``ready`` stalls on the answer bytes.

One request is in flight at a time: :meth:`HostLink.transact` sends its frame and takes answer
bytes until the answer's ``0x00`` delimiter, then parses it (CRC checked) with
:func:`~spikeforge.contract.host.parse_answer`; the answer must echo the request's command and
tag (an unreadable request is answered with command ``0x80`` and tag 0). The commands
(:meth:`write`, :meth:`read`, :meth:`start`, :meth:`status`, :meth:`cycles`, :meth:`info`,
:meth:`reset`) raise :class:`HostError` on an error answer.

Both streams are driven and sampled as :mod:`spikeforge.verif.stream` does (drive after the
rising edge, sample ``valid & ready`` in the read-only phase: a beat seen there transfers at
the next edge), but by one coroutine that runs only while a request is in flight: a
per-cycle :class:`~spikeforge.verif.stream.StreamSource` and
:class:`~spikeforge.verif.stream.StreamSink` would cost two Python wake-ups per cycle for the
whole run, most of which (the program running, for up to 10⁵ cycles per inference) has no
host traffic. Between requests ``i.valid`` and ``o.ready`` are low.
"""

from cocotb.triggers import First, ReadOnly, RisingEdge, Timer
from cocotb.utils import get_sim_time

from spikeforge.contract import host
from spikeforge.contract.program import Command, Error, Memory

__all__ = ["HostLink", "HostError", "frame_tag", "random_rows", "with_bad_crc"]


class HostError(AssertionError):
    """An error answer: ``error`` (an :class:`~spikeforge.contract.program.Error`) to
    ``command``."""

    def __init__(self, command, error):
        self.command = command
        self.error = Error(error)
        name = command.name if isinstance(command, Command) else f"command {command}"
        super().__init__(f"{name} answered {self.error.name}")


class HostLink:
    """The host side of the DUT's ``i`` / ``o`` byte streams.

    Parameters
    ----------
    dut : the cocotb handle of the accelerator (ports ``i__*``, ``o__*``)
    clk : its clock
    config : :class:`spikeforge.contract.configs.Config`
        The configuration the words are encoded for.
    rng : random.Random
    idle : float
        Probability of an idle cycle before each request byte is offered.
    stall : float
        Probability that ``o.ready`` is low in a cycle while an answer is awaited.
    timeout_cycles : int
        Cycles without a transfer either way after which a request fails (the DUT hung).
    period_ns : int
        The clock period (for the timer of :meth:`wait_done`).

    Attributes
    ----------
    sent, received : int
        Bytes transferred each way.
    requests : int
        Requests answered.
    """

    def __init__(self, dut, clk, config, *, rng, idle=0.0, stall=0.0, timeout_cycles=200_000,
                 period_ns=10):
        self._dut = dut
        self._clk = clk
        self.config = config
        self._rng = rng
        self.idle = idle
        self.stall = stall
        self.timeout_cycles = timeout_cycles
        self.period_ns = period_ns
        self._tag = 0
        self.sent = self.received = self.requests = 0
        self._i_valid, self._i_ready, self._i_payload = (
            getattr(dut, f"i__{n}") for n in ("valid", "ready", "payload"))
        self._o_valid, self._o_ready, self._o_payload = (
            getattr(dut, f"o__{n}") for n in ("valid", "ready", "payload"))
        self._i_valid.value = 0
        self._o_ready.value = 0

    # -- the wire -------------------------------------------------------------------------------
    async def exchange(self, frame):
        """Send ``frame`` (bytes ending in ``0x00``) and return the answer frame's bytes (with
        its delimiter). The answer may start before the request is fully sent.

        Once the request is sent, without ``o.ready`` stalls (``stall`` 0) and with no answer
        byte offered, the link waits for ``o.valid`` to rise instead of sampling every cycle
        (``ready`` is high all along, so the beats and their timing are the same)."""
        frame = bytes(frame)
        at, presenting = 0, False
        sent_now, got_now = False, None
        answer = bytearray()
        quiet = 0
        clk_edge, read_only = RisingEdge(self._clk), ReadOnly()
        i_valid, i_ready, i_payload = self._i_valid, self._i_ready, self._i_payload
        o_valid, o_ready, o_payload = self._o_valid, self._o_ready, self._o_payload
        idle, stall, rng = self.idle, self.stall, self._rng
        while True:
            await clk_edge
            # decided in the last read-only phase: these beats transferred at this edge
            moved = sent_now or got_now is not None
            if sent_now:
                at += 1
                presenting = False
            if got_now is not None:
                answer.append(got_now)
                if got_now == 0:
                    if len(answer) > 1:
                        break
                    answer.clear()          # an empty frame answers nothing
            quiet = 0 if moved else quiet + 1
            if quiet >= self.timeout_cycles:
                self._hung(at, frame, answer)
            if not presenting and at < len(frame) and (not idle or rng.random() >= idle):
                i_payload.value = frame[at]
                presenting = True
            i_valid.value = int(presenting)
            taking = not stall or rng.random() >= stall
            o_ready.value = int(taking)
            await read_only
            sent_now = presenting and bool(i_ready.value)
            got_now = int(o_payload.value) if taking and o_valid.value else None
            if not stall and got_now is None and not presenting and at == len(frame):
                # nothing to send, nothing offered: sleep until the answer's next byte
                timer = Timer((self.timeout_cycles - quiet) * self.period_ns, unit="ns")
                if await First(RisingEdge(o_valid), timer) is timer:
                    self._hung(at, frame, answer)
                await read_only
                quiet = 0
                got_now = int(o_payload.value) if o_valid.value else None
        self._idle()
        self.sent += at
        self.received += len(answer)
        if at < len(frame):
            raise AssertionError(f"host link: answered after {at} of {len(frame)} request "
                                 "bytes")
        return bytes(answer)

    def _hung(self, at, frame, answer):
        self._idle()
        raise AssertionError(
            f"host link: no byte moved for {self.timeout_cycles} cycles ({at} of "
            f"{len(frame)} request bytes sent, {len(answer)} answer bytes taken)")

    def _idle(self):
        self._i_valid.value = 0
        self._o_ready.value = 0

    async def transact(self, command, build=None, *, frame=None):
        """Send a request and return its :class:`~spikeforge.contract.host.Answer`, checked
        to echo ``command`` and the tag (command 0 and tag 0 for an unreadable frame's
        answer). The frame is ``build(tag)`` (a :mod:`spikeforge.contract.host` request
        function), or ``frame`` as given (a malformed request; its tag byte read from it).
        Does not raise on an error answer."""
        tag = self._tag
        self._tag = (self._tag + 1) & 0xFF
        if frame is None:
            frame = build(tag)
        else:
            tag = frame_tag(frame)
        raw = await self.exchange(frame)
        try:
            answer = host.parse_answer(raw)
        except ValueError as exc:
            raise AssertionError(f"host link: answer to {_name(command)} tag {tag}: {exc} "
                                 f"(frame {raw.hex(' ')})") from None
        self.requests += 1
        unreadable = answer.error in (Error.BAD_FRAME, Error.BAD_CHECKSUM)
        want = (0, 0) if unreadable else (int(command), tag)
        if (int(answer.command), answer.tag) != want:
            raise AssertionError(f"host link: answer to {_name(command)} tag {tag} echoes "
                                 f"command {int(answer.command)} tag {answer.tag}")
        return answer

    async def command(self, command, build):
        """:meth:`transact`; the answer's payload, or :class:`HostError` on an error."""
        answer = await self.transact(command, build)
        if not answer.ok:
            raise HostError(Command(command), answer.error)
        return answer.payload

    # -- commands -------------------------------------------------------------------------------
    async def write(self, memory, address, rows):
        """WRITE ``rows`` (ints for program / spikes, lane lists otherwise) of ``memory`` from
        ``address``, in requests of at most :func:`~spikeforge.contract.host.max_words`."""
        memory, config = Memory(memory), self.config
        rows = list(rows)
        chunk = host.max_words(config, memory)
        for at in range(0, len(rows), chunk):
            part = rows[at:at + chunk]
            await self.command(Command.WRITE, lambda tag: host.write_request(
                memory, address + at, part, config=config, tag=tag))

    async def read(self, memory, address, count):
        """READ ``count`` rows of ``memory`` from ``address`` (chunked like :meth:`write`):
        ints for program / spikes, lane lists otherwise."""
        memory, config = Memory(memory), self.config
        chunk = host.max_words(config, memory)
        rows = []
        for at in range(0, count, chunk):
            part = min(chunk, count - at)
            data = await self.command(Command.READ, lambda tag: host.read_request(
                memory, address + at, part, config=config, tag=tag))
            got = host.decode_words(config, memory, data)
            if len(got) != part:
                raise AssertionError(f"READ of {part} {memory.name.lower()} words answered "
                                     f"{len(got)}")
            rows += got
        return rows

    async def start(self, first=0, stop=0):
        """START descriptors ``first`` .. ``stop - 1`` (``stop`` 0: to END); raises on the
        sequencer's check error."""
        await self.command(Command.START,
                           lambda tag: host.start_request(first, stop, tag=tag))

    async def status(self):
        """STATUS → :class:`~spikeforge.contract.host.Status`."""
        return host.parse_status(await self.command(Command.STATUS,
                                                    lambda tag: host.status_request(tag=tag)))

    async def cycles(self, layer):
        """CYCLES of descriptor ``layer`` in the last run."""
        return host.parse_cycles(await self.command(
            Command.CYCLES, lambda tag: host.cycles_request(layer, tag=tag)))

    async def info(self):
        """INFO → :class:`~spikeforge.contract.host.Info`."""
        return host.parse_info(await self.command(Command.INFO,
                                                  lambda tag: host.info_request(tag=tag)))

    async def reset(self):
        """RESET."""
        await self.command(Command.RESET, lambda tag: host.reset_request(tag=tag))

    async def wait_done(self, *, timeout_cycles, poll_cycles=None):
        """Wait for the run a START began to end: the DUT's ``done`` output (a level, cleared
        by START) rising, with a STATUS when it has risen, or after every ``poll_cycles``
        (default: none until ``timeout_cycles``; no Python runs in between); returns the
        final :class:`~spikeforge.contract.host.Status`. Raises :class:`HostError` if the run
        reports an error, ``AssertionError`` if it does not end within ``timeout_cycles``."""
        waited = 0
        while True:
            status = await self.status()
            if status.error != Error.OK:
                raise HostError(Command.START, status.error)
            if status.done and not status.busy:
                return status
            if waited >= timeout_cycles:
                raise AssertionError(f"the run did not end within {timeout_cycles} cycles "
                                     f"(at descriptor {status.layer}, {status.cycles} cycles)")
            chunk = min(poll_cycles or timeout_cycles, timeout_cycles - waited)
            started = get_sim_time("ns")
            if not int(self._dut.done.value):
                await First(RisingEdge(self._dut.done),
                            Timer(chunk * self.period_ns, unit="ns"))
            waited += max(1, int(get_sim_time("ns") - started) // self.period_ns)


def frame_tag(frame):
    """The tag byte of a request frame (0 when it does not decode)."""
    try:
        body = host.cobs_decode(bytes(frame).rstrip(b"\x00"))
    except ValueError:
        return 0
    return body[1] if len(body) > 1 else 0


def _name(command):
    try:
        return Command(command).name
    except ValueError:
        return f"command {command}"


def random_rows(rng, config, memory, count):
    """``count`` random rows of ``memory`` of ``config`` as the link writes them: words over
    their whole width (program, spikes), else lanes over their whole signed range."""
    spec = config.memories()[Memory(memory).name.lower()]
    if Memory(memory) in (Memory.PROGRAM, Memory.SPIKES):
        return [rng.getrandbits(spec.element_bits) for _ in range(count)]
    half = 1 << (spec.element_bits - 1)
    return [[rng.randrange(-half, half) for _ in range(spec.lanes)] for _ in range(count)]


def with_bad_crc(frame):
    """``frame`` (a request's wire bytes) with its CRC's last bit flipped."""
    packet = bytearray(host.cobs_decode(frame[:-1]))
    packet[-1] ^= 1
    return host.cobs_encode(bytes(packet)) + b"\x00"
