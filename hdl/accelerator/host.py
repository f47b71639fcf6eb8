"""The accelerator's host port: the byte streams of the host protocol
(:mod:`spikeforge.contract.host`: COBS frames, CRC-16, commands) to the memories and the
sequencer.

::

    i ─▶ COBS decode ─▶ CRC, header, packet buffer ─▶ checks ─▶ WRITE commit ─▶ memory ports
                                                          │      READ words ◀─ memory ports
    o ◀─ FIFO ◀─ buffer ◀─ COBS encode (in place) ◀─ CRC ◀─ answer body (header + payload)
                                                          └─▶ control (START, RESET, STATUS,
                                                              CYCLES) ◀─▶ sequencer

Receive
    Bytes are taken one per cycle (``i.ready`` is high) until a frame's ``0x00``; a ``0x00``
    with no byte before it (an empty frame) is dropped. Each byte is COBS-decoded on the fly
    into the packet buffer (at most :data:`~spikeforge.contract.host.MAX_PACKET` bytes are
    kept; a longer packet is BAD_LENGTH) while the CRC runs over every decoded byte (a packet
    with its CRC leaves 0) and the first 9 bytes (command, tag, memory, address, count / first,
    stop / layer) are kept in registers. ``i.ready`` then stays low until the answer's last
    byte has been queued: the host sends one request at a time and waits for its answer.
Check
    A few cycles of registered checks in the order of the contract (BAD_FRAME, BAD_CHECKSUM,
    UNKNOWN_COMMAND, BAD_LENGTH, BAD_MEMORY, BAD_LENGTH, ADDRESS_RANGE, BUSY): nothing is
    written, started or reset unless every check passed.
Execute
    WRITE reads the words' bytes back from the buffer (one per cycle) into the memory's row
    register (one shift register per memory, beside it) and writes each word to its memory as
    it completes; READ reads the memory, one word per ``word_bytes`` cycles (a 1-byte word
    takes 2); START pulses ``control.start`` and answers the sequencer's ``check_error`` on
    ``check_done``; RESET pulses ``control.reset``; STATUS and CYCLES sample the control
    inputs.
Answer
    The answer body (3 header bytes; then a table: INFO's constants, or the bytes STATUS and
    CYCLES sampled; then READ's words, each shifted out of its memory's row register a byte per
    cycle into a byte FIFO, a read issued only when the FIFO has room for its whole word) goes
    one byte per cycle through a 2-entry queue, a CRC and a COBS encoder that writes in place
    into the packet buffer (each group's code byte written back when the group closes; a full
    254-byte group costs one extra cycle), while a streamer already sends the closed groups
    through an 8-byte FIFO to ``o``, then ``0x00``. ``o`` runs at one byte per cycle while
    ``o.ready`` is high and the encoder is ahead (COBS needs up to 254 bytes of look-ahead).

Buffer: :data:`BUFFER_BYTES` bytes as two banks (even and odd addresses) of 1024 × 8-bit
:class:`~spikeforge.hdl.memory.RegisteredReadMemory` (read latency 2; one DP16KD each on ECP5,
read through its output register), both ports driven from registers. The request and then
its answer share it.

Memory ports: driven from registers (``r_addr``, ``r_en``, ``w_en``; ``w_addr`` and ``w_data``
from the commit's registers), only between the checks of a WRITE or READ (not busy) and its
answer; ``r_en`` and ``w_en`` are low otherwise. Timing: every path is at most a few LUTs
from a register (ECP5, >= 150 MHz); no multiplier (the byte count of a WRITE is shifts and
adds).
"""

import operator
from functools import reduce

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from spikeforge.contract import host as protocol
from spikeforge.contract.program import Command, Error, Memory, memory_map
from spikeforge.contract.sizes import ceil_div

from ..memory import RegisteredReadMemory
from .ports import READ_LATENCY, address_bits, memory_port

__all__ = ["HostPort", "control_signature", "BUFFER_BYTES", "crc16_step"]

#: Bytes of the packet buffer (two banks of 1024).
BUFFER_BYTES = 2048
_BANK_DEPTH = BUFFER_BYTES // 2
# Bytes of the request kept in registers: command, tag, memory, address u32, count u16.
_HEADER_BYTES = protocol.REQUEST_HEADER + protocol.ADDRESS_HEADER
_FIFO_DEPTH = 8
# Bytes of the answer's table: the header and INFO's payload (the longest).
_TABLE_MAX = 3 + 3 + 6 * len(Memory)
_MEMORIES = tuple(Memory)


def control_signature():
    """The host port's side of its link to the sequencer (the sequencer has it flipped).

    Members
    -------
    start : Out(1)
        One-cycle pulse: START with every check passed (the sequencer is idle).
    first, stop : Out(16)
        START's descriptor range; stable from ``start`` until ``check_done``.
    check_done : In(1)
        One-cycle pulse answering ``start``: the program check is over (in the cycle of
        ``start`` or any later one).
    check_error : In(4)
        With ``check_done``: the check's :class:`~spikeforge.contract.program.Error`
        (OK: the run has begun).
    reset : Out(1)
        One-cycle pulse: RESET (stop the run, clear the status; memories keep their contents).
    busy, done : In(1)
        The program runs; the last run reached its end (or its ``stop``).
    error : In(4)
        The last START's error code.
    layer : In(16)
        The descriptor being run.
    cycles : In(32)
        Cycles since the last START.
    cycles_layer : Out(16)
        A descriptor index; its cycle count is on ``cycles_value`` two cycles later.
    cycles_value : In(32)
    """
    return wiring.Signature({
        "start": Out(1), "first": Out(16), "stop": Out(16),
        "check_done": In(1), "check_error": In(4),
        "reset": Out(1),
        "busy": In(1), "done": In(1), "error": In(4), "layer": In(16), "cycles": In(32),
        "cycles_layer": Out(16), "cycles_value": In(32),
    })


