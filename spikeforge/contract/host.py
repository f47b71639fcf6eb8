"""The host protocol of the accelerator, defined once: the framing (COBS + CRC-16), the request
and answer packets, the bytes of a memory word, and the payloads of STATUS, CYCLES and INFO. The
RTL host port (``spikeforge.hdl.accelerator.host.HostPort``) implements the device side; the
system testbench and any host driver build requests and read answers with these functions.
Pure Python, importing only :mod:`spikeforge.contract`.

Frame (on the wire)
    ``COBS(packet) 0x00``: the packet COBS-encoded (Cheshire & Baker, groups of at most 254
    bytes, so the encoded bytes hold no zero) and one ``0x00`` delimiter. ``packet = body +
    CRC-16/CCITT-FALSE(body)`` (poly 0x1021, init 0xFFFF, not reflected, xorout 0), the CRC
    big-endian (so the CRC over the whole packet is 0). An empty frame (a ``0x00`` right after a
    ``0x00``) is ignored: a host may send ``0x00`` first to resynchronise. One request at a
    time: the port takes no byte from a request's ``0x00`` until its answer's ``0x00`` is on
    its way (behind a UART, bytes sent meanwhile are lost), so a host waits for each answer.

Request body
    ``command u8, tag u8, payload``: ``command`` a :class:`~.program.Command`, ``tag`` any byte
    the answer echoes. Every multi-byte integer of a payload is little-endian.

    ========  ==========================================  ===================================
    command   request payload                             answer payload (error OK)
    ========  ==========================================  ===================================
    WRITE 1   memory u8, address u32, count u16,          (empty)
              count words of :func:`word_bytes` bytes
    READ 2    memory u8, address u32, count u16           count words
    START 3   first u16, stop u16                         (empty; error = the sequencer's
                                                          program check)
    STATUS 4  (empty)                                     flags u8 (bit 0 busy, bit 1 done),
                                                          error u8, layer u16, cycles u32
    CYCLES 5  layer u16                                   cycles u32
    RESET 6   (empty)                                     (empty)
    INFO 7    (empty)                                     FORMAT_VERSION u8, lanes u8,
                                                          word_bits u8, then per memory id
                                                          0..7: depth u32, row bits u16
    ========  ==========================================  ===================================

    ``memory`` is a :class:`~.program.Memory` id; ``count`` is 1 .. :func:`max_words` (at most
    :data:`MAX_DATA` bytes of words); ``address + count`` at most the memory's depth. START runs
    descriptors ``first`` .. ``stop - 1`` (``stop = 0``: until END) after the sequencer checked
    the whole program. WRITE, READ and START are refused (BUSY) while the program runs (the
    memories belong to the sequencer then); RESET stops it.

Answer body
    ``command | 0x80 u8, tag u8, error u8, payload``: the payload only with error OK (an error
    answer's payload is empty). A frame that cannot be read (BAD_FRAME, BAD_CHECKSUM) is answered
    with command ``0x80`` and tag 0. A failing command changes nothing. (An unknown command
    byte with bit 7 set reads back as ``command & 0x7F``.)

Checks, in this order (the first that fails is the answer's error)
    1. BAD_FRAME: a COBS group cut short by the delimiter, or a packet of fewer than 4 bytes;
    2. BAD_CHECKSUM: the CRC;
    3. UNKNOWN_COMMAND: a command byte that is not a :class:`~.program.Command`;
    4. BAD_LENGTH: a packet longer than :data:`MAX_PACKET`, or a payload shorter or longer than
       the command takes (READ: exactly 7 bytes; WRITE: at least 7);
    5. BAD_MEMORY: a memory id past 7 (WRITE, READ);
    6. BAD_LENGTH: count 0 or past :func:`max_words`; WRITE: a payload that is not exactly
       ``7 + count * word_bytes``;
    7. ADDRESS_RANGE: ``address + count`` past the memory's depth;
    8. BUSY: WRITE, READ or START while the program runs.

Words (:func:`encode_words`, :func:`decode_words`)
    A word of ``memory`` is ``row_bits`` bits (:func:`row_bits`; the ``hdl/accelerator/ports``
    row shape): rows of ``lanes`` signed elements (weights, biases, thresholds, values,
    membranes, scores) hold lane ``l`` at bits ``l * element_bits ..`` in two's complement;
    ``program`` (32 bits) and ``spikes`` (``word_bits``) words are unsigned. On the wire a word
    is :func:`word_bytes` ``= ceil(row_bits / 8)`` bytes, little-endian, padded with zero bits.
"""

