"""Building blocks of the formal harnesses: named properties, stream contracts, beat counters,
white-box probes of a unit's internal state, and mutations of a unit.

A property is an Amaranth ``Assert``/``Assume``/``Cover`` whose message is its name; the runner
renames its RTLIL cell after that name (:func:`name_checks`), so SymbiYosys reports each property
by name. Every property belongs to one *group*:

``prove``
    proved by k-induction (``sby`` mode ``prove``);
``bound``
    checked to the harness's BMC depth (mode ``bmc``) where induction does not close;
``cover``
    a trace reaching it must exist (mode ``cover``).

Reset is left free (the solver may raise ``rst`` at any cycle), so every property holds across
resets too; the registers a harness adds reset with the unit.
"""

import contextlib
import re
from dataclasses import dataclass

from amaranth.hdl import (Array, Assert, Assume, Cover, Fragment, Module, Mux, Shape, Signal,
                          Value)
from amaranth.asserts import AnySeq

__all__ = [
    "GROUPS", "Property", "Checks", "ProbeError", "Internals", "name_checks",
    "free", "past", "counter", "delta", "popcount", "implies", "clamp", "transfer",
    "stream_source", "stream_sink", "lane_beat_framing", "ShadowQueue",
    "mutant", "patched", "wrap_signed", "wrap_unsigned", "drops_valid", "forces_ready",
    "drops_last",
]

GROUPS = ("prove", "bound", "cover")


@dataclass(frozen=True)
class Property:
    """One named property of a harness: ``group`` (see :data:`GROUPS`) and a one-line
    statement of what it checks."""

    name: str
    group: str
    text: str

    @property
    def cell(self):
        """Name of its RTLIL cell (and of its SymbiYosys status entry)."""
        return f"{self.group}__{self.name}"


class Checks:
    """The properties of one harness, added to a module as they are declared.

    ``prove``/``bound``/``cover`` add a named ``Assert``/``Assert``/``Cover`` (combinational: it
    is checked in every cycle); ``assume`` constrains the environment.
    """

    def __init__(self, m):
        self._m = m
        self.properties = []

    def _add(self, group, name, text, statement):
        if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
            raise ValueError(f"property name must be lower_snake_case, not {name!r}")
        prop = Property(name=name, group=group, text=text)
        if any(p.cell == prop.cell for p in self.properties):
            raise ValueError(f"property {name!r} is declared twice")
        self.properties.append(prop)
        self._m.d.comb += statement(prop.cell)

    def prove(self, name, test, text):
        """``test`` holds in every reachable state, by k-induction."""
        self._add("prove", name, text, lambda cell: Assert(test, cell))

    def bound(self, name, test, text):
        """``test`` holds in every state reachable within the BMC depth."""
        self._add("bound", name, text, lambda cell: Assert(test, cell))

    def cover(self, name, test, text):
        """Some trace reaches a state where ``test`` holds."""
        self._add("cover", name, text, lambda cell: Cover(test, cell))

    def assume(self, test):
        self._m.d.comb += Assume(test)


# A `$check` cell of Amaranth's RTLIL: its name, the lines before its FORMAT (the message).
_CHECK_CELL = re.compile(
    r'cell \$check (\S+)\n((?:(?!  end\n).*\n)*?)\s*parameter \\FORMAT "([^"]*)"')


def name_checks(text, properties):
    """RTLIL ``text`` with each property's ``$check`` cell renamed from its message to
    :attr:`Property.cell` (Amaranth names them ``$N``)."""
    cells = {p.cell for p in properties}

    def rename(match):
        message = match.group(3)
        if message not in cells:
            return match.group(0)
        return match.group(0).replace(f"cell $check {match.group(1)}",
                                      f"cell $check \\{message}", 1)

    return _CHECK_CELL.sub(rename, text)


class ProbeError(LookupError):
    pass


class Internals:
    """White-box access to the signals of an elaborated unit, by name.

    An invariant that k-induction can close often has to speak of a unit's internal state (the
    valid bits of its pipeline stages, a slot counter): those are local signals of its
    ``elaborate``, found here in the statements of its fragment. A missing or ambiguous name
    raises :class:`ProbeError` naming the unit, so a rename in ``hdl/`` fails loudly.
    """

    def __init__(self, fragment, unit):
        self._unit = unit
        self._signals = {}
        self._collect(fragment, ())

    def _collect(self, fragment, path):
        for statements in fragment.statements.values():
            for signal in statements._lhs_signals() | statements._rhs_signals():
                found = self._signals.setdefault((path, signal.name), [])
                if not any(signal is other for other in found):
                    found.append(signal)
        for subfragment, name, _ in fragment.subfragments:
            self._collect(subfragment, path + (name,))

    def __call__(self, name, *, under=()):
        """The signal called ``name`` in the unit's own module, or in its submodule at the
        path ``under`` (a tuple of submodule names)."""
        found = self._signals.get((tuple(under), name), [])
        where = ".".join((self._unit,) + tuple(under))
        if not found:
            raise ProbeError(f"{where} has no internal signal {name!r} (renamed in hdl/?)")
        if len(found) > 1:
            raise ProbeError(f"{where} has {len(found)} internal signals named {name!r}")
        return found[0]


