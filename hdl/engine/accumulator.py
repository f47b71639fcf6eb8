"""The adder array of the spike-accumulate engine: P lanes that add one weight row per cycle into
a ping-pong partial-sum memory, and drain finished tokens as lane beats."""

from types import SimpleNamespace

from amaranth.hdl import Module, Signal, Const, Cat, Mux, signed, unsigned
from amaranth.lib import wiring, stream, data
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from spikeforge.contract.sizes import ceil_div

from ..arith import saturate_signed
from spikeforge.contract.program import group_bits

from ..layouts import accumulate_op, lane_beat, weight_load
from ..memory import RegisteredReadMemory, RAM_STYLES
from ..params import check_bool, check_int, check_choice

__all__ = ["SpikeAccumulator"]

# The control part of an op in flight, copied down the pipeline (which never stalls).
_CONTROL = ("valid", "null", "last", "bank", "group")


class SpikeAccumulator(wiring.Component):
    """P adder lanes over a ping-pong partial-sum memory.

    Each cycle takes (at most) one accumulate op through a five-stage pipeline, so no memory
    read shares a cycle with an adder. Each stage fills the pipeline register named after it:

    1. ``issue``: take the op, start the weight-row read;
    2. ``fetch``: the weight row leaves the memory into a register;
    3. ``shape``: the row becomes the addend (masked by ``op.mask``, shifted left by
       ``op.plane``, negated for the signed top plane);
    4. ``gather``: the lane group's partial sums are read (or its bias, on the token's first
       add into the group), or forwarded from the add in stage 5;
    5. ``add``: add and write back.

    An ``expand`` op stays in ``issue`` for ``lane_groups`` cycles and adds rows
    ``row << group_bits | g`` into groups ``g = 0 .. lane_groups-1``. The first add into a group
    of a token starts from the group's bias (a per-group *touched* flag, so there is no clearing
    pass). When a token's ``last`` op retires, its bank of partial sums is drained through three
    registers as ``lane_groups`` lane beats (saturated once to ``acc_bits``; lanes past
    ``channels`` are 0) while the next token accumulates into the other bank; a third token
    waits until the first is drained (a bank is *closed* from the issue of its last op until its
    last group is drained).

    Partial sums are ``sum_bits`` wide; the caller sizes them so that no partial sum can overflow
    (:func:`spikeforge.contract.sizes.accumulator_bits`), which makes the result independent of
    the event order and equal to :func:`spikeforge.golden.conv.conv2d_int`.

    Parameters
    ----------
    lanes : int
        Adder lanes (P).
    channels : int
        Output channels (C_out); ``lane_groups = ceil(channels / lanes)``.
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
        Initial bias memory: one list of ``lanes`` values per lane group.
    ram_style : {"distributed", "block"}
        Weight memory: block RAM (default) or LUT RAM
        (:data:`~spikeforge.hdl.memory.RAM_STYLES`).

    Members
    -------
    ops : In(stream.Signature(accumulate_op(rows, lane_groups, lanes, planes)))
    load : In(stream.Signature(weight_load(rows, lane_groups, lanes, value_bits)))
        Writes a weight or bias row; always ready. Load only while no token is in flight.
    o : Out(stream.Signature(lane_beat(lanes, signed(acc_bits), lane_groups)))
    """

    def __init__(self, *, lanes, channels, rows, planes=1, input_signed=False, weight_bits=8,
                 bias_bits=16, sum_bits=24, acc_bits=16, weights=None, bias=None,
                 ram_style="block"):
        self._ram_style = check_choice("ram_style", ram_style, RAM_STYLES)
        self._lanes = check_int("lanes", lanes, min=1)
        self._channels = check_int("channels", channels, min=1)
        self._rows = check_int("rows", rows, min=1)
        self._planes = check_int("planes", planes, min=1)
        self._signed = check_bool("input_signed", input_signed)
        self._weight_bits = check_int("weight_bits", weight_bits, min=2)
        self._bias_bits = check_int("bias_bits", bias_bits, min=2)
        self._sum_bits = check_int("sum_bits", sum_bits, min=max(bias_bits, weight_bits))
        self._acc_bits = check_int("acc_bits", acc_bits, min=2)
        self._lane_groups = ceil_div(channels, lanes)
        self._weights = dict(weights or {})
        self._bias = list(bias) if bias is not None else None
        groups = self._lane_groups
        super().__init__({
            "ops": In(stream.Signature(accumulate_op(rows=rows, lane_groups=groups,
                                                     lanes=lanes, planes=planes))),
            "load": In(stream.Signature(weight_load(rows=rows, lane_groups=groups, lanes=lanes,
                                                    value_bits=max(weight_bits, bias_bits)))),
            "o": Out(stream.Signature(lane_beat(lanes=lanes, shape=signed(acc_bits),
                                                lane_groups=groups))),
        })

    lane_groups = property(lambda self: self._lane_groups)
    lanes = property(lambda self: self._lanes)

    def _sums(self):
        return data.ArrayLayout(signed(self._sum_bits), self._lanes)

    def elaborate(self, platform):
        m = Module()
        s = self._memories(m)
        self._load_port(m, s)
        issue = self._issue(m, s)
        fetch = self._fetch(m, issue)
        shape = self._shape(m, fetch, s.weights.r_data)
        gather, slot = self._gather(m, s, fetch, shape)
        self._add(m, s, gather, slot)
        self._drain(m, s)
        return m

    def _memories(self, m):
        """The memories and the bank state, as a namespace shared by the stages."""
        lanes, gbits = self._lanes, group_bits(self._lane_groups)
        depth = self._rows << gbits
        s = SimpleNamespace(gbits=gbits)
        s.row_shape = data.ArrayLayout(signed(self._weight_bits), lanes)
        # the read and the `fetch` row register in one component (on ECP5 block RAM the
        # register is the EBR's output register); the attribute keeps Yosys from merging the
        # register into a block RAM port
        m.submodules.weights = s.weights = RegisteredReadMemory(
            shape=s.row_shape, depth=depth, style=self._ram_style,
            init=[self._weights.get(a, [0] * lanes) for a in range(depth)],
            attrs={"ram_style": self._ram_style})
        m.submodules.bias = bias = Memory(
            shape=data.ArrayLayout(signed(self._bias_bits), lanes), depth=self._lane_groups,
            init=self._bias or [])
        m.submodules.psum = psum = Memory(shape=self._sums(), depth=2 << gbits, init=[])
        s.b_load = bias.write_port()
        s.b_acc = bias.read_port(domain="comb")
        s.b_drain = bias.read_port(domain="comb")
        s.p_acc = psum.read_port(domain="comb")
        s.p_write = psum.write_port()
        s.p_drain = psum.read_port(domain="comb")
        # touched[bank, group]: the group's partial sums hold this token's adds (else: its bias).
        s.touched = Signal(2 << gbits)
        # closed[bank]: the bank's token has issued its last op (`issue` may not reuse the bank
        # until it is drained); full[bank]: that last op has retired, the bank can drain.
        s.closed = Signal(2)
        s.full = Signal(2)
        s.control = data.StructLayout({
            "valid": 1, "null": 1, "last": 1, "bank": 1, "group": unsigned(max(1, gbits)),
        })
        return s

    @staticmethod
    def _address(s, group, high):
        """Address ``high << group_bits | group`` (a concatenation)."""
        return Cat(group[:s.gbits], high) if s.gbits else high

    @staticmethod
    def _follow(later, earlier):
        return [getattr(later, f).eq(getattr(earlier, f)) for f in _CONTROL]

    def _load_port(self, m, s):
        load = self.load.payload
        weights = s.weights
        m.d.comb += [
            self.load.ready.eq(1),
            weights.w_addr.eq(load.addr),
            s.b_load.addr.eq(load.addr),
            weights.w_en.eq(self.load.valid & ~load.bias),
            s.b_load.en.eq(self.load.valid & load.bias),
        ]
        for j in range(self._lanes):
            m.d.comb += [weights.w_data[j].eq(load.data[j]), s.b_load.data[j].eq(load.data[j])]

    def _issue(self, m, s):
        """Stage 1: one weight-row read per cycle into the current bank."""
        lanes, groups = self._lanes, self._lane_groups
        op = self.ops.payload
        bank = Signal()
        step = Signal(range(groups))
        room = ~s.closed.bit_select(bank, 1)
        take = self.ops.valid & room
        group = Mux(op.expand, step, op.group)
        final = op.null | ~op.expand | (step == groups - 1)
        m.d.comb += self.ops.ready.eq(room & final)
        issue = Signal(data.StructLayout({
            "c": s.control, "mask": unsigned(lanes), "plane": op.plane.shape(),
        }))
        m.d.comb += [s.weights.r_addr.eq(self._address(s, group, op.row)),
                     s.weights.r_en.eq(take)]
        m.d.sync += issue.c.valid.eq(take)
        with m.If(take):
            m.d.sync += [
                issue.c.null.eq(op.null), issue.c.last.eq(op.last & final),
                issue.c.bank.eq(bank), issue.c.group.eq(group),
                issue.mask.eq(Mux(op.expand, Const((1 << lanes) - 1, lanes), op.mask)),
                issue.plane.eq(op.plane),
            ]
            with m.If(op.expand & ~op.null):
                m.d.sync += step.eq(Mux(step == groups - 1, 0, step + 1))
            with m.If(final & op.last):
                m.d.sync += [bank.eq(~bank), s.closed.bit_select(bank, 1).eq(1)]
        return issue

    def _fetch(self, m, issue):
        """Stage 2: the weight row is registered as it leaves the memory (LUT RAM: the read and
        its multiplexer tree; block RAM: its clock-to-output delay is most of a cycle on its
        own). The row register is the memory's output register, ``weights.r_data`` (no reset,
        so no reset logic sits after the memory's output; its enable stays 1)."""
        fetch = Signal(issue.shape())
        m.d.sync += [*self._follow(fetch.c, issue.c), fetch.mask.eq(issue.mask),
                     fetch.plane.eq(issue.plane)]
        return fetch

    def _shape(self, m, fetch, row):
        """Stage 3: shape the weight ``row`` fetched into the addend (lane mask, shift, sign)."""
        shape = Signal(data.StructLayout({"c": fetch.c.shape(), "addend": self._sums(),
                                          "first": 1}))
        negate = (fetch.plane == self._planes - 1) if self._signed else Const(0)
        m.d.sync += self._follow(shape.c, fetch.c)
        for j in range(self._lanes):
            shifted = row[j] << fetch.plane
            m.d.sync += shape.addend[j].eq(Mux(fetch.mask[j], Mux(negate, -shifted, shifted), 0))
        return shape

    def _gather(self, m, s, fetch, shape):
        """Stage 4: read the lane group's partial sums (or its bias, on the token's first add
        into the group). The op in stage 5 may be adding into the same group right now: then
        stage 5 takes that op's fresh sum instead (``forward``), so back-to-back adds into one
        group need no bubble. Whether this is the group's first add (``shape.first``) is decided
        a stage earlier, from the touched flags and the op being added in stage 5 (whose flag is
        set at the end of that cycle), so the memory read only meets a 2:1 multiplexer. Returns
        the register and the partial-sum address of its op."""
        gather = Signal(data.StructLayout({
            "c": shape.c.shape(), "addend": self._sums(), "old": self._sums(), "forward": 1,
        }))
        at_shape = self._address(s, shape.c.group, shape.c.bank)
        at_gather = self._address(s, gather.c.group, gather.c.bank)
        at_fetch = self._address(s, fetch.c.group, fetch.c.bank)
        adding = gather.c.valid & ~gather.c.null
        m.d.sync += shape.first.eq(~s.touched.bit_select(at_fetch, 1) &
                                   ~(adding & (at_gather == at_fetch)))
        m.d.comb += [s.p_acc.addr.eq(at_shape), s.b_acc.addr.eq(shape.c.group)]
        m.d.sync += [*self._follow(gather.c, shape.c), gather.addend.eq(shape.addend),
                     gather.forward.eq(adding & (at_gather == at_shape))]
        for j in range(self._lanes):
            m.d.sync += gather.old[j].eq(Mux(shape.first, s.b_acc.data[j], s.p_acc.data[j]))
        return gather, at_gather

    def _add(self, m, s, gather, slot):
        """Stage 5: add and write back into ``slot``; the bank is full once its last op
        retires."""
        fresh = Signal(self._sums())            # the sums written in the previous cycle
        m.d.comb += s.p_write.addr.eq(slot)
        for j in range(self._lanes):
            m.d.comb += s.p_write.data[j].eq(Mux(gather.forward, fresh[j], gather.old[j]) +
                                             gather.addend[j])
        m.d.sync += fresh.eq(s.p_write.data)
        with m.If(gather.c.valid & ~gather.c.null):
            m.d.comb += s.p_write.en.eq(1)
            m.d.sync += s.touched.bit_select(slot, 1).eq(1)
        with m.If(gather.c.valid & gather.c.last):
            m.d.sync += s.full.bit_select(gather.c.bank, 1).eq(1)

    def _drain(self, m, s):
        """The oldest full bank, one lane group per beat, through three registers: ``d0`` takes
        the group's partial sums, bias and "untouched" flag as they leave the memories, ``d1``
        picks the token's value (bias for an untouched group, 0 past ``channels``), and the
        output register saturates it once (so no memory read shares a cycle with a wide
        multiplexer, nor either with the saturation or with the next unit)."""
        lanes, groups = self._lanes, self._lane_groups
        d_bank = Signal()
        d_group = Signal(range(groups))
        d_slot = self._address(s, d_group, d_bank)
        m.d.comb += [s.p_drain.addr.eq(d_slot), s.b_drain.addr.eq(d_group)]
        beat = {"valid": 1, "group": d_group.shape(), "first": 1, "last": 1}
        d0 = Signal(data.StructLayout({
            **beat, "untouched": 1, "tail": 1, "psum": self._sums(),
            "bias": data.ArrayLayout(signed(self._bias_bits), lanes),
        }))
        d1 = Signal(data.StructLayout({**beat, "data": self._sums()}))
        out = self.o.payload
        tail = self._channels - (groups - 1) * lanes
        emit = d1.valid & (~self.o.valid | self.o.ready)
        move = d0.valid & (~d1.valid | emit)
        take = s.full.bit_select(d_bank, 1) & (~d0.valid | move)
        with m.If(take):
            m.d.sync += [
                d0.valid.eq(1),
                d0.group.eq(d_group),
                d0.first.eq(d_group == 0),
                d0.last.eq(d_group == groups - 1),
                d0.untouched.eq(~s.touched.bit_select(d_slot, 1)),
                d0.tail.eq(d_group == groups - 1),
                d0.psum.eq(s.p_drain.data),
                d0.bias.eq(s.b_drain.data),
                s.touched.bit_select(d_slot, 1).eq(0),
            ]
            with m.If(d_group == groups - 1):
                m.d.sync += [d_group.eq(0), d_bank.eq(~d_bank),
                             s.full.bit_select(d_bank, 1).eq(0),
                             s.closed.bit_select(d_bank, 1).eq(0)]
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
