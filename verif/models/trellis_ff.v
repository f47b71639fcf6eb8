// Simulation model of the Lattice ECP5 TRELLIS_FF flip-flop for the subset SpikeForge uses:
// rising clock (CLKMUX "CLK"), always enabled (CEMUX "1"), a synchronous LSR (SRMODE
// "LSR_OVER_CE") that sets Q to 1 (REGSET "SET") or 0 ("RESET"), initial value that of LSR.
// hdl/replica.py instantiates it for the register copies synthesis must keep apart; Yosys's
// own cells_sim_ecp5.v is not used (it would need its include files).
// Not modelled (the model stops the simulation if they are used): other CLKMUX, CEMUX or
// SRMODE settings.
`timescale 1ns / 1ps
module TRELLIS_FF (input CLK, input CE, input LSR, input DI, input M, output reg Q);
  parameter GSR = "ENABLED";
  parameter CEMUX = "1";
  parameter CLKMUX = "CLK";
  parameter LSRMUX = "LSR";
  parameter REGSET = "RESET";
  parameter SRMODE = "LSR_OVER_CE";
  initial begin
    Q = REGSET == "SET";
    if (CEMUX != "1" || CLKMUX != "CLK" || SRMODE != "LSR_OVER_CE") begin
      $display("TRELLIS_FF model: unsupported CEMUX %s, CLKMUX %s or SRMODE %s", CEMUX, CLKMUX,
               SRMODE);
      $finish;
    end
  end
  always @(posedge CLK)
    Q <= LSR === 1'b1 ? REGSET == "SET" : DI;
endmodule