def free(m, *values):
    """Drive each of ``values`` with an arbitrary value in every cycle (``AnySeq``)."""
    for value in values:
        value = Value.cast(value)
        m.d.comb += value.eq(AnySeq(len(value)))


def past(m, value, *, name=None):
    """A register holding ``value`` of the previous cycle (0 after reset)."""
    value = Value.cast(value)
    reg = Signal(value.shape(), name=name)
    m.d.sync += reg.eq(value)
    return reg


def counter(m, event, *, bits, name=None):
    """A ``bits``-bit counter of the cycles in which ``event`` is high (modulo ``2**bits``)."""
    count = Signal(bits, name=name)
    with m.If(event):
        m.d.sync += count.eq(count + 1)
    return count


def delta(a, b):
    """``a - b`` modulo ``2**len(a)``: the difference of two counters of the same width."""
    return (a - b)[:len(a)]


def popcount(value):
    """The number of set bits of ``value``."""
    value = Value.cast(value)
    return sum(value[i] for i in range(len(value)))


def implies(a, b):
    return ~Value.cast(a) | b


def clamp(value, shape):
    """``value`` (an exact, wide expression) clamped to the range of ``shape``."""
    shape = Shape.cast(shape)
    low = -(1 << (shape.width - 1)) if shape.signed else 0
    high = (1 << (shape.width - 1)) - 1 if shape.signed else (1 << shape.width) - 1
    return Mux(value < low, low, Mux(value > high, high, value))


def transfer(port):
    """The beat on ``port`` moves this cycle."""
    return port.valid & port.ready


def _stall_registers(m, port, name):
    stalled = past(m, port.valid & ~port.ready, name=f"{name}_stalled")
    held = past(m, Value.cast(port.payload), name=f"{name}_held")
    return stalled, held


def stream_source(m, checks, port, *, name):
    """The environment offering beats on the unit's input ``port``: an arbitrary valid and
    payload in every cycle, assumed to follow the stream rules (once valid, valid and payload
    hold until the beat is taken)."""
    free(m, port.valid, port.payload)
    stalled, held = _stall_registers(m, port, name)
    checks.assume(implies(stalled, port.valid & (Value.cast(port.payload) == held)))


def lane_beat_framing(m, checks, port, *, lane_groups, name):
    """Assume the producer on ``port`` frames its tokens as lane beats: groups 0, 1, ...
    ``lane_groups - 1`` in order, ``first`` on group 0 and ``last`` on the final group.
    Returns the group of the next beat (a harness counter; the lemma ``<name>_group_range``
    keeps it below ``lane_groups`` for the induction)."""
    group = Signal(range(lane_groups), name=f"{name}_group")
    with m.If(transfer(port)):
        m.d.sync += group.eq(Mux(group == lane_groups - 1, 0, group + 1))
    checks.prove(f"{name}_group_range", group < lane_groups,
                 f"the harness's count of {name}'s lane group stays below {lane_groups}")
    beat = port.payload
    checks.assume(implies(port.valid, (beat.group == group) & (beat.first == (group == 0))
                          & (beat.last == (group == lane_groups - 1))))
    return group


def stream_sink(m, checks, port, *, name, ready=None, group="prove"):
    """The environment taking beats from the unit's output ``port`` (an arbitrary ready, or
    ``ready`` if given), and the property ``<name>_contract`` (in ``group``) that the unit
    follows the stream rules on it."""
    if ready is None:
        free(m, port.ready)
    else:
        m.d.comb += port.ready.eq(ready)
    stalled, held = _stall_registers(m, port, name)
    getattr(checks, group)(f"{name}_contract",
                 implies(stalled, port.valid & (Value.cast(port.payload) == held)),
                 f"once {name}.valid is high it stays high, and {name}.payload holds, "
                 f"until {name}.ready")