def _crc_linear():
    """CRC-16/CCITT-FALSE one byte step as GF(2) linear terms: for every next state bit, the
    set of state bits (``("c", i)``) and data bits (``("d", j)``) it is the XOR of."""
    state = [frozenset({("c", i)}) for i in range(16)]
    for k in range(7, -1, -1):
        top = state[15] ^ frozenset({("d", k)})
        shifted = [frozenset()] + state[:15]
        state = [shifted[i] ^ top if (0x1021 >> i) & 1 else shifted[i] for i in range(16)]
    return state


_CRC_TERMS = _crc_linear()


def crc16_step(crc, byte):
    """The CRC-16/CCITT-FALSE register after ``byte`` (8 bits) from ``crc`` (16 bits): an XOR
    network, no table (:func:`spikeforge.contract.host.crc16` one byte at a time)."""
    bits = []
    for terms in _CRC_TERMS:
        value = Const(0, 1)
        for kind, index in sorted(terms):
            value = value ^ (crc[index] if kind == "c" else byte[index])
        bits.append(value)
    return Cat(*bits)


def _times(value, constant):
    """``value * constant`` by shifts and adds (no multiplier)."""
    terms = [value << k for k in range(constant.bit_length()) if constant >> k & 1]
    out = terms[0]
    for term in terms[1:]:
        out = out + term
    return out


