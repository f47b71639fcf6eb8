"""The host protocol codec (spikeforge.contract.host): CRC-16, COBS, frames, requests, answers,
words and the STATUS / CYCLES / INFO payloads."""

import random

import pytest

from spikeforge.contract import host
from spikeforge.contract.configs import CONFIGS, get_config
from spikeforge.contract.program import FORMAT_VERSION, Command, Error, Memory, memory_map
from spikeforge.contract.sizes import signed_range


def _crc_bitwise(data):
    # An independent form: the polynomial division of the message, MSB first.
    reg = 0xFFFF
    for byte in data:
        for k in range(7, -1, -1):
            top = (reg >> 15) ^ ((byte >> k) & 1)
            reg = ((reg << 1) & 0xFFFF) ^ (0x1021 if top else 0)
    return reg


def test_crc_check_value_and_residue():
    assert host.crc16(b"123456789") == 0x29B1
    assert host.crc16(b"") == 0xFFFF
    rng = random.Random(2)
    for n in (1, 2, 5, 100):
        data = bytes(rng.randrange(256) for _ in range(n))
        assert host.crc16(data) == _crc_bitwise(data)
        # The CRC appended big-endian leaves a zero remainder (what the RTL checks).
        assert host.crc16(data + host.crc16(data).to_bytes(2, "big")) == 0
        assert host.crc16(data[n // 2:], host.crc16(data[:n // 2])) == host.crc16(data)


@pytest.mark.parametrize("data, encoded", [
    (b"", b"\x01"),
    (b"\x00", b"\x01\x01"),
    (b"\x00\x00", b"\x01\x01\x01"),
    (b"\x11\x22\x00\x33", b"\x03\x11\x22\x02\x33"),
    (b"\x11\x22\x33\x44", b"\x05\x11\x22\x33\x44"),
    (b"\x11\x00\x00\x00", b"\x02\x11\x01\x01\x01"),
    (bytes(range(1, 255)), b"\xff" + bytes(range(1, 255))),
    (bytes(range(0, 255)), b"\x01\xff" + bytes(range(1, 255))),
    (bytes(range(1, 256)), b"\xff" + bytes(range(1, 255)) + b"\x02\xff"),
    (bytes(range(2, 256)) + b"\x00", b"\xff" + bytes(range(2, 256)) + b"\x01\x01"),
    (bytes(range(3, 256)) + b"\x00\x01", b"\xfe" + bytes(range(3, 256)) + b"\x02\x01"),
])
def test_cobs_known_vectors(data, encoded):
    # The examples of the COBS paper / Wikipedia, with the 254 / 255-byte runs.
    assert host.cobs_encode(data) == encoded
    assert host.cobs_decode(encoded) == data


def test_cobs_round_trips():
    rng = random.Random(3)
    cases = [bytes([1]) * n for n in (253, 254, 255, 508, 509)]
    cases += [bytes(n) for n in (1, 254, 255, 300)]
    for _ in range(200):
        n = rng.choice([rng.randrange(20), rng.randrange(600)])
        zeros = rng.random()
        cases.append(bytes(0 if rng.random() < zeros else rng.randrange(1, 256)
                           for _ in range(n)))
    for data in cases:
        encoded = host.cobs_encode(data)
        assert 0 not in encoded
        assert len(encoded) <= len(data) + 1 + len(data) // 254
        assert host.cobs_decode(encoded) == data


@pytest.mark.parametrize("encoded, match", [
    (b"\x03\x11", "needs 2 bytes, 1 left"),
    (b"\x05", "needs 4 bytes, 0 left"),
    (b"\x02\x00", "zero byte at offset 1"),
    (b"\x00", "zero byte at offset 0"),
])
def test_cobs_bad_frames_refused(encoded, match):
    with pytest.raises(ValueError, match=match):
        host.cobs_decode(encoded)


def test_frame_round_trip_and_refusals():
    body = bytes([1, 2, 0, 0, 255])
    frame = host.encode_frame(body)
    assert frame.endswith(b"\x00") and 0 not in frame[:-1]
    assert host.decode_frame(frame) == body
    assert host.decode_frame(frame[:-1]) == body
    broken = bytearray(frame)
    broken[2] = broken[2] % 255 + 1
    with pytest.raises(ValueError, match="CRC"):
        host.decode_frame(bytes(broken))
    with pytest.raises(ValueError, match="no CRC"):
        host.decode_frame(host.cobs_encode(b"\x12") + b"\x00")
    with pytest.raises(ValueError, match="COBS"):
        host.decode_frame(frame[:-2] + b"\x00")


def test_frame_splitter():
    a, b = host.status_request(tag=1), host.info_request(tag=2)
    splitter = host.FrameSplitter()
    stream = b"\x00" + a + b"\x00\x00" + b
    got = splitter.feed(stream[:5]) + splitter.feed(stream[5:-3])
    assert splitter.pending == b[:-3]
    got += splitter.feed(stream[-3:])
    assert got == [a, b]


def test_requests_layout():
    config = get_config("sim-small")
    frame = host.write_request(Memory.SPIKES, 0x0234, [0xBEEF, 1], config=config, tag=9)
    assert host.decode_frame(frame) == bytes([Command.WRITE, 9, Memory.SPIKES, 0x34, 0x02, 0,
                                              0, 2, 0, 0xEF, 0xBE, 1, 0])
    frame = host.read_request(Memory.VALUES, 5, 3, config=config, tag=0xFF)
    assert host.decode_frame(frame) == bytes([Command.READ, 0xFF, Memory.VALUES, 5, 0, 0, 0,
                                              3, 0])
    assert host.decode_frame(host.start_request(2, 0x103)) == bytes([Command.START, 0, 2, 0,
                                                                     3, 1])
    assert host.decode_frame(host.start_request()) == bytes([Command.START, 0, 0, 0, 0, 0])
    assert host.decode_frame(host.cycles_request(0x201, tag=4)) == bytes([Command.CYCLES, 4,
                                                                          1, 2])
    for builder, command in ((host.status_request, Command.STATUS),
                             (host.reset_request, Command.RESET),
                             (host.info_request, Command.INFO)):
        assert host.decode_frame(builder(tag=7)) == bytes([command, 7])
    assert host.decode_frame(host.request(0x55, b"\x00\x01", tag=3)) == b"\x55\x03\x00\x01"


def test_request_refusals():
    config = get_config("sim-small")
    depth = config.values_depth
    with pytest.raises(ValueError, match="past its depth"):
        host.read_request(Memory.VALUES, depth - 1, 2, config=config)
    limit = host.max_words(config, Memory.VALUES)
    with pytest.raises(ValueError, match=f"1 .. {limit}"):
        host.read_request(Memory.VALUES, 0, limit + 1, config=config)
    with pytest.raises(ValueError, match="1 .. "):
        host.write_request(Memory.PROGRAM, 0, [], config=config)
    with pytest.raises(ValueError, match="address"):
        host.read_request(Memory.PROGRAM, -1, 1, config=config)
    with pytest.raises(ValueError, match="tag"):
        host.status_request(tag=256)
    with pytest.raises(ValueError, match="stop"):
        host.start_request(0, 1 << 16)
    with pytest.raises(TypeError, match="layer"):
        host.cycles_request(1.5)
    with pytest.raises(ValueError):
        host.write_request(8, 0, [1], config=config)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_words_round_trip_every_memory(name):
    config = get_config(name)
    rng = random.Random(name)
    specs = memory_map(config)
    for memory in Memory:
        spec = specs[memory.name.lower()]
        size = host.word_bytes(config, memory)
        assert host.row_bits(config, memory) == spec.word_bits
        assert size == -(-spec.word_bits // 8)
        assert host.max_words(config, memory) * size <= host.MAX_DATA
        if memory in (Memory.PROGRAM, Memory.SPIKES):
            top = (1 << spec.element_bits) - 1
            rows = [0, top, 1 << (spec.element_bits - 1)]
            rows += [rng.randrange(top + 1) for _ in range(10)]
        else:
            lo, hi = signed_range(spec.element_bits)
            rows = [[lo] * spec.lanes, [hi] * spec.lanes, [-1] * spec.lanes,
                    [lo, hi] * (spec.lanes // 2) + [0] * (spec.lanes % 2)]
            rows += [[rng.randint(lo, hi) for _ in range(spec.lanes)] for _ in range(10)]
        rows = rows[:spec.depth]
        data = host.encode_words(config, memory, rows)
        assert len(data) == len(rows) * size
        assert host.decode_words(config, memory, data) == rows
        # The first word's bits: lane l at bits l * element_bits, two's complement, LE bytes.
        word = int.from_bytes(data[:size], "little")
        if memory in (Memory.PROGRAM, Memory.SPIKES):
            assert word == rows[0]
        else:
            mask = (1 << spec.element_bits) - 1
            assert word == sum((v & mask) << (l * spec.element_bits)
                               for l, v in enumerate(rows[0]))
        request = host.write_request(memory, spec.depth - len(rows), rows, config=config)
        assert host.decode_frame(request)[9:] == data


def test_words_refusals():
    config = get_config("sim-small")
    with pytest.raises(ValueError, match="weights row 1 lane 2: 128"):
        host.encode_words(config, Memory.WEIGHTS, [[0] * 8, [0, 0, 128] + [0] * 5])
    with pytest.raises(ValueError, match="weights row 0 has 7 lanes, not 8"):
        host.encode_words(config, Memory.WEIGHTS, [[0] * 7])
    with pytest.raises(ValueError, match="spikes word 0"):
        host.encode_words(config, Memory.SPIKES, [1 << 16])
    with pytest.raises(ValueError, match="spikes word 0"):
        host.encode_words(config, Memory.SPIKES, [-1])
    with pytest.raises(ValueError, match="not whole"):
        host.decode_words(config, Memory.BIASES, bytes(25))


def test_answers():
    frame = host.answer_frame(Command.READ, 0x42, Error.OK, b"\x00\x01\x02")
    answer = host.parse_answer(frame)
    assert answer == host.Answer(Command.READ, 0x42, Error.OK, b"\x00\x01\x02") and answer.ok
    assert host.decode_frame(frame)[:3] == bytes([0x82, 0x42, 0])
    answer = host.parse_answer(host.answer_frame(0, 0, Error.BAD_CHECKSUM))
    assert (answer.command, answer.tag, answer.error, answer.payload) == (
        0, 0, Error.BAD_CHECKSUM, b"")
    assert not answer.ok
    assert host.parse_answer(host.answer_frame(0x55, 1, Error.UNKNOWN_COMMAND)).command == 0x55
    for body, match in ((b"\x82\x00", "body of 2 bytes"), (b"\x02\x00\x00", "no answer flag"),
                        (b"\x82\x00\x63", "unknown error code 99"),
                        (b"\x82\x00\x05\x01", "ADDRESS_RANGE with a 1-byte payload")):
        with pytest.raises(ValueError, match=match):
            host.parse_answer(host.encode_frame(body))
    frame = bytearray(host.answer_frame(Command.STATUS, 0, Error.OK, bytes(8)))
    frame[3] = frame[3] % 255 + 1       # another non-zero byte: COBS intact, CRC not
    with pytest.raises(ValueError, match="CRC"):
        host.parse_answer(bytes(frame))


def test_status_cycles_info_payloads():
    status = host.Status(busy=True, done=False, error=Error.NO_END, layer=0x1234,
                         cycles=0xDEADBEEF)
    payload = host.status_payload(status)
    assert payload == bytes([1, 11, 0x34, 0x12, 0xEF, 0xBE, 0xAD, 0xDE])
    assert host.parse_status(payload) == status
    assert host.parse_status(bytes([2, 0]) + bytes(6)).done
    assert host.parse_cycles(host.cycles_payload(123456)) == 123456
    with pytest.raises(ValueError, match="8 bytes, not 7"):
        host.parse_status(bytes(7))
    with pytest.raises(ValueError, match="4 bytes, not 5"):
        host.parse_cycles(bytes(5))
    config = get_config("ulx3s-85f")
    payload = host.info_payload(config)
    assert len(payload) == 51 and payload[:3] == bytes([FORMAT_VERSION, 16, 32])
    info = host.parse_info(payload)
    assert info.memories[Memory.MEMBRANES] == host.MemoryInfo(1024, 512)
    assert info.memories[Memory.PROGRAM] == host.MemoryInfo(config.program_depth, 32)
    assert info.matches(config) and not info.matches(get_config("sim-small"))
    with pytest.raises(ValueError, match="51 bytes"):
        host.parse_info(payload[:-1])


def test_limits():
    assert host.MAX_PAYLOAD == host.ADDRESS_HEADER + host.MAX_DATA
    assert host.MAX_PACKET == host.MAX_PAYLOAD + 4
    config = get_config("ulx3s-85f")
    rows = [[0] * 16] * host.max_words(config, Memory.MEMBRANES)
    body = host.decode_frame(host.write_request(Memory.MEMBRANES, 0, rows, config=config))
    assert len(body) + 2 <= host.MAX_PACKET


def test_check_request_order():
    config = get_config("sim-small")
    check = lambda frame, **kw: host.check_request(config, frame, **kw)  # noqa: E731
    ok = host.write_request(Memory.BIASES, 3, [[1] * 8], config=config, tag=5)
    assert check(ok) == (Command.WRITE, 5, Error.OK)
    assert check(ok, busy=True) == (Command.WRITE, 5, Error.BUSY)
    assert check(b"\x00") is None
    assert check(ok[:-3] + b"\x00") == (0, 0, Error.BAD_FRAME)              # truncated group
    assert check(host.cobs_encode(b"\x01\x02\x03") + b"\x00") == (0, 0, Error.BAD_FRAME)
    broken = bytearray(ok)
    broken[-2] = broken[-2] % 255 + 1
    assert check(bytes(broken)) == (0, 0, Error.BAD_CHECKSUM)
    assert check(host.request(0x55, tag=1)) == (0x55, 1, Error.UNKNOWN_COMMAND)
    assert check(host.request(0, tag=1)) == (0, 1, Error.UNKNOWN_COMMAND)
    assert check(host.request(Command.STATUS, b"\x00")) == (Command.STATUS, 0, Error.BAD_LENGTH)
    assert check(host.request(Command.START, b"\x00" * 3)) == (Command.START, 0,
                                                               Error.BAD_LENGTH)
    head = lambda memory, address, count: (bytes([memory]) + address.to_bytes(4, "little")
                                           + count.to_bytes(2, "little"))
    assert check(host.request(Command.READ, head(8, 0, 1))) == (Command.READ, 0,
                                                                Error.BAD_MEMORY)
    assert check(host.request(Command.READ, head(8, 0, 1)[:6])) == (Command.READ, 0,
                                                                    Error.BAD_LENGTH)
    assert check(host.request(Command.READ, head(7, 0, 0)))[2] == Error.BAD_LENGTH
    assert check(host.request(Command.READ, head(7, 0, 33)))[2] == Error.BAD_LENGTH
    assert check(host.request(Command.READ, head(7, 0, 9)))[2] == Error.ADDRESS_RANGE
    assert check(host.request(Command.READ, head(7, 0xFFFFFFFF, 1)))[2] == Error.ADDRESS_RANGE
    assert check(host.request(Command.READ, head(7, 7, 1)))[2] == Error.OK
    assert check(host.request(Command.WRITE, head(2, 0, 1) + bytes(23)))[2] == Error.BAD_LENGTH
    assert check(host.request(Command.WRITE, head(2, 0, 2) + bytes(24)))[2] == Error.BAD_LENGTH
    assert check(host.request(Command.WRITE, head(2, 128, 1) + bytes(24)))[2] == (
        Error.ADDRESS_RANGE)
    big = host.request(Command.WRITE, head(1, 0, 1) + bytes(host.MAX_DATA + 1))
    assert check(big)[2] == Error.BAD_LENGTH
    assert check(host.reset_request(), busy=True)[2] == Error.OK
    assert check(host.status_request(), busy=True)[2] == Error.OK
