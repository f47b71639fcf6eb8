"""Scaffolding shared by the cocotb testbenches: parameters, clock and reset, cycle count, the
in-order scoreboard, and the JSON report that :func:`spikeforge.verif.runner.simulate` reads."""

import json
import os
import random
from collections import deque

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import RisingEdge, ClockCycles

__all__ = ["params", "stimulus", "Testbench", "Scoreboard"]


def params():
    """The unit's elaboration parameters, as the runner generated the Verilog with them."""
    return json.loads(os.environ["SPIKEFORGE_PARAMS"])


def stimulus():
    """Stimulus settings (counts, stall probabilities) for this run."""
    return json.loads(os.environ.get("SPIKEFORGE_STIMULUS", "{}"))


class Scoreboard:
    """In-order checker: DUT outputs against expected values, whichever arrives first.

    The model may lag the DUT (it is fed from what the DUT accepted, which is only known once the
    input transfers happen), so outputs wait in a queue until their expected value exists.
    Counts every comparison and every mismatch; outputs never matched count as mismatches too.
    """

    def __init__(self, log, name="out", show=8):
        self._log = log
        self._name = name
        self._show = show
        self._expected = deque()
        self._actual = deque()
        self.checked = 0
        self.mismatches = 0

    def expect(self, value):
        self._expected.append(value)
        self._compare()

    def check(self, actual):
        self._actual.append(actual)
        self._compare()

    def _compare(self):
        while self._expected and self._actual:
            want, got = self._expected.popleft(), self._actual.popleft()
            if got != want:
                self.mismatches += 1
                if self.mismatches <= self._show:
                    self._log.error("%s #%d: got %r, expected %r",
                                    self._name, self.checked, got, want)
            self.checked += 1

    @property
    def pending(self):
        """Expected values not yet matched by an output, plus outputs with no expected value."""
        return len(self._expected) + len(self._actual)


class Testbench:
    """Owns the clock, the reset and the cycle counter of one DUT."""

    def __init__(self, dut, period_ns=10):
        self.dut = dut
        self.clk = dut.clk
        self.rng = random.Random(cocotb.RANDOM_SEED)
        self.cycles = 0
        self._period = period_ns
        cocotb.start_soon(Clock(dut.clk, period_ns, unit="ns").start())

    async def reset(self, cycles=3):
        self.dut.rst.value = 1
        await ClockCycles(self.clk, cycles)
        self.dut.rst.value = 0
        await RisingEdge(self.clk)
        cocotb.start_soon(self._count())

    async def _count(self):
        while True:
            await RisingEdge(self.clk)
            self.cycles += 1

    async def until(self, condition, *, timeout_cycles):
        """Wait until ``condition()`` holds or ``timeout_cycles`` pass; return whether it held."""
        for _ in range(timeout_cycles):
            if condition():
                return True
            await RisingEdge(self.clk)
        self.dut._log.error("timed out after %d cycles", timeout_cycles)
        return condition()

    def report(self, *scoreboards):
        """Write the figures for the runner and fail the test on any mismatch or missing output."""
        checked = sum(s.checked for s in scoreboards)
        mismatches = sum(s.mismatches + s.pending for s in scoreboards)
        path = os.environ.get("SPIKEFORGE_REPORT")
        if path:
            with open(path, "w") as f:
                json.dump({"checked": checked, "mismatches": mismatches,
                           "cycles": self.cycles}, f)
        assert checked > 0, "the testbench checked nothing"
        assert mismatches == 0, f"{mismatches} mismatches against the golden model"
