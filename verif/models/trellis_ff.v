// Simulation model of the Lattice ECP5 TRELLIS_FF flip-flop for the subset SpikeForge uses:
// rising clock (CLKMUX "CLK"), always enabled (CEMUX "1"), LSR tied low, initial value 0
// (REGSET "RESET"). hdl/memory.py instantiates it for the replicated input registers of a
// block-RAM memory; Yosys's own cells_sim_ecp5.v is not used (it would need its include files).
// Not modelled (the model stops the simulation if they are used): other CLKMUX or CEMUX
// settings, REGSET "SET", LSR high.
`timescale 1ns / 1ps
module TRELLIS_FF (input CLK, input CE, input LSR, input DI, input M, output reg Q);
  parameter GSR = "ENABLED";
  parameter CEMUX = "1";
  parameter CLKMUX = "CLK";
  parameter LSRMUX = "LSR";
  parameter REGSET = "RESET";
  parameter SRMODE = "LSR_OVER_CE";
  initial begin
    Q = 1'b0;
    if (CEMUX != "1" || CLKMUX != "CLK" || REGSET != "RESET") begin
      $display("TRELLIS_FF model: unsupported CEMUX %s, CLKMUX %s or REGSET %s", CEMUX, CLKMUX,
               REGSET);
      $finish;
    end
  end
  always @(posedge CLK) begin
    if (LSR === 1'b1) begin
      $display("TRELLIS_FF model: LSR is not modelled");
      $finish;
    end
    Q <= DI;
  end
endmodule
