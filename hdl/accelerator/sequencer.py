"""The sequencer: checks a program, then steps through its descriptors and hands each to its
executor.

START (``first``, ``stop``) from the host port
    1. *Check*: descriptors 0, 1, ... are fetched until END; each must carry
       :data:`~spikeforge.contract.program.FORMAT_VERSION` (else ``BAD_VERSION``), an
       :class:`~spikeforge.contract.program.Op` (``BAD_OPCODE``) and fit the configuration's
       capacities (``CAPACITY``: channels, tokens, steps, input bits, kernel, heads, lane groups,
       memory ids and bases); a program without END in the program memory is ``NO_END``. The
       result is answered on ``check_done`` / ``check_error``; on an error nothing runs.
    2. *Run*: descriptors ``first``, ``first + 1``, ... up to END or to ``stop`` (``0``: no
       stop): INPUT is skipped, every other op pulses its executor's ``start`` and waits for its
       ``busy`` to fall. Each descriptor's cycles (fetch included) are kept in a small counter
       memory read by ``cycles_layer`` → ``cycles_value``.
RESET resets the sequencer and the executors (:class:`~.core.Accelerator` puts each in a clock
domain reset by a register of RESET, so one cycle after it): the run stops, ``done`` and
``error`` clear; memories keep their contents (a write in flight still lands).

Descriptor ``i`` is the 16 program words from ``i << 4``, fetched one per cycle into a shift
register (``desc``): ``16 + READ_LATENCY`` = 19 cycles per descriptor.
"""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from spikeforge.contract.program import (DESCRIPTOR_SHIFT, DESCRIPTOR_WORDS, FORMAT_VERSION,
                                         PROGRAM_WORD_BITS, Error, Memory, Op, memory_map)
from spikeforge.contract.sizes import ceil_div

from ..memory import RegisteredReadMemory
from .ports import READ_LATENCY, descriptor_layout, memory_port

__all__ = ["Sequencer", "EXECUTOR_OPS"]

#: Executor name → the ops it runs.
EXECUTOR_OPS = {
    "conv": (Op.CONV,),
    "lif": (Op.LIF,),
    "elementwise": (Op.ADD, Op.SUM_TOKENS, Op.READOUT),
    "attention": (Op.ATTENTION,),
}


