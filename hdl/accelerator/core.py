"""The accelerator: one design, elaborated for a named configuration, that runs any compiled
program loaded through its host port.

::

    i (bytes) ─▶ HostPort ─▶ o (bytes)
                   │ memory ports (while idle)      │ START / STATUS / CYCLES / RESET
                   ▼                                ▼
      program weights biases thresholds  ◀──  Sequencer ── start/busy ──▶ executors
      spikes values membranes scores     ◀───────────────────────────── conv, lif,
      (RegisteredReadMemory each)                                        elementwise, attention

Every memory has one read and one write port. Its clients are the host port (only while the
sequencer is idle), the sequencer (program reads) and the executors that name it in their
signature (only the one running). Each client's port is gated by its ownership, the gated
ports are ORed (an idle client may drive anything) and the OR passes the memory's input stage
(:data:`~.ports.INPUT_STAGES`; on ECP5 one copy of its address and enable registers per few
block RAMs).

The sequencer and each executor run in a clock domain of their own (``sync``'s clock), reset
by a register of their own: one cycle after the host's RESET or ``sync``'s reset. So each
reset net starts at one flip-flop, not at the OR of two resets shared by the whole design,
which was the routed board's critical path. The reset reaches their control only (states,
valid bits, counters): data registers are ``reset_less`` (each loaded before a valid flag or
a start makes it count), so the five reset nets reach about a tenth of the flip-flops.
"""

import operator
from functools import reduce

from amaranth.hdl import ClockDomain, ClockSignal, DomainRenamer, Module, Mux, Signal, Value
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from spikeforge.contract.configs import CONFIGS, DEFAULT_CONFIG, get_config
from spikeforge.contract.program import Memory, memory_map

from ..memory import RegisteredReadMemory
from ..replica import kept_register
from .attention import AttentionExecutor
from .conv import ConvExecutor
from .elementwise import ElementwiseExecutor
from .host import HostPort
from .lif import LifExecutor
from .ports import row_shape
from .sequencer import Sequencer

__all__ = ["Accelerator", "EXECUTORS", "PARTS", "build_part"]

#: Executor name (the keys of :data:`~.sequencer.EXECUTOR_OPS`) → its class.
EXECUTORS = {"conv": ConvExecutor, "lif": LifExecutor, "elementwise": ElementwiseExecutor,
             "attention": AttentionExecutor}
#: The parts of the design that elaborate alone (``spikeforge synth parts``).
PARTS = ("host", "sequencer", *EXECUTORS)

# Memories kept in LUT RAM (small); the rest are block RAM.
_DISTRIBUTED = ("scores",)

_MEMORY_NAMES = tuple(m.name.lower() for m in Memory)


