"""cocotb testbench: two memories with the ports of :class:`~spikeforge.hdl.memory.
RegisteredReadMemory` side by side under random writes, reads and output enables.

The toplevel drives both from the same inputs (``w_addr``, ``w_data``, ``w_en``, ``r_addr``,
``r_en``, ``o_en``) and shows their read data as ``dut_data`` (the implementation under test: DP16KD
primitives with the simulation model, or a Yosys netlist) and ``ref_data`` (the behavioural
``lib.memory`` path); they must agree on every cycle, X included (Icarus).

Parameters: ``width``, ``depth``, ``collide`` (whether a read may hit the row written at the same
edge: undefined on the primitive, defined by Yosys's bypass logic in a netlist).
Stimulus: ``cycles``, ``write``, ``read``, ``output`` (probabilities of the three enables).
"""

import cocotb
from cocotb.triggers import FallingEdge

from spikeforge.verif.tb import Testbench, Scoreboard, params, stimulus


def _value(handle):
    value = handle.value
    return int(value) if value.is_resolvable else str(value)


@cocotb.test()
async def memories_agree(dut):
    p, s = params(), stimulus()
    width, depth = p["width"], p["depth"]
    tb = Testbench(dut)
    # during reset both registers load row 0 (zero in both), so neither starts undefined (the
    # behavioural read register has no initial value in Amaranth's Verilog)
    for name in ("w_addr", "w_data", "w_en", "r_addr", "r_en", "o_en"):
        getattr(dut, name).value = 0
    dut.r_en.value = dut.o_en.value = 1
    await tb.reset()
    board = Scoreboard(dut._log, "row")
    rng = tb.rng
    # a few hot rows so that reads often find data that was just written
    hot = [rng.randrange(depth) for _ in range(4)]

    def address():
        return rng.choice(hot) if rng.random() < 0.3 else rng.randrange(depth)

    for _ in range(s["cycles"]):
        await FallingEdge(tb.clk)
        board.expect(_value(dut.ref_data))
        board.check(_value(dut.dut_data))
        w_en = int(rng.random() < s["write"])
        r_en = int(rng.random() < s["read"])
        w_addr, r_addr = address(), address()
        if w_en and r_en and w_addr == r_addr and not p["collide"]:
            r_en = 0
        dut.w_addr.value = w_addr
        dut.w_data.value = rng.getrandbits(width)
        dut.w_en.value = w_en
        dut.r_addr.value = r_addr
        dut.r_en.value = r_en
        dut.o_en.value = int(rng.random() < s["output"])
    tb.report(board)
