"""The seams inside the accelerator, defined once: the descriptor as a ``data.StructLayout``
built from :data:`spikeforge.contract.program.FIELDS`, the row shape of every memory of a
configuration, the memory port every client (host port, sequencer, executors) drives, and the
control signature of an executor.

Memory port (the client's view; the memory answers)
    Every port input passes :data:`INPUT_STAGES` registers (the memory's input stage, after
    the clients are ORed) before the memory. Read: with ``r_en`` high in cycle *c*, row ``r_addr``
    appears on ``r_data`` in cycle *c + 3* (:data:`READ_LATENCY`: the input register, then
    :class:`~spikeforge.hdl.memory.RegisteredReadMemory` with its output register always
    enabled) and stays there until the next read's data replaces it. Write: with ``w_en`` high
    in cycle *c*, ``w_data`` is stored in row ``w_addr`` at the end of *c + 1*. Reads and
    writes pass the same stages, so their order is the order the client issued them; a read
    issued in the same cycle as a write of its row returns the old or the new row
    (undefined); clients never depend on it.

Executor (one per op family: conv, LIF, element-wise, attention)
    ``desc`` holds the current descriptor while ``busy``. ``start`` is a one-cycle pulse with
    ``busy`` low; ``busy`` is high from the next cycle until the executor's last memory write
    has been issued, then low (low and no write in flight: done). It owns the memories from the
    cycle after ``start`` to the first with ``busy`` low (``active``); its ports are gated off
    outside, so its enables must be low there (``verif/accel_harness.py``), other outputs any.
"""

from amaranth.hdl import signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from spikeforge.contract.program import FIELDS, Memory, memory_map

__all__ = ["INPUT_STAGES", "READ_LATENCY", "descriptor_layout", "row_shape", "memory_port", "executor_signature",
           "address_bits"]

#: Cycles from a client's port to the memory: every memory registers its arbitrated inputs
#: (``RegisteredReadMemory(input_stage=True)``), so no client's logic is in series with the
#: wide OR and the routes to the block RAMs.
INPUT_STAGES = 1
#: Cycles from a read's ``r_en`` to its row on ``r_data``: the input stage, the memory's read
#: register and its output register.
READ_LATENCY = INPUT_STAGES + 2


def descriptor_layout():
    """The layer descriptor: one unsigned field per :data:`FIELDS` entry, in order (so the
    layout's bits are the descriptor's bits, the program words concatenated)."""
    return data.StructLayout({name: unsigned(bits) for name, bits in FIELDS})


def address_bits(depth):
    """Bits of an address into ``depth`` rows (at least 1)."""
    return max(1, (depth - 1).bit_length())


def row_shape(config, memory):
    """Shape of one row of ``memory`` (a :class:`~spikeforge.contract.program.Memory`) of
    ``config``: ``unsigned(32)`` for ``program``, ``unsigned(word_bits)`` for ``spikes``, else
    ``ArrayLayout(signed(element_bits), lanes)`` (lane ``l`` = channel ``g * lanes + l``)."""
    spec = memory_map(config)[Memory(memory).name.lower()]
    if Memory(memory) in (Memory.PROGRAM, Memory.SPIKES):
        return unsigned(spec.element_bits)
    return data.ArrayLayout(signed(spec.element_bits), spec.lanes)


def memory_port(config, memory):
    """Signature of a client's port to ``memory`` of ``config`` (see the module docstring)."""
    spec = memory_map(config)[Memory(memory).name.lower()]
    bits = address_bits(spec.depth)
    shape = row_shape(config, memory)
    return wiring.Signature({
        "r_addr": Out(bits), "r_en": Out(1), "r_data": In(shape),
        "w_addr": Out(bits), "w_en": Out(1), "w_data": Out(shape),
    })


def executor_signature(config, memories):
    """Signature of an executor that uses ``memories`` (names, e.g. ``("spikes", "weights")``):
    ``desc``, ``start``, ``busy`` and one :func:`memory_port` member per memory, named after
    it."""
    members = {"desc": In(descriptor_layout()), "start": In(1), "busy": Out(1)}
    for name in memories:
        members[name] = Out(memory_port(config, Memory[name.upper()]))
    return wiring.Signature(members)