class Accelerator(wiring.Component):
    """The programmable accelerator of configuration ``config`` (a name of
    :data:`spikeforge.contract.configs.CONFIGS`, default ``ulx3s-85f``; anything else raises
    ``ValueError`` naming ``config``).

    Members
    -------
    i : In(stream.Signature(8))
        Host bytes in: COBS frames of :mod:`spikeforge.contract.host` requests.
    o : Out(stream.Signature(8))
        Answer frames out.
    busy, done : Out(1)
        A program runs; the last run reached its end (the board's LEDs).
    error : Out(4)
        The last START's :class:`~spikeforge.contract.program.Error` code.
    """

    def __init__(self, config=DEFAULT_CONFIG):
        self._config = _checked_config(config)
        self._executors = {name: cls(self._config) for name, cls in EXECUTORS.items()}
        super().__init__({
            "i": In(stream.Signature(8)), "o": Out(stream.Signature(8)),
            "busy": Out(1), "done": Out(1), "error": Out(4),
        })

    config = property(lambda self: self._config)

    def elaborate(self, platform):
        m = Module()
        c = self._config
        m.submodules.host = host = HostPort(c)
        seq = _sequencer(c, self._executors["attention"])
        m.submodules.sequencer = _own_reset(m, "sequencer", host.control.reset, platform)(seq)
        wiring.connect(m, wiring.flipped(self.i), host.i)
        wiring.connect(m, host.o, wiring.flipped(self.o))
        m.d.comb += [self.busy.eq(seq.busy), self.done.eq(seq.done), self.error.eq(seq.error)]

        # Host port <-> sequencer control.
        ctl = host.control
        m.d.comb += [
            seq.start.eq(ctl.start), seq.first.eq(ctl.first), seq.stop.eq(ctl.stop),
            ctl.check_done.eq(seq.check_done), ctl.check_error.eq(seq.check_error),
            ctl.busy.eq(seq.busy), ctl.done.eq(seq.done), ctl.error.eq(seq.error),
            ctl.layer.eq(seq.layer), ctl.cycles.eq(seq.cycles),
            seq.cycles_layer.eq(ctl.cycles_layer), ctl.cycles_value.eq(seq.cycles_value),
        ]

        # Executors: started by the sequencer, reset with the host's RESET.
        for k, (name, executor) in enumerate(self._executors.items()):
            m.submodules[name] = _own_reset(m, name, ctl.reset, platform)(executor)
            m.d.comb += [executor.desc.eq(seq.desc), executor.start.eq(seq.run[k]),
                         seq.executor_busy[k].eq(executor.busy)]

        # Memories and their clients: (port, owns the memory now).
        host_owns = ~seq.owns
        for name in _MEMORY_NAMES:
            spec = memory_map(c)[name]
            memory = RegisteredReadMemory(
                shape=row_shape(c, Memory[name.upper()]), depth=spec.depth,
                style="distributed" if name in _DISTRIBUTED else "block", input_stage=True)
            m.submodules[f"{name}_memory"] = memory
            clients = [(getattr(host, name), host_owns)]
            if name == "program":
                clients.append((seq.program, seq.owns))
            for k, (ename, executor) in enumerate(self._executors.items()):
                if name in executor.signature.members:
                    clients.append((getattr(executor, name), seq.active[k]))
            _arbitrate(m, name, memory, clients)
        return m


def _checked_config(config):
    if not isinstance(config, str) or config not in CONFIGS:
        raise ValueError(f"config must be one of {', '.join(CONFIGS)}, not {config!r}")
    return get_config(config)


def _sequencer(config, attention):
    return Sequencer(config, attention_channels=getattr(attention, "max_channels", None))


def build_part(config, name):
    """Part ``name`` (one of :data:`PARTS`) of the accelerator of configuration ``config`` (a
    name of :data:`~spikeforge.contract.configs.CONFIGS`), as the accelerator builds it, without
    the memories and the rest of the design (its ports are the part's own); ``ValueError``
    naming ``part`` or ``config`` otherwise."""
    if name not in PARTS:
        raise ValueError(f"part must be one of {', '.join(PARTS)}, not {name!r}")
    c = _checked_config(config)
    if name == "host":
        return HostPort(c)
    if name == "sequencer":
        return _sequencer(c, AttentionExecutor(c))
    return EXECUTORS[name](c)


def _own_reset(m, name, reset, platform):
    """A ``DomainRenamer`` into a new domain ``<name>_sync`` clocked by ``sync``'s clock and
    reset by a register of its own that is high in the cycle after ``reset`` or ``sync``'s
    reset (see the module docstring)."""
    domain = ClockDomain(f"{name}_sync", local=True)
    m.domains += domain
    # 1 through sync's reset (its init); kept: Yosys would merge the copies into one
    held = kept_register(m, reset, name=f"{name}_reset", platform=platform, init=1,
                         reset_less=False)
    m.d.comb += [domain.clk.eq(ClockSignal("sync")), domain.rst.eq(held)]
    return DomainRenamer({"sync": domain.name})


def _arbitrate(m, name, memory, clients):
    """Drive ``memory`` (its input stage registers) with the OR of its clients' ports, each
    gated by its ownership flag (at most one client owns a memory at a time); every client sees
    the read data."""
    for field in ("r_addr", "r_en", "w_addr", "w_en", "w_data"):
        target = Value.cast(getattr(memory, field))
        gated = []
        for k, (port, owns) in enumerate(clients):
            term = Signal(len(target), name=f"{name}_{field}_{k}")
            m.d.comb += term.eq(Mux(owns, Value.cast(getattr(port, field)), 0))
            gated.append(term)
        m.d.comb += target.eq(reduce(operator.or_, gated))
    for port, _ in clients:
        m.d.comb += port.r_data.eq(memory.r_data)
