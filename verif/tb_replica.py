"""cocotb testbench: two registers of the same input side by side under random data and random
synchronous resets: :func:`~spikeforge.hdl.replica.kept_register` as built for ECP5
(``TRELLIS_FF`` cells with the model ``verif/models/trellis_ff.v``) and as built without a
platform (an Amaranth register).

The toplevel drives both with ``d`` and shows them as ``dut_q`` and ``ref_q``; they must agree
on every cycle, the reset cycles included.
Parameters: ``width``. Stimulus: ``cycles``, ``reset`` (the probability of a reset cycle).
"""

import cocotb
from cocotb.triggers import FallingEdge

from spikeforge.verif.tb import Testbench, Scoreboard, params, stimulus


@cocotb.test()
async def registers_agree(dut):
    p, s = params(), stimulus()
    tb = Testbench(dut)
    dut.d.value = 0
    await tb.reset()
    board = Scoreboard(dut._log, "register")
    for _ in range(s["cycles"]):
        await FallingEdge(tb.clk)
        board.expect(int(dut.ref_q.value))
        board.check(int(dut.dut_q.value))
        dut.d.value = tb.rng.getrandbits(p["width"])
        dut.rst.value = int(tb.rng.random() < s["reset"])
    tb.report(board)
