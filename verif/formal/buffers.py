"""Formal harnesses of the stream primitives of :mod:`spikeforge.hdl.stream`: the register
slice, the skid buffer (plain and registered) and the queue, on 2-bit payloads.

Each is checked against a :class:`~.properties.ShadowQueue` of the beats it has taken and not
yet delivered: the beat on offer is the oldest of them (order kept, none lost or repeated), and
the buffer never holds more than its capacity.
"""

from amaranth.hdl import Value

from spikeforge.hdl.stream import Queue, SkidBuffer, StreamBuffer

from .harness import Harness, Mutation, valid_drops
from .properties import ShadowQueue, forces_ready, implies, stream_sink, stream_source, transfer

__all__ = ["StreamBufferHarness", "SkidHarness", "RegisteredSkidHarness", "QueueHarness"]

PAYLOAD_BITS = 2


def _mutations(*, comb_output, repeats, corrupts):
    """The mutations of a buffer, each breaking the property it ``catches``."""
    return {
        "valid_drops": valid_drops(comb=comb_output),
        "ready_while_full": Mutation(catches="within_capacity",
                                     text="i.ready stays high when the buffer is full",
                                     after=forces_ready("i")),
        "repeats": Mutation(catches="no_beat_from_nothing",
                            text="a delivered beat is offered again", after=repeats),
        "corrupts": Mutation(catches="order_kept", text="a stored beat has a bit flipped",
                             after=corrupts),
    }


def _register_repeats(dut, m, internals):
    with m.If(transfer(dut.o)):
        m.d.sync += dut.o.valid.eq(1)


def _register_corrupts(dut, m, internals):
    with m.If(dut.i.ready):
        m.d.sync += dut.o.payload.eq(dut.i.payload ^ 1)


def _spare_repeats(dut, m, internals):
    # the spare, once full, never empties
    with m.If(internals("full")):
        m.d.sync += internals("full").eq(1)


def _spare_corrupts(dut, m, internals):
    with m.If(~internals("full")):
        m.d.sync += internals("spare").eq(dut.i.payload ^ 1)


def _register_valid_from_nothing(dut, m, internals):
    # o.valid rises whenever the register may load, a beat offered or not
    with m.If(dut.i.ready):
        m.d.sync += dut.o.valid.eq(1)


def _full_from_nothing(dut, m, internals):
    # the spare is marked full in a cycle with no beat on offer
    with m.If(~dut.i.valid):
        m.d.sync += internals("full").eq(1)


def _spare_overwritten(dut, m, internals):
    # the spare keeps copying i.payload while it holds a beat
    with m.If(internals("full")):
        m.d.sync += internals("spare").eq(dut.i.payload)


def _fifo_full_early(dut, m, internals):
    # the queue refuses beats one beat before it is full
    with m.If(dut.level == dut.depth - 1):
        m.d.comb += [dut.i.ready.eq(0), internals("w_en").eq(0)]


def _fifo_repeats(dut, m, internals):
    # the FIFO is never told that its beat was read
    m.d.comb += internals("r_en").eq(0)


def _fifo_corrupts(dut, m, internals):
    m.d.comb += internals("w_data").eq(dut.i.payload ^ 1)


