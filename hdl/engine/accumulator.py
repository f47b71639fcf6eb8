"""The adder array of the spike-accumulate engine: P lanes that add one weight row per cycle into
a ping-pong partial-sum memory, and drain finished tokens as lane beats."""

from types import SimpleNamespace

from amaranth.hdl import Module, Signal, Const, Cat, Mux, signed, unsigned
from amaranth.lib import wiring, stream, data
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .arith import saturate_signed
from .bram import RegisteredReadMemory
from .layouts import lane_beat
from .params import check_int, check_choice

__all__ = ["SpikeAccumulator", "accumulate_op", "weight_load", "group_bits",
           "RAM_STYLES"]

# Weight memory: "distributed" (LUT RAM, read asynchronously from a registered address; its
# multiplexer tree and address fan-out grow with the depth) or "block" (EBR; denser, but its
# clock-to-output delay alone is 5.83 ns on ECP5 speed 6, since Yosys does not use the EBR's
# output register, so it caps Fmax near 140 MHz; on ECP5 the engine therefore builds it as a
# :class:`~.bram.RegisteredReadMemory`, whose output register is the EBR's own).
RAM_STYLES = ("distributed", "block")


def group_bits(groups):
    """Address bits of a lane group: a weight row's address is ``row << group_bits | group``, so
    a group index is concatenated, never multiplied."""
    return (groups - 1).bit_length()


def accumulate_op(*, rows, groups, lanes, planes):
    """One accumulate operation (an event, or a token's empty closing op).

    Fields
    ------
    row : logical weight row (input channel, or kernel tap × C_in + channel, or tap)
    group : lane group to add into (ignored when ``expand``)
    mask : lanes that add (all ones for an expanded event)
    plane : bit-plane: the row is added shifted left by ``plane`` (subtracted for the signed top
        plane)
    expand : add the row into every group ``0 .. groups-1``, one group per cycle
    null : add nothing (a token with no event still needs its ``last`` op)
    last : the token's final op; the token's sums are complete once it retires
    """
    return data.StructLayout({
        "row": unsigned(max(1, (rows - 1).bit_length())),
        "group": unsigned(max(1, group_bits(groups))),
        "mask": unsigned(lanes),
        "plane": unsigned(max(1, (planes - 1).bit_length())),
        "expand": 1,
        "null": 1,
        "last": 1,
    })


def weight_load(*, rows, groups, lanes, value_bits):
    """One beat of the load port: a weight row (``bias = 0``, ``addr = row << group_bits |
    group``) or a bias row (``bias = 1``, ``addr = group``), ``lanes`` signed values."""
    addr_bits = max(1, ((rows - 1) << group_bits(groups) | (groups - 1)).bit_length(),
                    group_bits(groups))
    return data.StructLayout({
        "addr": unsigned(addr_bits),
        "bias": 1,
        "data": data.ArrayLayout(signed(value_bits), lanes),
    })