class Sequencer(wiring.Component):
    """Program checker and layer stepper of the accelerator (see the module docstring).

    Members
    -------
    program : Out(memory_port(config, Memory.PROGRAM))
        Reads only.
    start, first, stop ; check_done, check_error
        The host port's START (RESET is a synchronous reset of the sequencer, by the
        accelerator).
    owns : Out(1)
        The sequencer owns the memories (checking or running: any state but idle, a
        register); the host port owns them otherwise.
    busy, done, error, layer, cycles : Out
        Status: running; the last run reached its end; the last START's error; the
        descriptor being run; cycles since the last START.
    cycles_layer : In(16) ; cycles_value : Out(32)
        The cycle counter of descriptor ``cycles_layer``, two cycles later.
    desc : Out(descriptor_layout())
        The descriptor being run (stable while an executor is busy).
    run : Out(len(EXECUTOR_OPS)) ; executor_busy : In(len(EXECUTOR_OPS))
        One ``start`` pulse per executor (in :data:`EXECUTOR_OPS` order) and their ``busy``.
    active : Out(len(EXECUTOR_OPS))
        One-hot: the executor that owns the memories (0 while none runs).
    """

    def __init__(self, config, *, attention_channels=None):
        self._config = config
        self._attention_channels = attention_channels
        self._slots = config.program_depth >> DESCRIPTOR_SHIFT
        executors = len(EXECUTOR_OPS)
        super().__init__({
            "program": Out(memory_port(config, Memory.PROGRAM)),
            "start": In(1), "first": In(16), "stop": In(16),
            "check_done": Out(1), "check_error": Out(4),
            "owns": Out(1),
            "busy": Out(1), "done": Out(1), "error": Out(4), "layer": Out(16),
            "cycles": Out(32),
            "cycles_layer": In(16), "cycles_value": Out(32),
            "desc": Out(descriptor_layout()),
            "run": Out(executors), "executor_busy": In(executors), "active": Out(executors),
        })

    def _capacity_ok(self, m, d):
        """One registered flag per capacity check of descriptor ``d`` (a View), ANDed."""
        c = self._config
        specs = memory_map(c)
        depth_of = {int(spec.memory): spec.depth for spec in specs.values()}
        checks = [
            d.in_channels <= c.max_channels, d.out_channels <= c.max_channels,
            d.in_tokens <= c.max_tokens, d.out_tokens <= c.max_tokens,
            d.steps <= c.max_steps, d.in_steps <= c.max_steps,
            d.in_bits <= c.max_input_bits, d.b_bits <= c.max_input_bits,
            d.kernel <= c.max_kernel, d.heads <= c.max_heads,
            d.lane_groups <= ceil_div(c.max_channels, c.lanes),
            d.weight_base < c.weights_depth, d.bias_base < c.biases_depth,
            d.threshold_base < c.thresholds_depth,
        ]
        if self._attention_channels is not None:
            checks.append((d.op != Op.ATTENTION) | (d.in_channels <= self._attention_channels))
        for field, bases in (("src_mem", ("a_base", "b_base", "c_base")),
                             ("dst_mem", ("dst_base",))):
            mem = getattr(d, field)
            for base in bases:
                limit = Signal(21, name=f"{field}_{base}_limit")
                with m.Switch(mem):
                    for memory, depth in depth_of.items():
                        with m.Case(memory):
                            m.d.comb += limit.eq(depth)
                checks.append(getattr(d, base) < limit)
        flags = Signal(len(checks))
        m.d.sync += flags.eq(Cat(*checks))
        return flags.all()

    def elaborate(self, platform):
        m = Module()
        slots = self._slots
        slot_bits = max(1, (slots - 1).bit_length())

        # -- descriptor fetch: 16 program reads, words shifted in as they arrive -----------
        words = Signal(DESCRIPTOR_WORDS * PROGRAM_WORD_BITS, reset_less=True)  # all 16 refilled
        m.d.comb += self.desc.eq(words[:descriptor_layout().size])
        index = Signal(range(slots + 1))             # descriptor being fetched / run
        issue = Signal(range(DESCRIPTOR_WORDS + 1))  # words read so far
        pending = Signal(READ_LATENCY)               # reads in flight (shift of r_en)
        got = Signal(range(DESCRIPTOR_WORDS + 1))    # words received
        fetching = Signal()
        m.d.comb += [
            self.program.r_addr.eq((index << DESCRIPTOR_SHIFT) | issue[:DESCRIPTOR_SHIFT]),
            self.program.r_en.eq(fetching & (issue < DESCRIPTOR_WORDS)),
            self.program.w_en.eq(0),
        ]
        m.d.sync += pending.eq((pending << 1) | self.program.r_en)
        with m.If(self.program.r_en):
            m.d.sync += issue.eq(issue + 1)
        with m.If(pending[-1]):
            m.d.sync += [words.eq((words >> PROGRAM_WORD_BITS)
                                  | (self.program.r_data << (len(words) - PROGRAM_WORD_BITS))),
                         got.eq(got + 1)]
        fetched = Signal()
        m.d.comb += fetched.eq(got == DESCRIPTOR_WORDS)

        d = self.desc
        capacity_ok = self._capacity_ok(m, d)
        op_known = d.op <= max(Op)

        # -- cycle counters ------------------------------------------------------------------
        # (block RAM read through its output register: the read is the host's, 2 cycles)
        m.submodules.counters = counters = RegisteredReadMemory(shape=32, depth=slots)
        layer_cycles = Signal(32)
        m.d.comb += [counters.r_addr.eq(self.cycles_layer[:slot_bits]),
                     counters.r_en.eq(self.cycles_layer < slots),
                     self.cycles_value.eq(counters.r_data),
                     counters.w_addr.eq(index[:slot_bits]), counters.w_data.eq(layer_cycles)]

        first = Signal(16)
        stop = Signal(16)
        executor = Signal(len(EXECUTOR_OPS))         # one-hot of the descriptor's executor
        for k, ops in enumerate(EXECUTOR_OPS.values()):
            m.d.comb += executor[k].eq(Cat(*[d.op == op for op in ops]).any())
        m.d.comb += self.layer.eq(index)

        def begin_fetch(at):
            m.d.sync += [index.eq(at), issue.eq(0), got.eq(0), fetching.eq(1)]

        # `owns` is a register, high exactly while the state is not IDLE (set on leaving it,
        # cleared on every return): the memories' gating starts from a flip-flop, not from a
        # decode of the state.
        def to_idle():
            m.d.sync += self.owns.eq(0)
            m.next = "IDLE"

        with m.If(self.busy):
            m.d.sync += [self.cycles.eq(self.cycles + 1), layer_cycles.eq(layer_cycles + 1)]

        with m.FSM(name="state"):
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [first.eq(self.first), stop.eq(self.stop), self.done.eq(0),
                                 self.error.eq(Error.OK), self.cycles.eq(0)]
                    m.d.sync += self.owns.eq(1)
                    begin_fetch(0)
                    m.next = "CHECK"
            with m.State("CHECK"):
                # fetched -> one cycle for the registered capacity flags -> verdict
                with m.If(fetched):
                    m.d.sync += fetching.eq(0)
                    m.next = "VERDICT"
            with m.State("VERDICT"):
                error = Signal(4)
                with m.If(d.version != FORMAT_VERSION):
                    m.d.comb += error.eq(Error.BAD_VERSION)
                with m.Elif(~op_known):
                    m.d.comb += error.eq(Error.BAD_OPCODE)
                with m.Elif(~capacity_ok):
                    m.d.comb += error.eq(Error.CAPACITY)
                with m.If(error != Error.OK):
                    m.d.comb += [self.check_done.eq(1), self.check_error.eq(error)]
                    m.d.sync += self.error.eq(error)
                    to_idle()
                with m.Elif(d.op == Op.END):
                    m.d.comb += [self.check_done.eq(1), self.check_error.eq(Error.OK)]
                    m.d.sync += [self.busy.eq(1), layer_cycles.eq(0)]
                    begin_fetch(first)
                    m.next = "FETCH"
                with m.Elif(index == slots - 1):
                    m.d.comb += [self.check_done.eq(1), self.check_error.eq(Error.NO_END)]
                    m.d.sync += self.error.eq(Error.NO_END)
                    to_idle()
                with m.Else():
                    begin_fetch(index + 1)
                    m.next = "CHECK"
            with m.State("FETCH"):
                with m.If((stop != 0) & (index == stop) | (index >= slots)):
                    m.d.sync += [fetching.eq(0), self.busy.eq(0), self.done.eq(1)]
                    to_idle()
                with m.Elif(fetched):
                    m.d.sync += fetching.eq(0)
                    m.next = "DISPATCH"
            with m.State("DISPATCH"):
                with m.If(d.op == Op.END):
                    m.d.sync += [self.busy.eq(0), self.done.eq(1)]
                    to_idle()
                with m.Elif(d.op == Op.INPUT):
                    m.next = "NEXT"
                with m.Else():
                    m.d.comb += self.run.eq(executor)
                    m.d.sync += self.active.eq(executor)
                    m.next = "WAIT"
            with m.State("WAIT"):
                with m.If((self.executor_busy & self.active) == 0):
                    m.d.sync += self.active.eq(0)
                    m.next = "NEXT"
            with m.State("NEXT"):
                m.d.comb += counters.w_en.eq(1)
                m.d.sync += layer_cycles.eq(0)
                begin_fetch(index + 1)
                m.next = "FETCH"
        return m