class BufferHarness(Harness):
    """Common part: source on ``i``, sink on ``o``, the shadow queue and the order, count and
    bound properties. ``capacity``: beats the buffer may hold; ``bypass``: a beat may pass
    from ``i`` to ``o`` in the cycle it arrives."""

    capacity = 1
    bypass = False
    # "bound" where the order check needs contents the harness cannot see (a memory)
    order_group = "prove"
    cover_depth = 8
    mutations = _mutations(comb_output=True, repeats=_spare_repeats, corrupts=_spare_corrupts)
    suite_mutation = "ready_while_full"

    def check(self, m, checks, dut, internals):
        stream_source(m, checks, dut.i, name="i")
        stream_sink(m, checks, dut.o, name="o")
        shadow = ShadowQueue(m, push=transfer(dut.i), pop=transfer(dut.o), data=dut.i.payload,
                             capacity=self.capacity + 1, name="shadow")
        self.shadow = shadow
        source = "the beat arriving" if self.bypass else "nothing"
        checks.prove("no_beat_from_nothing",
                     implies(transfer(dut.o), (shadow.count != 0)
                             | (transfer(dut.i) if self.bypass else 0)),
                     f"a beat leaves only if one is held (or, with an empty buffer, "
                     f"{source} passes through)")
        getattr(checks, self.order_group)(
                     "order_kept",
                     implies(dut.o.valid,
                             Value.cast(dut.o.payload) == shadow.head(Value.cast(dut.i.payload))),
                     "the beat on offer is the oldest beat taken and not delivered")
        checks.prove("within_capacity", shadow.count <= self.capacity,
                     f"beats taken - beats delivered <= {self.capacity}")
        self.occupancy(m, checks, dut, internals, shadow)
        checks.cover("fills", shadow.count == self.capacity, "the buffer fills up")
        checks.cover("drains", transfer(dut.o) & (shadow.count == 1) & ~transfer(dut.i)
                     & (shadow.entries[0] == (1 << PAYLOAD_BITS) - 1),
                     "its last beat leaves")

    def occupancy(self, m, checks, dut, internals, shadow):
        """The invariant tying the buffer's registers to the shadow queue."""
        raise NotImplementedError


class StreamBufferHarness(BufferHarness):
    unit = "stream_buffer"
    component = StreamBuffer
    params = {"shape": PAYLOAD_BITS}
    mutations = {**_mutations(comb_output=False, repeats=_register_repeats,
                              corrupts=_register_corrupts),
                 "valid_from_nothing": Mutation(
                     catches="occupancy",
                     text="o.valid rises whenever i.ready is high, a beat offered or not",
                     after=_register_valid_from_nothing)}
    suite_mutation = "valid_drops"

    def occupancy(self, m, checks, dut, internals, shadow):
        checks.prove("occupancy", shadow.count == dut.o.valid,
                     "the register holds a beat exactly when one is owed")


class SkidHarness(BufferHarness):
    unit = "skid"
    component = SkidBuffer
    params = {"shape": PAYLOAD_BITS}
    bypass = True
    mutations = {**BufferHarness.mutations,
                 "full_from_nothing": Mutation(
                     catches="occupancy",
                     text="the spare is marked full in a cycle with no beat on offer",
                     after=_full_from_nothing),
                 "spare_overwritten": Mutation(
                     catches="spare_is_newest",
                     text="the spare keeps copying i.payload while it holds a beat",
                     after=_spare_overwritten)}
    occupancy_text = "the spare holds a beat exactly when one is owed"

    def owed(self, dut, full, shadow):
        """Whether the unit's registers hold exactly the beats the shadow queue owes."""
        return shadow.count == full

    def occupancy(self, m, checks, dut, internals, shadow):
        full, spare = internals("full"), internals("spare")
        checks.prove("occupancy", self.owed(dut, full, shadow) & (dut.i.ready == ~full),
                     f"{self.occupancy_text}; i.ready is ~full")
        checks.prove("spare_is_newest", implies(full, spare == shadow.last()),
                     "the spare holds the newest beat owed")


class RegisteredSkidHarness(SkidHarness):
    unit = "skid_registered"
    params = {"shape": PAYLOAD_BITS, "registered": True}
    capacity = 2
    bypass = False
    occupancy_text = ("output register + spare hold the beats owed, the spare only behind a "
                      "full output register")

    def owed(self, dut, full, shadow):
        return (shadow.count == full + dut.o.valid) & implies(full, dut.o.valid)


class QueueHarness(BufferHarness):
    unit = "queue"
    component = Queue
    params = {"shape": PAYLOAD_BITS, "depth": 3}
    capacity = 3
    # the base case must reach a full queue and a stall behind it
    prove_depth = 6
    cover_depth = 10
    order_group = "bound"
    bound_depth = 12
    mutations = {**_mutations(comb_output=True, repeats=_fifo_repeats, corrupts=_fifo_corrupts),
                 "full_early": Mutation(catches="level_counts",
                                        text="i.ready falls one beat before the queue is full",
                                        after=_fifo_full_early)}

    def occupancy(self, m, checks, dut, internals, shadow):
        checks.prove("level_counts", (shadow.count == dut.level)
                     & (dut.i.ready == (dut.level != self.capacity)),
                     "level = beats owed; i.ready = room")