class SpikeAccumulator(wiring.Component):
    """P adder lanes over a ping-pong partial-sum memory.

    Each cycle takes (at most) one accumulate op through a five-stage pipeline (issue; weight-row
    read into a register; addend shaping; partial-sum read, with forwarding from the stage
    ahead; add and write back), so no memory read shares a cycle with an adder: it reads one
    ``lanes``-wide
    weight row and adds it, masked by ``op.mask``, shifted left by ``op.plane`` and negated for
    the signed top plane, into the partial sums of one lane group. An ``expand`` op stays for
    ``groups`` cycles and adds rows ``row << group_bits | g`` into groups ``g = 0 .. groups-1``.
    The first add into a group of a token starts from the group's bias (a per-group *touched*
    flag, so there is no clearing pass). When a token's ``last`` op retires, its bank of partial
    sums is drained through three registers as ``groups`` lane beats (saturated once to
    ``acc_bits``; lanes past ``channels`` are 0) while the next token accumulates into the other
    bank; a third token waits until the first is drained (a bank is *closed* from the issue of
    its last op until its last group is drained).

    Partial sums are ``sum_bits`` wide; the caller sizes them so that no partial sum can overflow
    (:func:`spikeforge.golden.conv.accumulator_bits`), which makes the result independent of the
    event order and equal to :func:`spikeforge.golden.conv.conv2d_int`.

    Parameters
    ----------
    lanes : int
        Adder lanes (P).
    channels : int
        Output channels (C_out); ``groups = ceil(channels / lanes)``.
    rows : int
        Logical weight rows.
    planes : int
        Bit-planes of the input.
    input_signed : bool
        Inputs are two's complement: the top plane is subtracted.
    weight_bits, bias_bits, sum_bits, acc_bits : int
        Signed widths of weights, biases, partial sums and output values.
    weights : dict or None
        Initial weight memory: ``{address: [lanes values]}``.
    bias : list or None
        Initial bias memory: one list of ``lanes`` values per group.
    ram_style : {"distributed", "block"}
        Weight memory: block RAM (default) or LUT RAM (see :data:`RAM_STYLES`).

    Members
    -------
    ops : In(stream.Signature(accumulate_op(...)))
    load : In(stream.Signature(weight_load(...)))
        Writes a weight or bias row; always ready. Load only while no token is in flight.
    o : Out(stream.Signature(lane_beat(lanes, signed(acc_bits), groups)))
    """

    def __init__(self, *, lanes, channels, rows, planes=1, input_signed=False, weight_bits=8,
                 bias_bits=16, sum_bits=24, acc_bits=16, weights=None, bias=None,
                 ram_style="block"):
        self._ram_style = check_choice("ram_style", ram_style, RAM_STYLES)
        self._lanes = check_int("lanes", lanes, min=1)
        self._channels = check_int("channels", channels, min=1)
        self._rows = check_int("rows", rows, min=1)
        self._planes = check_int("planes", planes, min=1)
        if not isinstance(input_signed, bool):
            raise TypeError(f"input_signed must be a bool, not {input_signed!r}")
        self._signed = input_signed
        self._weight_bits = check_int("weight_bits", weight_bits, min=2)
        self._bias_bits = check_int("bias_bits", bias_bits, min=2)
        self._sum_bits = check_int("sum_bits", sum_bits, min=max(bias_bits, weight_bits))
        self._acc_bits = check_int("acc_bits", acc_bits, min=2)
        self._groups = -(-channels // lanes)
        self._weights = dict(weights or {})
        self._bias = list(bias) if bias is not None else None
        super().__init__({
            "ops": In(stream.Signature(accumulate_op(rows=rows, groups=self._groups,
                                                     lanes=lanes, planes=planes))),
            "load": In(stream.Signature(weight_load(rows=rows, groups=self._groups, lanes=lanes,
                                                    value_bits=max(weight_bits, bias_bits)))),
            "o": Out(stream.Signature(lane_beat(lanes=lanes, shape=signed(acc_bits),
                                                groups=self._groups))),
        })

    groups = property(lambda self: self._groups)
    lanes = property(lambda self: self._lanes)

    def elaborate(self, platform):
        m = Module()
        lanes, groups, gbits = self._lanes, self._groups, group_bits(self._groups)

        def address(group, high):
            return Cat(group[:gbits], high) if gbits else high

        depth = self._rows << gbits
        init = [self._weights.get(a, [0] * lanes) for a in range(depth)]
        row_shape = data.ArrayLayout(signed(self._weight_bits), lanes)
        distributed = self._ram_style == "distributed"
        # (the attribute keeps Yosys from merging the stage-2 register into a block RAM port)
        attrs = {"ram_style": self._ram_style}
        if distributed:
            m.submodules.weights = weights = Memory(shape=row_shape, depth=depth, init=init,
                                                    attrs=attrs)
            w_read = weights.read_port(domain="comb")
            w_load = weights.write_port()
            w_read_addr = w_read.addr
        else:
            # block RAM: the read and the stage-1 register `s2_row` in one component (on ECP5
            # the register is the EBR's output register)
            m.submodules.weights = weights = RegisteredReadMemory(
                shape=row_shape, depth=depth, init=init, attrs=attrs)
            w_load = SimpleNamespace(addr=weights.w_addr, data=weights.w_data, en=weights.w_en)
            w_read_addr = weights.r_addr
        m.submodules.bias = bias = Memory(
            shape=data.ArrayLayout(signed(self._bias_bits), lanes), depth=groups,
            init=self._bias or [])
        m.submodules.psum = psum = Memory(
            shape=data.ArrayLayout(signed(self._sum_bits), lanes), depth=2 << gbits, init=[])
        b_load = bias.write_port()
        b_acc = bias.read_port(domain="comb")
        b_drain = bias.read_port(domain="comb")
        p_acc = psum.read_port(domain="comb")
        p_write = psum.write_port()
        p_drain = psum.read_port(domain="comb")

        # touched[bank, group]: the group's partial sums hold this token's adds (else: its bias).
        touched = Signal(2 << gbits)
        # closed[bank]: the bank's token has issued its last op (stage 0 may not reuse the bank
        # until it is drained); full[bank]: that last op has retired, the bank can drain.
        closed = Signal(2)
        full = Signal(2)

        # --- load port
        load = self.load.payload
        m.d.comb += [
            self.load.ready.eq(1),
            w_load.addr.eq(load.addr),
            b_load.addr.eq(load.addr),
            w_load.en.eq(self.load.valid & ~load.bias),
            b_load.en.eq(self.load.valid & load.bias),
        ]
        for j in range(lanes):
            m.d.comb += [w_load.data[j].eq(load.data[j]), b_load.data[j].eq(load.data[j])]

        # The control part of an op in flight, copied down the pipeline (which never stalls).
        control = data.StructLayout({
            "valid": 1, "null": 1, "last": 1, "bank": 1, "group": unsigned(max(1, gbits)),
        })

        def follow(later, earlier):
            return [getattr(later, f).eq(getattr(earlier, f))
                    for f in ("valid", "null", "last", "bank", "group")]

        # --- stage 0: issue one weight-row read per cycle into the current bank
        op = self.ops.payload
        bank = Signal()
        step = Signal(range(groups))
        room = ~closed.bit_select(bank, 1)
        issue = self.ops.valid & room
        group = Mux(op.expand, step, op.group)
        final = op.null | ~op.expand | (step == groups - 1)
        m.d.comb += self.ops.ready.eq(room & final)
        s1 = Signal(data.StructLayout({
            "c": control, "mask": unsigned(lanes), "plane": op.plane.shape(),
            "addr": w_read_addr.shape(),
        }))
        if distributed:
            # LUT RAM: the address is registered at issue and read during stage 1
            m.d.comb += w_read_addr.eq(s1.addr)
        else:
            m.d.comb += [w_read_addr.eq(address(group, op.row)), weights.r_en.eq(issue)]
        m.d.sync += s1.c.valid.eq(issue)
        with m.If(issue):
            m.d.sync += [
                s1.c.null.eq(op.null), s1.c.last.eq(op.last & final), s1.c.bank.eq(bank),
                s1.c.group.eq(group),
                s1.mask.eq(Mux(op.expand, Const((1 << lanes) - 1, lanes), op.mask)),
                s1.plane.eq(op.plane),
                s1.addr.eq(address(group, op.row)),
            ]
            with m.If(op.expand & ~op.null):
                m.d.sync += step.eq(Mux(step == groups - 1, 0, step + 1))
            with m.If(final & op.last):
                m.d.sync += [bank.eq(~bank), closed.bit_select(bank, 1).eq(1)]

        # --- stage 1: register the weight row as it leaves the memory (LUT RAM: the read and its
        # multiplexer tree; block RAM: its clock-to-output delay is most of a cycle on its own)
        # (the row register has no reset, so no reset logic sits after the memory's output)
        s2 = Signal(data.StructLayout({
            "c": control, "mask": unsigned(lanes), "plane": op.plane.shape(),
        }))
        s2_row = Signal(row_shape, reset_less=True)
        m.d.sync += [*follow(s2.c, s1.c), s2.mask.eq(s1.mask), s2.plane.eq(s1.plane)]
        if distributed:
            m.d.sync += s2_row.eq(w_read.data)
        else:
            m.d.comb += s2_row.eq(weights.r_data)      # o_en stays 1: loads every cycle

        # --- stage 2: shape the row into the addend (lane mask, shift, sign)
        s3 = Signal(data.StructLayout({
            "c": control, "addend": data.ArrayLayout(signed(self._sum_bits), lanes), "first": 1,
        }))
        negate = (s2.plane == self._planes - 1) if self._signed else Const(0)
        m.d.sync += follow(s3.c, s2.c)
        for j in range(lanes):
            shifted = s2_row[j] << s2.plane
            m.d.sync += s3.addend[j].eq(Mux(s2.mask[j], Mux(negate, -shifted, shifted), 0))

        # --- stage 3: read the group's partial sums (or its bias, on the token's first add into
        # the group). The op one stage ahead may be adding into the same group right now: then
        # stage 4 takes that op's fresh sum instead (`forward`), so back-to-back adds into one
        # group need no bubble. Whether this is the group's first add (`s3.first`) is decided a
        # stage earlier, from the touched flags and the op now in stage 4 (whose flag is set at
        # the end of this cycle), so the memory read only meets a 2:1 multiplexer.
        s4 = Signal(data.StructLayout({
            "c": control, "addend": data.ArrayLayout(signed(self._sum_bits), lanes),
            "old": data.ArrayLayout(signed(self._sum_bits), lanes), "forward": 1,
        }))
        slot3 = address(s3.c.group, s3.c.bank)
        slot4 = address(s4.c.group, s4.c.bank)
        slot2 = address(s2.c.group, s2.c.bank)
        m.d.sync += s3.first.eq(~touched.bit_select(slot2, 1) &
                                ~(s4.c.valid & ~s4.c.null & (slot4 == slot2)))
        m.d.comb += [p_acc.addr.eq(slot3), b_acc.addr.eq(s3.c.group)]
        m.d.sync += [*follow(s4.c, s3.c), s4.addend.eq(s3.addend),
                     s4.forward.eq(s4.c.valid & ~s4.c.null & (slot4 == slot3))]
        for j in range(lanes):
            m.d.sync += s4.old[j].eq(Mux(s3.first, b_acc.data[j], p_acc.data[j]))

        # --- stage 4: add and write back
        fresh = Signal(data.ArrayLayout(signed(self._sum_bits), lanes))
        m.d.comb += p_write.addr.eq(slot4)
        for j in range(lanes):
            m.d.comb += p_write.data[j].eq(Mux(s4.forward, fresh[j], s4.old[j]) + s4.addend[j])
        m.d.sync += fresh.eq(p_write.data)
        with m.If(s4.c.valid & ~s4.c.null):
            m.d.comb += p_write.en.eq(1)
            m.d.sync += touched.bit_select(slot4, 1).eq(1)
        with m.If(s4.c.valid & s4.c.last):
            m.d.sync += full.bit_select(s4.c.bank, 1).eq(1)

        # --- drain: the oldest full bank, one group per beat, through three registers: d0 takes
        # the group's partial sums, bias and "untouched" flag as they leave the memories, d1 picks
        # the token's value (bias for an untouched group, 0 past ``channels``), and the output
        # register saturates it once (so no memory read shares a cycle with a wide multiplexer,
        # nor either with the saturation or with the next unit)
        d_bank = Signal()
        d_group = Signal(range(groups))
        d_slot = address(d_group, d_bank)
        m.d.comb += [p_drain.addr.eq(d_slot), b_drain.addr.eq(d_group)]
        beat = {"valid": 1, "group": d_group.shape(), "first": 1, "last": 1}
        d0 = Signal(data.StructLayout({
            **beat, "untouched": 1, "tail": 1,
            "psum": data.ArrayLayout(signed(self._sum_bits), lanes),
            "bias": data.ArrayLayout(signed(self._bias_bits), lanes),
        }))
        d1 = Signal(data.StructLayout({
            **beat, "data": data.ArrayLayout(signed(self._sum_bits), lanes),
        }))
        out = self.o.payload
        tail = self._channels - (groups - 1) * lanes
        emit = d1.valid & (~self.o.valid | self.o.ready)
        move = d0.valid & (~d1.valid | emit)
        take = full.bit_select(d_bank, 1) & (~d0.valid | move)
        with m.If(take):
            m.d.sync += [
                d0.valid.eq(1),
                d0.group.eq(d_group),
                d0.first.eq(d_group == 0),
                d0.last.eq(d_group == groups - 1),
                d0.untouched.eq(~touched.bit_select(d_slot, 1)),
                d0.tail.eq(d_group == groups - 1),
                d0.psum.eq(p_drain.data),
                d0.bias.eq(b_drain.data),
                touched.bit_select(d_slot, 1).eq(0),
            ]
            with m.If(d_group == groups - 1):
                m.d.sync += [d_group.eq(0), d_bank.eq(~d_bank),
                             full.bit_select(d_bank, 1).eq(0),
                             closed.bit_select(d_bank, 1).eq(0)]
            with m.Else():
                m.d.sync += d_group.eq(d_group + 1)
        with m.Elif(move):
            m.d.sync += d0.valid.eq(0)

        with m.If(move):
            for j in range(lanes):
                value = Mux(d0.untouched, d0.bias[j], d0.psum[j])
                if j >= tail:
                    value = Mux(d0.tail, 0, value)
                m.d.sync += d1.data[j].eq(value)
            m.d.sync += [d1.valid.eq(1), d1.group.eq(d0.group), d1.first.eq(d0.first),
                         d1.last.eq(d0.last)]
        with m.Elif(emit):
            m.d.sync += d1.valid.eq(0)

        with m.If(emit):
            for j in range(lanes):
                m.d.sync += out.data[j].eq(saturate_signed(d1.data[j], self._acc_bits))
            m.d.sync += [self.o.valid.eq(1), out.group.eq(d1.group), out.first.eq(d1.first),
                         out.last.eq(d1.last)]
        with m.Elif(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        return m
