"""Verification: cocotb stream drivers and monitors, scoreboards, testbenches, and the runner that
turns an ``hdl/`` component into Verilog and simulates it on Icarus or Verilator."""
