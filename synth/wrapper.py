"""Out-of-context wrapper: any component behind five pins, with none of its logic optimized away.

A unit's stream ports need hundreds of pins, more than any package has (the iCE40 UP5K SG48 has
39). Letting the ports dangle would let Yosys delete the logic they feed. The wrapper keeps every
port bit alive and registered:

- every input bit of the unit is a stage of a serial-in shift register fed from pin ``sdi``;
- every output bit is registered, and copied, when ``load`` is high, into a parallel-in/serial-out
  shift register that drains through pin ``sdo``.

So every input is an independent register the tools cannot treat as constant, and every output
reaches a pin, and every timing path through the unit starts and ends at a flip-flop, as it would
in a system. The unit is kept as its own module (``keep_hierarchy``) so its cells can be counted
apart from the wrapper's: :mod:`.flow` reports the unit's cells and the whole design's figures
from nextpnr separately. The unit's inputs come straight from flip-flops and its outputs go
straight into flip-flops, so no wrapper logic sits on a path through the unit. The wrapper costs
one flip-flop per input bit, and two flip-flops and one LUT (the load/shift multiplexer) per
output bit.
"""

from amaranth.hdl import Module, Signal, Cat, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out, Flow

__all__ = ["OutOfContext", "port_bits"]

DUT_NAME = "dut"


def port_bits(component):
    """``(inputs, outputs)``: lists of ``(path, Value)`` of the component's ports, by flow."""
    inputs, outputs = [], []
    for path, member, value in component.signature.flatten(component):
        (inputs if member.flow == Flow.In else outputs).append((path, Value.cast(value)))
    return inputs, outputs


class OutOfContext(wiring.Component):
    """Wraps ``component`` so that it needs five pins: ``clk``, ``rst``, ``sdi``, ``load``,
    ``sdo``.

    Parameters
    ----------
    component : wiring.Component
        The unit, clocked by the ``sync`` domain. Becomes submodule ``dut``.

    Attributes
    ----------
    input_bits, output_bits : int
        Port bits into and out of the unit.

    Members
    -------
    sdi : In(1)
        Serial data into the input shift register.
    load : In(1)
        Capture the unit's outputs (else shift the output register towards ``sdo``).
    sdo : Out(1)
        Serial data out of the output shift register.
    """

    sdi: In(1)
    load: In(1)
    sdo: Out(1)

    def __init__(self, component):
        if not isinstance(component, wiring.Component):
            raise TypeError(f"component must be a wiring.Component, not {component!r}")
        self._component = component
        inputs, outputs = port_bits(component)
        self._inputs = inputs
        self._outputs = outputs
        super().__init__()

    component = property(lambda self: self._component)
    input_bits = property(lambda self: sum(len(v) for _, v in self._inputs))
    output_bits = property(lambda self: sum(len(v) for _, v in self._outputs))

    def elaborate(self, platform):
        m = Module()
        m.submodules[DUT_NAME] = self._component

        if self.input_bits:
            chain = Signal(self.input_bits)
            m.d.sync += chain.eq(Cat(self.sdi, chain[:-1]))
            offset = 0
            for _, value in self._inputs:
                m.d.comb += value.eq(chain[offset:offset + len(value)])
                offset += len(value)

        if self.output_bits:
            # A plain register first, so that no wrapper LUT lengthens the unit's output paths.
            outputs = Signal(self.output_bits)
            m.d.sync += outputs.eq(Cat(value for _, value in self._outputs))
            capture = Signal(self.output_bits)
            with m.If(self.load):
                m.d.sync += capture.eq(outputs)
            with m.Else():
                m.d.sync += capture.eq(capture << 1)
            m.d.comb += self.sdo.eq(capture[-1])
        return m