from dataclasses import dataclass

from .program import FORMAT_VERSION, Command, Error, Memory, memory_map
from .sizes import ceil_div

__all__ = [
    "MAX_DATA", "MAX_PAYLOAD", "MAX_PACKET", "ANSWER_FLAG", "REQUEST_HEADER", "ADDRESS_HEADER",
    "crc16", "cobs_encode", "cobs_decode", "encode_frame", "decode_frame", "FrameSplitter",
    "request", "write_request", "read_request", "start_request", "status_request",
    "cycles_request", "reset_request", "info_request",
    "Answer", "parse_answer", "answer_frame", "check_request",
    "row_bits", "word_bytes", "max_words", "encode_words", "decode_words",
    "Status", "status_payload", "parse_status", "parse_cycles", "cycles_payload",
    "MemoryInfo", "Info", "info_payload", "parse_info",
]

#: Most bytes of words one WRITE carries or one READ answers.
MAX_DATA = 1024
#: Bytes of WRITE's and READ's payload before the words: memory u8, address u32, count u16.
ADDRESS_HEADER = 7
#: Most bytes of a request's payload (after command and tag): a WRITE of MAX_DATA bytes.
MAX_PAYLOAD = ADDRESS_HEADER + MAX_DATA
#: Bytes of a request body before its payload: command, tag.
REQUEST_HEADER = 2
#: Most bytes of a decoded request packet (body + CRC); a longer one is BAD_LENGTH.
MAX_PACKET = REQUEST_HEADER + MAX_PAYLOAD + 2
#: Set in an answer's command byte.
ANSWER_FLAG = 0x80

_U8, _U16, _U32 = 0xFF, 0xFFFF, 0xFFFFFFFF


# -- framing ------------------------------------------------------------------------------------