class HostPort(wiring.Component):
    """The host port of the accelerator of ``config`` (see the module docstring).

    Parameters
    ----------
    config : spikeforge.contract.configs.Config

    Members
    -------
    i : In(stream.Signature(8))
        Request frames (:mod:`spikeforge.contract.host`).
    o : Out(stream.Signature(8))
        Answer frames.
    program, weights, biases, thresholds, spikes, values, membranes, scores :
            Out(memory_port(config, memory))
        One port per :class:`~spikeforge.contract.program.Memory`, named after it.
    control : Out(control_signature())
        To the sequencer.
    """

    def __init__(self, config):
        self._config = config
        self._specs = memory_map(config)
        for memory in _MEMORIES:
            spec = self._specs[memory.name.lower()]
            if not 1 <= spec.depth <= 1 << 32:
                raise ValueError(f"config {config.name}: {memory.name.lower()}_depth must be "
                                 f"in 1 .. 2**32, not {spec.depth}")
            if protocol.max_words(config, memory) < 1:
                raise ValueError(f"config {config.name}: a {memory.name.lower()} word of "
                                 f"{protocol.word_bytes(config, memory)} bytes exceeds "
                                 f"MAX_DATA ({protocol.MAX_DATA})")
        self._info = protocol.info_payload(config)
        longest = max(protocol.max_words(config, m) * protocol.word_bytes(config, m)
                      for m in _MEMORIES)
        answer = 3 + max(longest, len(self._info)) + 2
        if max(protocol.MAX_PACKET, answer + ceil_div(answer, 254) + 1) > BUFFER_BYTES:
            raise ValueError("MAX_PACKET and the longest answer must fit BUFFER_BYTES")
        members = {"i": In(stream.Signature(8)), "o": Out(stream.Signature(8))}
        for memory in _MEMORIES:
            members[memory.name.lower()] = Out(memory_port(config, memory))
        members["control"] = Out(control_signature())
        super().__init__(members)

    config = property(lambda self: self._config)

    def elaborate(self, platform):
        m = Module()
        c = self._config
        specs = self._specs
        ctl = self.control
        ports = [getattr(self, memory.name.lower()) for memory in _MEMORIES]
        word_bytes = [protocol.word_bytes(c, memory) for memory in _MEMORIES]
        max_words = [protocol.max_words(c, memory) for memory in _MEMORIES]
        depths = [specs[memory.name.lower()].depth for memory in _MEMORIES]
        max_word_bytes = max(word_bytes)
        addr_bits = max(address_bits(d) for d in depths) + 1

        encoding = Signal()                 # the answer phase runs

        # -- the packet buffer: two banks (even, odd addresses), registered ports ----------
        # Both ports are driven from registers: a write lands one cycle after it is asked for,
        # a read's byte is on buf_rdata three cycles after it is asked for (buf_rvalid).
        banks = []
        for k in range(2):
            bank = RegisteredReadMemory(shape=8, depth=_BANK_DEPTH, style="block")
            m.submodules[f"buffer{k}"] = bank
            banks.append(bank)
        wr_en, wr_addr, wr_data = Signal(), Signal(range(BUFFER_BYTES)), Signal(8)
        rd_en, rd_addr = Signal(), Signal(range(BUFFER_BYTES))
        bank_addr = Signal(range(_BANK_DEPTH))
        bank_data = Signal(8)
        bank_raddr = Signal(range(_BANK_DEPTH))
        bank_ren = Signal()
        rv2, rv3 = Signal(), Signal()
        rsel = Signal(3)                    # the bank of the reads 1, 2, 3 cycles ago
        m.d.sync += [bank_addr.eq(wr_addr[1:]), bank_data.eq(wr_data),
                     bank_raddr.eq(rd_addr[1:]), bank_ren.eq(rd_en),
                     rv2.eq(bank_ren), rv3.eq(rv2), rsel.eq(Cat(rd_addr[0], rsel[:2]))]
        bank_wen, bank_wsel = Signal(), Signal()
        m.d.sync += [bank_wen.eq(wr_en), bank_wsel.eq(wr_addr[0])]
        for k, bank in enumerate(banks):
            m.d.comb += [bank.w_addr.eq(bank_addr), bank.w_data.eq(bank_data),
                         bank.w_en.eq(bank_wen & (bank_wsel == k)), bank.r_addr.eq(bank_raddr),
                         bank.r_en.eq(bank_ren)]
        buf_rvalid = rv3
        buf_rdata = Signal(8)
        m.d.comb += buf_rdata.eq(Mux(rsel[2], banks[1].r_data, banks[0].r_data))
        buf_inflight = [bank_ren, rv2, rv3]

        # -- receive: stage A (take), B (COBS decode), C (store, CRC, header) --------------
        recv_open = Signal(init=1)          # i.ready
        started = Signal()                  # a non-zero byte since the last 0x00
        a_valid, a_delim, a_byte = Signal(), Signal(), Signal(8)
        remaining = Signal(8)               # data bytes left in the COBS group
        pending_zero = Signal()             # the group ends with an implied zero
        b_valid, b_delim, b_cut, b_byte = Signal(), Signal(), Signal(), Signal(8)
        rx_len = Signal(range(protocol.MAX_PACKET + 1))
        rx_over = Signal()
        rx_crc = Signal(16, init=0xFFFF)
        rx_cut = Signal()
        header = [Signal(8, name=f"header{k}") for k in range(_HEADER_BYTES)]
        rx_done = Signal()                  # one cycle: a frame ended

        take = self.i.valid & self.i.ready
        m.d.comb += self.i.ready.eq(recv_open)
        is_zero = self.i.payload == 0
        m.d.sync += [a_valid.eq(take & ~is_zero), a_delim.eq(take & is_zero & started),
                     a_byte.eq(self.i.payload)]
        with m.If(take):
            m.d.sync += started.eq(~is_zero)
            with m.If(is_zero & started):
                m.d.sync += recv_open.eq(0)

        m.d.sync += [b_valid.eq(0), b_delim.eq(a_delim), b_cut.eq(remaining != 0)]
        with m.If(a_valid):
            with m.If(remaining == 0):
                m.d.sync += [b_valid.eq(pending_zero), b_byte.eq(0),
                             remaining.eq(a_byte - 1), pending_zero.eq(a_byte != 0xFF)]
            with m.Else():
                m.d.sync += [b_valid.eq(1), b_byte.eq(a_byte), remaining.eq(remaining - 1)]
        with m.If(a_delim):
            m.d.sync += [remaining.eq(0), pending_zero.eq(0)]

        rx_full = Signal()                  # rx_len == MAX_PACKET
        with m.If(b_valid):
            m.d.sync += rx_crc.eq(crc16_step(rx_crc, b_byte))
            with m.If(rx_full):
                m.d.sync += rx_over.eq(1)
            with m.Else():
                m.d.sync += [rx_len.eq(rx_len + 1),
                             rx_full.eq(rx_len == protocol.MAX_PACKET - 1)]
            for k, reg in enumerate(header):
                with m.If(rx_len == k):
                    m.d.sync += reg.eq(b_byte)
        m.d.sync += rx_done.eq(b_delim)
        with m.If(b_delim):
            m.d.sync += rx_cut.eq(b_cut)

        # The request's fields (registers; meaningful once the length checks passed).
        cmd, tag = header[0], header[1]
        mem_id = header[2]
        mem = Signal(3)
        m.d.comb += mem.eq(mem_id[:3])
        address = Cat(*header[3:7])
        count = Cat(header[7], header[8])
        first, stop = Cat(header[2], header[3]), Cat(header[4], header[5])
        layer = Cat(header[2], header[3])

        # -- checks, registered, in four steps -------------------------------------------
        fixed = {Command.READ: protocol.ADDRESS_HEADER, Command.START: 4, Command.STATUS: 0,
                 Command.CYCLES: 2, Command.RESET: 0, Command.INFO: 0}
        packet_min = protocol.REQUEST_HEADER + 2
        bad_frame, bad_crc = Signal(name="bad_frame"), Signal(name="bad_crc")
        known, length_bad = Signal(name="known"), Signal(name="length_bad")
        mem_bad, is_mem_cmd = Signal(name="mem_bad"), Signal(name="is_mem_cmd")
        count_zero, count_max = Signal(name="count_zero"), Signal(16, name="count_max")
        count_bad = Signal(name="count_bad")
        is_cmd = {command: Signal(name=f"is_{command.name.lower()}") for command in Command}
        data_bytes = Signal(range(protocol.MAX_PACKET + 1))   # len - 11: bytes of words
        end = Signal(34)                                    # address + count
        distinct = sorted(set(word_bytes))
        products = [Signal(16 + b.bit_length(), name=f"count_x{b}") for b in distinct]
        word_len = Signal(range(max_word_bytes + 1))        # bytes of a word of mem
        word_len_m1 = Signal(range(max_word_bytes))
        word_len_one = Signal()
        depth = Signal(33)
        data_len = Signal(16 + max_word_bytes.bit_length())  # count * word_bytes[mem]
        range_bad, wlen_bad = Signal(name="range_bad"), Signal(name="wlen_bad")
        busy = Signal(name="busy")
        error = Signal(4)
        error_zero = Signal()
        go = {command: Signal(name=f"go_{command.name.lower()}") for command in Command}

        def by_memory(target, values):
            with m.Switch(mem):
                for k, value in enumerate(values):
                    with m.Case(k):
                        m.d.sync += target.eq(value)

        # -- the answer's body source ------------------------------------------------------
        # Bytes 0..2: the header; then a table (INFO constants, or STATUS / CYCLES bytes
        # sampled into `payload`); then, for READ, the words from the byte FIFO. One byte per
        # cycle into a 2-entry queue (`sb`) that the encoder takes from; the source looks only
        # at the queue's registered count. Each byte's zero flag travels with it.
        answer_cmd = Signal(8)
        answer_tag = Signal(8)
        tag_zero = Signal()
        payload = [Signal(8, name=f"payload{k}") for k in range(8)]
        payload_zero = [Signal(name=f"payload{k}_zero") for k in range(8)]
        info_table = Signal()               # the table is INFO's
        table_len = Signal(range(_TABLE_MAX + 1))
        src_index = Signal(range(_TABLE_MAX + 1))
        src_at_end = Signal()               # src_index == table_len - 1
        src_words = Signal()                # words follow the table (READ)
        src_state = Signal(2)               # 0 table, 1 words, 2 done
        header_bytes = [(answer_cmd, Const(0)), (answer_tag, tag_zero),
                        (Cat(error, Const(0, 8 - len(error))), error_zero)]
        info_bytes = header_bytes + [(Const(b, 8), Const(int(b == 0))) for b in self._info]
        small_bytes = header_bytes + list(zip(payload, payload_zero))
        table, table_zero = Signal(8), Signal()
        with m.Switch(src_index):
            for k in range(len(info_bytes)):
                with m.Case(k):
                    value, zero = info_bytes[k]
                    if k < len(small_bytes):
                        value = Mux(info_table, value, small_bytes[k][0])
                        zero = Mux(info_table, zero, small_bytes[k][1])
                    m.d.comb += [table.eq(value), table_zero.eq(zero)]

        # The source's register (pre_*), then the queue: head (h_*) and second (s_*) entries,
        # n of them valid.
        pre_valid, pre_byte, pre_zero, pre_last = Signal(), Signal(8), Signal(), Signal()
        n = Signal(2)
        h_byte, h_zero, h_last = Signal(8), Signal(), Signal()
        s_byte, s_zero, s_last = Signal(8), Signal(), Signal()
        in_byte, in_zero, in_last = pre_byte, pre_zero, pre_last
        put = Signal()                      # pre_* goes into the queue this cycle
        m.d.comb += put.eq(pre_valid & (n != 2))
        sb_take = Signal()                  # the encoder takes the head this cycle
        with m.Switch(Cat(sb_take, n)):
            with m.Case(0b000, 0b011):      # empty, or one taken: in becomes the head
                m.d.sync += [h_byte.eq(in_byte), h_zero.eq(in_zero), h_last.eq(in_last)]
            with m.Case(0b010):             # one kept: in becomes the second
                m.d.sync += [s_byte.eq(in_byte), s_zero.eq(in_zero), s_last.eq(in_last)]
            with m.Case(0b101):             # two, one taken: the second becomes the head
                m.d.sync += [h_byte.eq(s_byte), h_zero.eq(s_zero), h_last.eq(s_last),
                             s_byte.eq(in_byte), s_zero.eq(in_zero), s_last.eq(in_last)]
        m.d.sync += n.eq(n + put - sb_take)

        # -- READ: memory reads → a shift register per memory → a byte FIFO ---------------
        # Reads are issued at least word_len cycles apart, and only with room in the byte
        # FIFO for the whole word (`credit`: its free places not yet promised). Each memory
        # has its own row register (`rows`, below; shared with WRITE), so the wide data never
        # leaves the memory's neighbourhood: the word read arrives in it READ_LATENCY + 2
        # cycles after issue_word, it shifts by a byte every cycle while reading, and the
        # registered AND-OR of the rows' low bytes (`out_byte`, one-hot selects) hands out
        # byte k in the k-th cycle after. No wide register depends on the encoder's stalls.
        byte_fifo_depth = 2 * max_word_bytes + 8
        m.submodules.read_bytes = read_bytes = SyncFIFOBuffered(width=8, depth=byte_fifo_depth)
        raddr = Signal(addr_bits)
        words_to_issue = Signal(17)
        issue_more = Signal()               # words_to_issue != 0
        mr = [Signal(name=f"mr{k + 1}") for k in range(READ_LATENCY + 2)]  # issued k + 1 ago
        mr1, taken = mr[0], mr[-1]
        reading = Signal()
        gap = Signal(range(max_word_bytes))  # cycles until the next read may be issued
        gap_zero = Signal()
        credit = Signal(range(byte_fifo_depth + 1))
        # credit >= word_len one cycle ago: enough, as no read follows another in the next
        # cycle (gap for words of 2 bytes or more, the ~mr1 term for 1-byte words).
        credit_ok = Signal()
        emit_left = Signal(range(max_word_bytes + 1))   # bytes of the word still to hand out
        emitting = Signal()
        load = [Signal(name=f"load_{memory.name.lower()}") for memory in _MEMORIES]
        chosen = [Signal(name=f"chosen_{memory.name.lower()}") for memory in _MEMORIES]
        rows = [Signal(8 * wb, name=f"row_{memory.name.lower()}", reset_less=True)
                for memory, wb in zip(_MEMORIES, word_bytes)]
        out_byte = Signal(8)
        m.d.sync += [flag.eq(mr[READ_LATENCY - 1] & (mem == k)) for k, flag in enumerate(load)]
        m.d.sync += [flag.eq(mem == k) for k, flag in enumerate(chosen)]
        m.d.sync += out_byte.eq(reduce(operator.or_, [
            Mux(flag, row[:8], 0) for flag, row in zip(chosen, rows)]))
        issue_word = Signal()
        m.d.comb += issue_word.eq(reading & issue_more & gap_zero & credit_ok
                                  & ~(mr1 & word_len_one))
        # The memory ports are driven from registers (one cycle after issue_word), so nothing
        # of the host port's logic adds to the memories' address and enable paths.
        for k, port in enumerate(ports):
            m.d.sync += [port.r_addr.eq(raddr), port.r_en.eq(issue_word & (mem == k))]
        m.d.sync += [mr1.eq(issue_word), *[mr[k].eq(mr[k - 1]) for k in range(1, len(mr))]]
        with m.If(issue_word):
            m.d.sync += [raddr.eq(raddr + 1), words_to_issue.eq(words_to_issue - 1),
                         issue_more.eq(words_to_issue != 1), gap.eq(word_len_m1),
                         gap_zero.eq(word_len_one)]
        with m.Elif(~gap_zero):
            m.d.sync += [gap.eq(gap - 1), gap_zero.eq(gap == 1)]
        # A byte taken from the FIFO frees its place a cycle later (registered: conservative).
        popped = Signal()
        m.d.sync += popped.eq(read_bytes.r_en & read_bytes.r_rdy)
        m.d.sync += [credit.eq(credit - Mux(issue_word, word_len, 0) + popped),
                     credit_ok.eq(credit >= word_len)]
        with m.If(taken):
            m.d.sync += [emit_left.eq(word_len), emitting.eq(1)]
        with m.Elif(emitting):
            m.d.sync += [emit_left.eq(emit_left - 1), emitting.eq(emit_left != 1)]
        m.d.comb += [read_bytes.w_en.eq(emitting), read_bytes.w_data.eq(out_byte)]
        read_left = Signal.like(data_len)   # bytes of words the source has still to put
        read_last = Signal()                # read_left == 1

        # The source: the table, then the words, into pre_* whenever it is free.
        src_free = ~pre_valid | put
        table_step = encoding & src_free & (src_state == 0)
        words_step = encoding & src_free & (src_state == 1) & read_bytes.r_rdy
        with m.If(put):
            m.d.sync += pre_valid.eq(0)
        with m.If(table_step):
            m.d.sync += [pre_valid.eq(1), pre_byte.eq(table), pre_zero.eq(table_zero),
                         pre_last.eq(src_at_end & ~src_words),
                         src_index.eq(src_index + 1), src_at_end.eq(src_index == table_len - 2)]
            with m.If(src_at_end):
                m.d.sync += src_state.eq(Mux(src_words, 1, 2))
        with m.If(words_step):
            m.d.comb += read_bytes.r_en.eq(1)
            m.d.sync += [pre_valid.eq(1), pre_byte.eq(read_bytes.r_data),
                         pre_zero.eq(read_bytes.r_data == 0), pre_last.eq(read_last),
                         read_left.eq(read_left - 1), read_last.eq(read_left == 2)]
            with m.If(read_last):
                m.d.sync += src_state.eq(2)

        # -- WRITE: buffer bytes → words → memory writes -----------------------------------
        committing = Signal()
        commit_ptr = Signal(range(BUFFER_BYTES))
        commit_left = Signal.like(data_len)
        commit_more = Signal()              # commit_left != 0
        byte_in_word = Signal(range(max_word_bytes + 1))
        write_now = Signal()
        waddr = Signal(addr_bits)
        commit_ren = Signal()
        m.d.comb += commit_ren.eq(committing & commit_more)
        with m.If(commit_ren):
            m.d.sync += [commit_ptr.eq(commit_ptr + 1), commit_left.eq(commit_left - 1),
                         commit_more.eq(commit_left != 1)]
        m.d.sync += write_now.eq(0)
        for port in ports:
            m.d.sync += port.w_en.eq(0)
        with m.If(write_now):
            m.d.sync += waddr.eq(waddr + 1)
        # Registers of their own, not committing & buf_rvalid: commit_byte enables every
        # row register.
        c1, c2, commit_byte = Signal(), Signal(), Signal()
        m.d.sync += [c1.eq(commit_ren), c2.eq(c1), commit_byte.eq(c2)]
        with m.If(commit_byte):
            with m.If(byte_in_word == word_len_m1):
                m.d.sync += [byte_in_word.eq(0), write_now.eq(1)]
                for k, port in enumerate(ports):
                    m.d.sync += port.w_en.eq(mem == k)
            with m.Else():
                m.d.sync += byte_in_word.eq(byte_in_word + 1)
        # The row registers: a read word is loaded whole and shifted out a byte per cycle; a
        # written word is shifted in a byte per committed byte (at the top, so after
        # word_bytes[k] bytes row k holds it) and written from there.
        for k, (port, row, flag) in enumerate(zip(ports, rows, load)):
            bits = len(Value.cast(port.w_data))
            with m.If(flag):
                m.d.sync += row.eq(port.r_data)
            with m.Elif(reading | commit_byte):
                m.d.sync += row.eq(Cat(row[8:], buf_rdata))
            m.d.comb += [port.w_addr.eq(waddr), port.w_data.eq(row[:bits])]
        commit_busy = commit_ren | c1 | c2 | commit_byte | write_now

        # -- answer: CRC, in-place COBS encoder, streamer ----------------------------------
        # The CRC runs over each body byte as it enters the queue; its bytes' zero flags are
        # registered: final a cycle before the encoder can reach them (the last body byte is
        # taken from the queue one cycle after it was put, at the earliest).
        tx_crc = Signal(16, init=0xFFFF)
        crc_hi_zero, crc_lo_zero = Signal(), Signal()
        with m.If(put):
            m.d.sync += tx_crc.eq(crc16_step(tx_crc, pre_byte))
        m.d.sync += [crc_hi_zero.eq(tx_crc[8:] == 0), crc_lo_zero.eq(tx_crc[:8] == 0)]
        phase = Signal(2)                   # 0 body, 1 CRC high byte, 2 CRC low byte, 3 done
        enc_state = Signal(2)               # 0 run, 1 close a full group, 2 finish, 3 done
        code = Signal(8)
        code_full = Signal()                # code == 254: the next non-zero byte fills it
        codep = Signal(range(BUFFER_BYTES))
        wpos = Signal(range(BUFFER_BYTES))
        frame_end = Signal(range(BUFFER_BYTES))
        final_seen = Signal()
        enc_byte, enc_zero, enc_valid, enc_final = Signal(8), Signal(), Signal(), Signal()
        with m.Switch(phase):
            with m.Case(0):
                m.d.comb += [enc_byte.eq(h_byte), enc_zero.eq(h_zero), enc_valid.eq(n != 0)]
            with m.Case(1):
                m.d.comb += [enc_byte.eq(tx_crc[8:]), enc_zero.eq(crc_hi_zero),
                             enc_valid.eq(1)]
            with m.Case(2):
                m.d.comb += [enc_byte.eq(tx_crc[:8]), enc_zero.eq(crc_lo_zero),
                             enc_valid.eq(1), enc_final.eq(1)]
        encode = Signal()                   # a byte is encoded this cycle
        m.d.comb += [encode.eq(encoding & (enc_state == 0) & enc_valid),
                     sb_take.eq(encode & (phase == 0))]
        enc_wen, enc_waddr, enc_wdata = Signal(), Signal(range(BUFFER_BYTES)), Signal(8)
        with m.If(sb_take & h_last):
            m.d.sync += phase.eq(1)
        with m.If(encode & (phase != 0)):
            m.d.sync += phase.eq(phase + 1)
        with m.If(encode):
            m.d.comb += enc_wen.eq(1)
            with m.If(enc_zero):
                m.d.comb += [enc_waddr.eq(codep), enc_wdata.eq(code)]
                m.d.sync += [codep.eq(wpos), wpos.eq(wpos + 1), code.eq(1), code_full.eq(0)]
                with m.If(enc_final):
                    m.d.sync += enc_state.eq(2)
            with m.Else():
                m.d.comb += [enc_waddr.eq(wpos), enc_wdata.eq(enc_byte)]
                m.d.sync += wpos.eq(wpos + 1)
                with m.If(code_full):
                    m.d.sync += [enc_state.eq(1), final_seen.eq(enc_final)]
                with m.Else():
                    m.d.sync += [code.eq(code + 1), code_full.eq(code == 253)]
                    with m.If(enc_final):
                        m.d.sync += enc_state.eq(2)
        with m.Elif(encoding & (enc_state == 1)):
            # A full group: its code 0xFF; a new group only if more bytes follow.
            m.d.comb += [enc_wen.eq(1), enc_waddr.eq(codep), enc_wdata.eq(0xFF)]
            with m.If(final_seen):
                m.d.sync += [frame_end.eq(wpos), enc_state.eq(3)]
            with m.Else():
                m.d.sync += [codep.eq(wpos), wpos.eq(wpos + 1), code.eq(1), code_full.eq(0),
                             enc_state.eq(0)]
        with m.Elif(encoding & (enc_state == 2)):
            m.d.comb += [enc_wen.eq(1), enc_waddr.eq(codep), enc_wdata.eq(code)]
            m.d.sync += [frame_end.eq(wpos), enc_state.eq(3)]

        # Streamer: buffer bytes below the open group's code byte (or the frame's end) → FIFO
        # → o. `tx_credit` counts the FIFO's places not yet promised to a read or the 0x00.
        m.submodules.fifo = fifo = SyncFIFOBuffered(width=8, depth=_FIFO_DEPTH)
        m.d.comb += [self.o.valid.eq(fifo.r_rdy), self.o.payload.eq(fifo.r_data),
                     fifo.r_en.eq(self.o.ready)]
        tx_ptr = Signal(range(BUFFER_BYTES))
        safe = Signal(range(BUFFER_BYTES))  # the encoder's codep or frame end, registered
        enc_done = Signal()                 # enc_state == 3, registered
        # (0 until the encoder of this answer runs: enc_state still holds the last answer's.)
        m.d.sync += [safe.eq(Mux(encoding, Mux(enc_state == 3, frame_end, codep), 0)),
                     enc_done.eq(encoding & (enc_state == 3))]
        tx_credit = Signal(range(_FIFO_DEPTH + 1), init=_FIFO_DEPTH)
        tx_ren = Signal()
        m.d.comb += tx_ren.eq(encoding & (tx_ptr < safe) & (tx_credit != 0))
        with m.If(tx_ren):
            m.d.sync += tx_ptr.eq(tx_ptr + 1)
        # The 0x00 once every byte of the frame is queued: decided from registers (stable once
        # true: no read follows), gated with `encoding` (low from the cycle after it is sent).
        delimiter_due = Signal()
        m.d.sync += delimiter_due.eq(encoding & enc_done & (tx_ptr == safe)
                                     & ~Cat(*buf_inflight).any())
        send_delimiter = Signal()
        m.d.comb += send_delimiter.eq(encoding & delimiter_due & (tx_credit != 0))
        sent = Signal()                     # a byte left through o last cycle
        m.d.sync += [sent.eq(self.o.valid & self.o.ready),
                     tx_credit.eq(tx_credit - (tx_ren | send_delimiter) + sent)]
        with m.If(encoding & buf_rvalid):
            m.d.comb += [fifo.w_en.eq(1), fifo.w_data.eq(buf_rdata)]
        with m.Elif(send_delimiter):
            m.d.comb += [fifo.w_en.eq(1), fifo.w_data.eq(0)]

        # Buffer ports: the receiver and the encoder write, the commit and the streamer read.
        with m.If(encoding):
            m.d.comb += [wr_en.eq(enc_wen), wr_addr.eq(enc_waddr), wr_data.eq(enc_wdata),
                         rd_en.eq(tx_ren), rd_addr.eq(tx_ptr)]
        with m.Else():
            m.d.comb += [wr_en.eq(b_valid & ~rx_full), wr_addr.eq(rx_len), wr_data.eq(b_byte),
                         rd_en.eq(commit_ren), rd_addr.eq(commit_ptr)]

        # -- control outputs -----------------------------------------------------------------
        m.d.sync += [ctl.start.eq(0), ctl.reset.eq(0)]
        wait = Signal(2)

        def answer(size, *, info=False, with_words=False):
            # Start the answer: the header and `size` table bytes, then words or not.
            return [encoding.eq(1), table_len.eq(3 + size), info_table.eq(info),
                    src_words.eq(with_words), src_index.eq(0), src_at_end.eq(0),
                    src_state.eq(0), pre_valid.eq(0), n.eq(0), tx_crc.eq(0xFFFF), phase.eq(0),
                    enc_state.eq(0), code.eq(1),
                    code_full.eq(0), codep.eq(0), wpos.eq(1), final_seen.eq(0), tx_ptr.eq(0)]

        # The checks' combinational parts, outside the FSM so that no state decoding adds
        # to them: the length a command takes, and the error by the contract's priority.
        len_is = {size: Signal(name=f"len_is_{size}") for size in sorted(set(fixed.values()))}
        len_ge = Signal()
        fixed_len = Signal()
        m.d.comb += fixed_len.eq(
            (is_cmd[Command.WRITE] & len_ge)
            | Cat(*(is_cmd[command] & len_is[size] for command, size in fixed.items())).any())
        # `ok`: no check failed (the same as code_of == OK, with fewer levels).
        mem_fault = mem_bad | count_bad | wlen_bad | range_bad
        ok = (~bad_frame & ~bad_crc & known & ~length_bad & ~(is_mem_cmd & mem_fault)
              & ~(busy & (is_mem_cmd | is_cmd[Command.START])))
        code_of = Signal(4)
        with m.If(bad_frame):
            m.d.comb += code_of.eq(Error.BAD_FRAME)
        with m.Elif(bad_crc):
            m.d.comb += code_of.eq(Error.BAD_CHECKSUM)
        with m.Elif(~known):
            m.d.comb += code_of.eq(Error.UNKNOWN_COMMAND)
        with m.Elif(length_bad):
            m.d.comb += code_of.eq(Error.BAD_LENGTH)
        with m.Elif(is_mem_cmd & mem_bad):
            m.d.comb += code_of.eq(Error.BAD_MEMORY)
        with m.Elif(is_mem_cmd & (count_bad | wlen_bad)):
            m.d.comb += code_of.eq(Error.BAD_LENGTH)
        with m.Elif(is_mem_cmd & range_bad):
            m.d.comb += code_of.eq(Error.ADDRESS_RANGE)
        with m.Elif(busy & (is_mem_cmd | is_cmd[Command.START])):
            m.d.comb += code_of.eq(Error.BUSY)
        with m.Else():
            m.d.comb += code_of.eq(Error.OK)

        with m.FSM():
            with m.State("RECEIVE"):
                with m.If(rx_done):
                    m.next = "CHECK1"
            with m.State("CHECK1"):
                m.d.sync += [flag.eq(rx_len == packet_min + size)
                             for size, flag in len_is.items()]
                m.d.sync += [
                    len_ge.eq(rx_len >= packet_min + protocol.ADDRESS_HEADER),
                    bad_frame.eq(rx_cut | (rx_len < packet_min)),
                    bad_crc.eq(rx_crc != 0),
                    known.eq((cmd >= min(Command)) & (cmd <= max(Command))),
                    mem_bad.eq(mem_id >= len(Memory)),
                    data_bytes.eq(rx_len - (packet_min + protocol.ADDRESS_HEADER)),
                    end.eq(address + count),
                    busy.eq(ctl.busy),
                ]
                m.d.sync += [flag.eq(cmd == command) for command, flag in is_cmd.items()]
                for b, product in zip(distinct, products):
                    m.d.sync += product.eq(_times(count, b))
                m.d.sync += count_zero.eq(count == 0)
                by_memory(count_max, max_words)
                by_memory(word_len, word_bytes)
                by_memory(word_len_m1, [b - 1 for b in word_bytes])
                by_memory(word_len_one, [int(b == 1) for b in word_bytes])
                by_memory(depth, depths)
                m.next = "CHECK2"
            with m.State("CHECK2"):
                m.d.sync += [length_bad.eq(rx_over | ~fixed_len),
                             is_mem_cmd.eq(is_cmd[Command.WRITE] | is_cmd[Command.READ])]
                with m.Switch(mem):
                    for k, b in enumerate(word_bytes):
                        with m.Case(k):
                            m.d.sync += data_len.eq(products[distinct.index(b)])
                m.d.sync += [range_bad.eq(end > depth),
                             count_bad.eq(count_zero | (count > count_max))]
                # The receiver's counters are read: ready for the next frame.
                m.d.sync += [rx_len.eq(0), rx_full.eq(0), rx_over.eq(0), rx_crc.eq(0xFFFF)]
                m.next = "CHECK3"
            with m.State("CHECK3"):
                m.d.sync += wlen_bad.eq(is_cmd[Command.WRITE] & (data_bytes != data_len))
                m.next = "CHECK4"
            with m.State("CHECK4"):
                echo = ~bad_frame & ~bad_crc
                m.d.sync += [error.eq(code_of), error_zero.eq(ok),
                             answer_cmd.eq(Mux(echo, cmd, 0) | protocol.ANSWER_FLAG),
                             answer_tag.eq(Mux(echo, tag, 0)), tag_zero.eq(~echo | (tag == 0))]
                m.d.sync += [go[command].eq(ok & is_cmd[command]) for command in Command]
                # Whatever the command: the registers of every command's execution.
                m.d.sync += [
                    waddr.eq(address), commit_ptr.eq(_HEADER_BYTES), commit_left.eq(data_len),
                    commit_more.eq(1), byte_in_word.eq(0),
                    raddr.eq(address), words_to_issue.eq(count), issue_more.eq(1), gap.eq(0),
                    gap_zero.eq(1), credit.eq(byte_fifo_depth), credit_ok.eq(1),
                    read_left.eq(data_len), read_last.eq(data_len == 1),
                    ctl.first.eq(first), ctl.stop.eq(stop), ctl.cycles_layer.eq(layer),
                    wait.eq(0),
                ]
                m.next = "DISPATCH"
            with m.State("DISPATCH"):
                m.d.sync += [committing.eq(go[Command.WRITE]), reading.eq(go[Command.READ]),
                             ctl.start.eq(go[Command.START]), ctl.reset.eq(go[Command.RESET])]
                with m.If(go[Command.WRITE]):
                    m.next = "COMMIT"
                with m.Elif(go[Command.READ]):
                    m.next = "ANSWER_READ"
                with m.Elif(go[Command.START]):
                    m.next = "START_WAIT"
                with m.Elif(go[Command.CYCLES]):
                    m.next = "CYCLES_WAIT"
                with m.Elif(go[Command.STATUS]):
                    m.next = "ANSWER_STATUS"
                with m.Elif(go[Command.INFO]):
                    m.next = "ANSWER_INFO"
                with m.Else():              # errors, RESET
                    m.next = "ANSWER_PLAIN"
            with m.State("COMMIT"):
                with m.If(~commit_busy):
                    m.d.sync += committing.eq(0)
                    m.next = "ANSWER_PLAIN"
            with m.State("START_WAIT"):
                with m.If(ctl.check_done):
                    m.d.sync += [error.eq(ctl.check_error), error_zero.eq(ctl.check_error == 0)]
                    m.next = "ANSWER_PLAIN"
            with m.State("CYCLES_WAIT"):
                # cycles_layer was set in CHECK4: its value is on cycles_value from here on.
                m.d.sync += wait.eq(wait + 1)
                with m.If(wait == 1):
                    value = [ctl.cycles_value[8 * k:8 * k + 8] for k in range(4)]
                    m.d.sync += [payload[k].eq(v) for k, v in enumerate(value)]
                    m.d.sync += [payload_zero[k].eq(v == 0) for k, v in enumerate(value)]
                    m.d.sync += answer(4)
                    m.next = "ANSWER"
            with m.State("ANSWER_PLAIN"):
                # Every answer without a payload: errors, WRITE, START, RESET.
                m.d.sync += answer(0)
                m.next = "ANSWER"
            with m.State("ANSWER_STATUS"):
                fields = [Cat(ctl.busy, ctl.done), ctl.error, ctl.layer[:8], ctl.layer[8:]]
                fields += [ctl.cycles[8 * k:8 * k + 8] for k in range(4)]
                m.d.sync += [reg.eq(field) for reg, field in zip(payload, fields)]
                m.d.sync += [zero.eq(field == 0) for zero, field in zip(payload_zero, fields)]
                m.d.sync += answer(8)
                m.next = "ANSWER"
            with m.State("ANSWER_INFO"):
                m.d.sync += answer(len(self._info), info=True)
                m.next = "ANSWER"
            with m.State("ANSWER_READ"):
                m.d.sync += answer(0, with_words=True)
                m.next = "ANSWER"
            with m.State("ANSWER"):
                with m.If(send_delimiter):
                    m.d.sync += [encoding.eq(0), reading.eq(0), recv_open.eq(1)]
                    m.next = "RECEIVE"
        return m