def mutant(cls, *, label, after=None, during=None, under=()):
    """A subclass of the unit class ``cls`` broken on purpose.

    Its ``elaborate`` runs the parent's inside the context ``during(self)`` (e.g.
    :func:`patched`); then ``after(self, m, internals)`` may add statements to a fresh module
    ``m``, using the unit's ports and its :class:`Internals`. Those statements are appended to
    the unit's own (or to those of its submodule at the path ``under``, which drives the
    signals they assign), so an assignment there overrides the unit's (in the same domain).
    """

    def elaborate(self, platform):
        with during(self) if during is not None else contextlib.nullcontext():
            unit = cls.elaborate(self, platform)
        if after is None:
            return unit
        fragment = Fragment.get(unit, platform)
        patch = Module()
        after(self, patch, Internals(fragment, f"{cls.__name__} ({label})"))
        target = fragment
        for name in under:
            target = target.find_subfragment(name)
        for domain, statements in Fragment.get(patch, platform).statements.items():
            target.add_statements(domain, statements)
        return fragment

    return type(f"{cls.__name__}_{label}", (cls,), {"elaborate": elaborate})


@contextlib.contextmanager
def patched(module, name, replacement):
    """``module.name`` replaced by ``replacement`` for the duration (a mutation that swaps a
    helper the unit calls while it elaborates, e.g. saturation for a wrapping truncation)."""
    if not hasattr(module, name):
        raise ProbeError(f"{module.__name__} has no {name!r} to mutate")
    original = getattr(module, name)
    setattr(module, name, replacement)
    try:
        yield
    finally:
        setattr(module, name, original)


def wrap_signed(value, bits):
    """The low ``bits`` of ``value`` as signed: what a saturation becomes when it wraps."""
    return Value.cast(value)[:bits].as_signed()


def wrap_unsigned(value, bits):
    return Value.cast(value)[:bits]


def drops_valid(port, *, comb=False):
    """A mutation's ``after``: ``port``'s valid falls while the beat waits for ready. ``comb``:
    the unit drives that valid combinationally (the mutant overrides it in the next cycle)."""

    def after(dut, m, internals):
        out = getattr(dut, port)
        if not comb:
            with m.If(out.valid & ~out.ready):
                m.d.sync += out.valid.eq(0)
            return
        waited = Signal(name="mutant_waited")
        m.d.sync += waited.eq(out.valid & ~out.ready)
        with m.If(waited):
            m.d.comb += out.valid.eq(0)

    return after


def forces_ready(port):
    """A mutation's ``after``: the input ``port`` reports every beat on offer as taken, room
    or not."""

    def after(dut, m, internals):
        m.d.comb += getattr(dut, port).ready.eq(1)

    return after


def drops_last(port, *, comb=False):
    """A mutation's ``after``: the beats on ``port`` lose their ``last`` flag (``comb``: the
    unit drives the payload combinationally)."""

    def after(dut, m, internals):
        statement = getattr(dut, port).payload.last.eq(0)
        if comb:
            m.d.comb += statement
        else:
            m.d.sync += statement

    return after


class ShadowQueue:
    """A reference queue of ``capacity`` beats kept by a harness: ``push`` appends ``data``,
    ``pop`` removes the head; a beat pushed and popped in the same cycle while the queue is
    empty passes straight through (a zero-latency buffer's bypass).

    Attributes
    ----------
    count : Signal
        Beats held (one more bit than ``capacity`` needs, so an overflow shows).
    entries : list of Signal
        ``entries[0]`` is the head.
    """

    def __init__(self, m, *, push, pop, data, capacity, name):
        data = Value.cast(data)
        self.capacity = capacity
        self.entries = [Signal(data.shape(), name=f"{name}_{j}") for j in range(capacity)]
        self.count = Signal(range(2 * capacity + 2), name=f"{name}_count")
        bypass = push & pop & (self.count == 0)
        self.popped = pop & ~bypass
        pushed = push & ~bypass
        with m.If(self.popped):
            m.d.sync += [self.entries[j].eq(self.entries[j + 1]) for j in range(capacity - 1)]
        with m.If(pushed):
            with m.Switch(self.count - self.popped):
                for j in range(capacity):
                    with m.Case(j):
                        m.d.sync += self.entries[j].eq(data)
        m.d.sync += self.count.eq(self.count + pushed - self.popped)

    def head(self, incoming):
        """The beat due next: the head, or ``incoming`` while the queue is empty."""
        return Mux(self.count == 0, incoming, self.entries[0])

    def last(self):
        """The most recent beat held (``entries[count - 1]``)."""
        return Array(self.entries)[self.count - 1]
