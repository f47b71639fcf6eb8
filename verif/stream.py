"""cocotb models of ``amaranth.lib.stream`` ports with random idle cycles and back-pressure.

A port named ``x`` appears in the generated Verilog as ``x__valid``, ``x__ready`` and
``x__payload``. Both models sample in the read-only phase after each rising edge: a beat seen
there with ``valid & ready`` transfers at the next edge, so the lists they fill hold exactly the
transfers the DUT performed — the scoreboard's model is fed from :attr:`StreamSource.accepted`,
never from what the test merely meant to send.
"""

from collections import deque

import cocotb
from cocotb.triggers import RisingEdge, ReadOnly, Event, First

__all__ = ["StreamSource", "StreamSink"]


class _Port:
    def __init__(self, dut, name):
        self.valid = getattr(dut, f"{name}__valid")
        self.ready = getattr(dut, f"{name}__ready")
        self.payload = getattr(dut, f"{name}__payload")


class StreamSource:
    """Drives a DUT input stream from a queue, idling before a beat with probability ``idle``.

    Once ``valid`` is raised, it and the payload hold until the transfer (the stream rules).
    ``accepted`` lists the payloads (as ints) in the order the DUT took them; ``on_accept`` is
    called with each as it transfers (the input monitor that feeds a scoreboard's model).

    A DUT that holds ``ready`` low for ``stall_limit`` cycles in a row while a beat waits is
    taken as hung: :meth:`wait_drained` then raises instead of waiting for ever.
    """

    def __init__(self, dut, name, clk, *, rng, idle=0.0, on_accept=None, stall_limit=100_000):
        self._name = name
        self._port = _Port(dut, name)
        self._clk = clk
        self._rng = rng
        self.idle = idle
        self._queue = deque()
        self.accepted = []
        self.on_accept = on_accept
        self._drained = Event()
        self._stall_limit = stall_limit
        self._stuck = Event()
        self._port.valid.value = 0
        cocotb.start_soon(self._run())

    def send(self, payload):
        self._queue.append(int(payload))
        self._drained.clear()

    async def wait_drained(self):
        """Wait until every queued beat has transferred; raise if the DUT hung (see above)."""
        if self._queue:
            await First(self._drained.wait(), self._stuck.wait())
        if self._stuck.is_set():
            raise AssertionError(f"{self._name}: the DUT took no beat for {self._stall_limit} "
                                 f"cycles ({len(self._queue)} beats still queued)")

    async def _run(self):
        presenting = transfer = False
        waited = 0
        while True:
            await RisingEdge(self._clk)
            waited = waited + 1 if presenting and not transfer else 0
            if waited >= self._stall_limit:
                self._stuck.set()
            if transfer:
                beat = self._queue.popleft()
                self.accepted.append(beat)
                if self.on_accept is not None:
                    self.on_accept(beat)
                presenting = False
                if not self._queue:
                    self._drained.set()
            if not presenting and self._queue and self._rng.random() >= self.idle:
                self._port.payload.value = self._queue[0]
                presenting = True
            self._port.valid.value = int(presenting)
            await ReadOnly()
            transfer = presenting and bool(self._port.ready.value)


class StreamSink:
    """Takes a DUT output stream, dropping ``ready`` with probability ``stall`` each cycle.

    ``received`` lists the transferred payloads (as ints); ``on_beat`` is called with each.
    """

    def __init__(self, dut, name, clk, *, rng, stall=0.0, on_beat=None):
        self._port = _Port(dut, name)
        self._clk = clk
        self._rng = rng
        self.stall = stall
        self.on_beat = on_beat
        self.received = []
        self._port.ready.value = 0
        cocotb.start_soon(self._run())

    async def _run(self):
        while True:
            await RisingEdge(self._clk)
            self._port.ready.value = int(self._rng.random() >= self.stall)
            await ReadOnly()
            if self._port.valid.value and self._port.ready.value:
                beat = int(self._port.payload.value)
                self.received.append(beat)
                if self.on_beat is not None:
                    self.on_beat(beat)