def crc16(data, crc=0xFFFF):
    """CRC-16/CCITT-FALSE of ``data`` (bytes): poly 0x1021, init 0xFFFF (or ``crc``, to go on
    from a previous chunk), not reflected, xorout 0. ``crc16(b"123456789") == 0x29B1``."""
    for byte in bytes(data):
        crc ^= byte << 8
        for _ in range(8):
            crc = (crc << 1 ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def cobs_encode(data):
    """COBS encoding of ``data`` (bytes → bytes without any zero, no delimiter): each zero
    ends a group whose code byte (1..254 + 1) says how far the next zero is; a run of 254
    non-zero bytes is a group of code 0xFF, with no zero implied after it."""
    data = bytes(data)
    out = bytearray()
    group = bytearray()
    full_at_end = False         # the data ended with a full 0xFF group: no final group
    for byte in data:
        full_at_end = False
        if byte == 0:
            out.append(len(group) + 1)
            out += group
            group.clear()
        else:
            group.append(byte)
            if len(group) == 254:
                out.append(0xFF)
                out += group
                group.clear()
                full_at_end = True
    if not full_at_end:
        out.append(len(group) + 1)
        out += group
    return bytes(out)


def cobs_decode(data):
    """Inverse of :func:`cobs_encode` (``data`` without its delimiter). ``ValueError`` for a
    zero byte in ``data`` or a group cut short."""
    data = bytes(data)
    out = bytearray()
    i = 0
    while i < len(data):
        code = data[i]
        if code == 0:
            raise ValueError(f"bad COBS frame: a zero byte at offset {i}")
        end = i + code
        if end > len(data):
            raise ValueError(f"bad COBS frame: the group at offset {i} (code {code}) needs "
                             f"{code - 1} bytes, {len(data) - i - 1} left")
        group = data[i + 1:end]
        if 0 in group:
            raise ValueError(f"bad COBS frame: a zero byte at offset {i + 1 + group.index(0)}")
        out += group
        i = end
        if code != 0xFF and i < len(data):
            out.append(0)
    return bytes(out)


def encode_frame(body):
    """The wire bytes of a packet whose body is ``body``: ``COBS(body + crc16 big-endian)``
    followed by the ``0x00`` delimiter."""
    body = bytes(body)
    return cobs_encode(body + crc16(body).to_bytes(2, "big")) + b"\x00"


def decode_frame(frame):
    """The body of one frame (``frame`` with or without its final ``0x00``): COBS-decoded, CRC
    checked and removed. ``ValueError`` for a bad COBS frame, a packet shorter than its CRC or
    a CRC mismatch."""
    frame = bytes(frame)
    if frame.endswith(b"\x00"):
        frame = frame[:-1]
    packet = cobs_decode(frame)
    if len(packet) < 2:
        raise ValueError(f"bad frame: a packet of {len(packet)} bytes has no CRC")
    body, crc = packet[:-2], int.from_bytes(packet[-2:], "big")
    if crc16(body) != crc:
        raise ValueError(f"bad frame: CRC 0x{crc:04X} does not match the body's "
                         f"0x{crc16(body):04X}")
    return body


class FrameSplitter:
    """Splits a byte stream into frames at their ``0x00`` delimiters: :meth:`feed` takes bytes
    and returns the frames completed (each with its delimiter; empty frames dropped)."""

    def __init__(self):
        self._pending = bytearray()

    def feed(self, data):
        frames = []
        for byte in bytes(data):
            if byte == 0:
                if self._pending:
                    frames.append(bytes(self._pending) + b"\x00")
                self._pending.clear()
            else:
                self._pending.append(byte)
        return frames

    @property
    def pending(self):
        """Bytes received since the last delimiter."""
        return bytes(self._pending)


# -- requests -----------------------------------------------------------------------------------

def _uint(name, value, bits):
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            value = int(value.__index__())
        except (AttributeError, TypeError):
            raise TypeError(f"{name} must be an int, not {value!r}") from None
    if not 0 <= value < 1 << bits:
        raise ValueError(f"{name} must be in 0 .. {(1 << bits) - 1}, not {value}")
    return value


def request(command, payload=b"", *, tag=0):
    """The frame of a request: ``command`` (an int, so malformed requests can be built too),
    ``tag`` and ``payload`` bytes, unchecked beyond each being a byte."""
    return encode_frame(bytes([_uint("command", command, 8), _uint("tag", tag, 8)])
                        + bytes(payload))


def _address_payload(config, memory, address, count):
    memory = Memory(memory)
    address = _uint("address", address, 32)
    count = _uint("count", count, 16)
    limit = max_words(config, memory)
    if not 1 <= count <= limit:
        raise ValueError(f"count of {memory.name.lower()} words must be in 1 .. {limit} "
                         f"(MAX_DATA {MAX_DATA} bytes), not {count}")
    depth = memory_map(config)[memory.name.lower()].depth
    if address + count > depth:
        raise ValueError(f"{memory.name.lower()} words {address} .. {address + count - 1} are "
                         f"past its depth {depth}")
    return bytes([memory]) + address.to_bytes(4, "little") + count.to_bytes(2, "little")


def write_request(memory, address, words, *, config, tag=0):
    """WRITE ``words`` (rows as :func:`encode_words` takes them) to ``memory`` of ``config``
    from ``address``. ``ValueError`` for a count outside 1 .. :func:`max_words` or past the
    memory's depth, or a word out of range."""
    words = list(words)
    data = encode_words(config, memory, words)
    return request(Command.WRITE, _address_payload(config, memory, address, len(words)) + data,
                   tag=tag)


def read_request(memory, address, count, *, config, tag=0):
    """READ ``count`` words of ``memory`` of ``config`` from ``address`` (same checks as
    :func:`write_request`); read the answer's payload with :func:`decode_words`."""
    return request(Command.READ, _address_payload(config, memory, address, count), tag=tag)


def start_request(first=0, stop=0, *, tag=0):
    """START: run descriptors ``first`` .. ``stop - 1`` (``stop = 0``: until END)."""
    return request(Command.START, _uint("first", first, 16).to_bytes(2, "little")
                   + _uint("stop", stop, 16).to_bytes(2, "little"), tag=tag)


def status_request(*, tag=0):
    """STATUS: answered with a :func:`parse_status` payload."""
    return request(Command.STATUS, tag=tag)


def cycles_request(layer, *, tag=0):
    """CYCLES of descriptor ``layer`` in the last run (:func:`parse_cycles`)."""
    return request(Command.CYCLES, _uint("layer", layer, 16).to_bytes(2, "little"), tag=tag)


def reset_request(*, tag=0):
    """RESET: stop the run, clear the status; the memories keep their contents."""
    return request(Command.RESET, tag=tag)


def info_request(*, tag=0):
    """INFO: answered with a :func:`parse_info` payload."""
    return request(Command.INFO, tag=tag)


# -- answers ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Answer:
    """One answer: ``command`` (a :class:`~.program.Command`, or the int for a command the
    protocol does not know; 0 for an unreadable frame), ``tag``, ``error`` (an
    :class:`~.program.Error`) and ``payload`` bytes (empty unless error is OK)."""
    command: int
    tag: int
    error: Error
    payload: bytes

    @property
    def ok(self):
        return self.error == Error.OK


def parse_answer(frame):
    """The :class:`Answer` of one answer frame (bytes, with or without the final ``0x00``).
    ``ValueError`` for a bad COBS frame, a bad CRC, a body shorter than 3 bytes, a command byte
    without :data:`ANSWER_FLAG`, an unknown error code or an error answer with a payload."""
    body = decode_frame(frame)
    if len(body) < 3:
        raise ValueError(f"bad answer: a body of {len(body)} bytes (command, tag, error needed)")
    if not body[0] & ANSWER_FLAG:
        raise ValueError(f"bad answer: command byte 0x{body[0]:02X} has no answer flag 0x80")
    try:
        error = Error(body[2])
    except ValueError:
        raise ValueError(f"bad answer: unknown error code {body[2]}") from None
    command = body[0] & ~ANSWER_FLAG
    try:
        command = Command(command)
    except ValueError:
        pass
    payload = bytes(body[3:])
    if error != Error.OK and payload:
        raise ValueError(f"bad answer: error {error.name} with a {len(payload)}-byte payload")
    return Answer(command, body[1], error, payload)


def answer_frame(command, tag, error, payload=b""):
    """The frame of an answer (what the host port sends; for models and tests)."""
    return encode_frame(bytes([ANSWER_FLAG | _uint("command", command, 8), _uint("tag", tag, 8),
                               int(Error(error))]) + bytes(payload))


def check_request(config, frame, *, busy=False):
    """``(command, tag, error)`` of the answer the host port gives to ``frame`` (one request's
    bytes, with or without the final ``0x00``) while the program runs (``busy``) or not: the
    checks of the module docstring in their order, ``error`` OK when all pass (START's own
    answer is then the sequencer's). ``command`` and ``tag`` are what the answer echoes (both 0
    for an unreadable frame), ``command`` without :data:`ANSWER_FLAG` (as :func:`parse_answer`
    gives it: a command byte with bit 7 set is echoed as ``command & 0x7F``). ``None`` for an
    empty frame (ignored)."""
    frame = bytes(frame)
    if frame.endswith(b"\x00"):
        frame = frame[:-1]
    if not frame:
        return None
    try:
        packet = cobs_decode(frame)
    except ValueError:
        return 0, 0, Error.BAD_FRAME
    if len(packet) < REQUEST_HEADER + 2:
        return 0, 0, Error.BAD_FRAME
    if crc16(packet) != 0:
        return 0, 0, Error.BAD_CHECKSUM
    command, tag, payload = packet[0], packet[1], packet[REQUEST_HEADER:-2]
    fixed = {Command.START: 4, Command.STATUS: 0, Command.CYCLES: 2, Command.RESET: 0,
             Command.INFO: 0, Command.READ: ADDRESS_HEADER}
    if command not in set(Command):
        return command & ~ANSWER_FLAG, tag, Error.UNKNOWN_COMMAND
    if len(packet) > MAX_PACKET or len(payload) != fixed.get(command, len(payload)) or (
            command == Command.WRITE and len(payload) < ADDRESS_HEADER):
        return command, tag, Error.BAD_LENGTH
    if command in (Command.WRITE, Command.READ):
        if payload[0] >= len(Memory):
            return command, tag, Error.BAD_MEMORY
        memory = Memory(payload[0])
        address = int.from_bytes(payload[1:5], "little")
        count = int.from_bytes(payload[5:7], "little")
        if not 1 <= count <= max_words(config, memory) or (
                command == Command.WRITE
                and len(payload) != ADDRESS_HEADER + count * word_bytes(config, memory)):
            return command, tag, Error.BAD_LENGTH
        if address + count > memory_map(config)[memory.name.lower()].depth:
            return command, tag, Error.ADDRESS_RANGE
    if busy and command in (Command.WRITE, Command.READ, Command.START):
        return command, tag, Error.BUSY
    return command, tag, Error.OK


# -- words --------------------------------------------------------------------------------------

def row_bits(config, memory):
    """Bits of one word of ``memory`` (a :class:`~.program.Memory`) of ``config``."""
    return memory_map(config)[Memory(memory).name.lower()].word_bits


def word_bytes(config, memory):
    """Bytes of one word of ``memory`` on the wire: ``ceil(row_bits / 8)``."""
    return ceil_div(row_bits(config, memory), 8)


def max_words(config, memory):
    """Most words of ``memory`` one WRITE or READ carries: ``MAX_DATA // word_bytes``."""
    return MAX_DATA // word_bytes(config, memory)


def _lanes(config, memory):
    spec = memory_map(config)[Memory(memory).name.lower()]
    if Memory(memory) in (Memory.PROGRAM, Memory.SPIKES):
        return None, spec.element_bits
    return spec.lanes, spec.element_bits


def encode_words(config, memory, rows):
    """The wire bytes of ``rows`` of ``memory``: for program and spikes each row is an unsigned
    int of ``row_bits``; for the other memories a sequence of ``lanes`` signed ints of
    ``element_bits`` each (lane ``l`` at bits ``l * element_bits``, two's complement).
    ``ValueError`` naming the row and lane of a value out of range or a wrong lane count."""
    lanes, bits = _lanes(config, memory)
    size = word_bytes(config, memory)
    name = Memory(memory).name.lower()
    out = bytearray()
    for r, row in enumerate(rows):
        if lanes is None:
            word = _uint(f"{name} word {r}", row, bits)
        else:
            row = list(row)
            if len(row) != lanes:
                raise ValueError(f"{name} row {r} has {len(row)} lanes, not {lanes}")
            word, lo, hi = 0, -(1 << (bits - 1)), (1 << (bits - 1)) - 1
            for lane, value in enumerate(row):
                value = int(value)
                if not lo <= value <= hi:
                    raise ValueError(f"{name} row {r} lane {lane}: {value} is not a {bits}-bit "
                                     f"signed value")
                word |= (value & ((1 << bits) - 1)) << (lane * bits)
        out += word.to_bytes(size, "little")
    return bytes(out)


def decode_words(config, memory, data):
    """Inverse of :func:`encode_words`: the rows of ``memory`` in ``data`` (a READ answer's
    payload): ints for program and spikes, lists of ``lanes`` signed ints otherwise.
    ``ValueError`` for a length that is not a whole number of words."""
    lanes, bits = _lanes(config, memory)
    size = word_bytes(config, memory)
    data = bytes(data)
    if len(data) % size:
        raise ValueError(f"{len(data)} bytes are not whole {Memory(memory).name.lower()} words "
                         f"of {size} bytes")
    rows = []
    for at in range(0, len(data), size):
        word = int.from_bytes(data[at:at + size], "little")
        if lanes is None:
            rows.append(word & ((1 << bits) - 1))
        else:
            row = []
            for lane in range(lanes):
                value = (word >> (lane * bits)) & ((1 << bits) - 1)
                row.append(value - (1 << bits) if value >> (bits - 1) else value)
            rows.append(row)
    return rows


# -- STATUS, CYCLES, INFO -----------------------------------------------------------------------

@dataclass(frozen=True)
class Status:
    """STATUS: ``busy`` (the program runs), ``done`` (the last START ran to its end),
    ``error`` (of the last START), ``layer`` (descriptor being run, or the last one) and
    ``cycles`` (since the last START)."""
    busy: bool
    done: bool
    error: Error
    layer: int
    cycles: int


def status_payload(status):
    """The 8 payload bytes of a STATUS answer: flags u8 (bit 0 busy, bit 1 done), error u8,
    layer u16, cycles u32."""
    return (bytes([int(bool(status.busy)) | int(bool(status.done)) << 1, int(status.error)])
            + _uint("layer", status.layer, 16).to_bytes(2, "little")
            + _uint("cycles", status.cycles, 32).to_bytes(4, "little"))


def parse_status(payload):
    """The :class:`Status` of a STATUS answer's payload (``ValueError`` unless 8 bytes)."""
    payload = bytes(payload)
    if len(payload) != 8:
        raise ValueError(f"a STATUS payload has 8 bytes, not {len(payload)}")
    return Status(busy=bool(payload[0] & 1), done=bool(payload[0] & 2), error=Error(payload[1]),
                  layer=int.from_bytes(payload[2:4], "little"),
                  cycles=int.from_bytes(payload[4:8], "little"))


def cycles_payload(cycles):
    """The 4 payload bytes of a CYCLES answer."""
    return _uint("cycles", cycles, 32).to_bytes(4, "little")


def parse_cycles(payload):
    """The cycle count of a CYCLES answer's payload (``ValueError`` unless 4 bytes)."""
    payload = bytes(payload)
    if len(payload) != 4:
        raise ValueError(f"a CYCLES payload has 4 bytes, not {len(payload)}")
    return int.from_bytes(payload, "little")


@dataclass(frozen=True)
class MemoryInfo:
    """One memory of INFO: ``depth`` words of ``row_bits``."""
    depth: int
    row_bits: int


@dataclass(frozen=True)
class Info:
    """INFO: the device's :data:`~.program.FORMAT_VERSION`, ``lanes``, ``word_bits`` and
    ``memories`` (``{Memory: MemoryInfo}`` for ids 0..7)."""
    format_version: int
    lanes: int
    word_bits: int
    memories: dict

    def matches(self, config):
        """Whether this is the INFO of ``config`` (and this package's FORMAT_VERSION)."""
        return self == parse_info(info_payload(config))


def info_payload(config):
    """The payload of ``config``'s INFO answer: FORMAT_VERSION u8, lanes u8, word_bits u8, then
    per memory id 0..7: depth u32, row bits u16 (51 bytes)."""
    out = bytearray([FORMAT_VERSION, _uint("lanes", config.lanes, 8),
                     _uint("word_bits", config.word_bits, 8)])
    specs = memory_map(config)
    for memory in Memory:
        spec = specs[memory.name.lower()]
        out += spec.depth.to_bytes(4, "little") + spec.word_bits.to_bytes(2, "little")
    return bytes(out)


def parse_info(payload):
    """The :class:`Info` of an INFO answer's payload (``ValueError`` for a wrong length)."""
    payload = bytes(payload)
    size = 3 + 6 * len(Memory)
    if len(payload) != size:
        raise ValueError(f"an INFO payload has {size} bytes, not {len(payload)}")
    memories = {}
    for memory in Memory:
        at = 3 + 6 * memory
        memories[memory] = MemoryInfo(int.from_bytes(payload[at:at + 4], "little"),
                                      int.from_bytes(payload[at + 4:at + 6], "little"))
    return Info(payload[0], payload[1], payload[2], memories)
