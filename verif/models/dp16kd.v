// Simulation model of the Lattice ECP5 DP16KD block RAM for the subset SpikeForge uses.
//
// Yosys's share/ecp5/cells_sim.v declares DP16KD as a blackbox, so this model is ours. It is
// checked against Yosys's own block-RAM mapping (share/lattice/brams_map_16kd.v drives the pins
// of every DP16KD it infers; tests/test_bram.py simulates such a netlist with this model against
// the behavioural memory) and against lib.memory through hdl/bram.py's RegisteredReadMemory.
//
// Facts relied on (Lattice TN1264, "ECP5 and ECP5-5G Memory Usage Guide", DP16KD True Dual
// Port RAM; and Yosys's brams_map_16kd.v for the pin order):
//  * 18-bit mode (DATA_WIDTH_x = 18): 1024 words; ADx[13:4] is the word address, ADx[1:0] are
//    the byte write enables (ADx[0]: bits 8:0, ADx[1]: bits 17:9); DIx/DOx bit j is data bit j.
//  * 36-bit mode (DATA_WIDTH_A = DATA_WIDTH_B = 36, the pseudo dual port PDPW16KD as Yosys's
//    brams_map_16kd.v builds it): 512 words; port A writes {DIB, DIA} at ADA[13:5] with byte
//    enables ADA[3:0] (9 bits each, from bit 0), port B reads {DOB, DOA} at ADB[13:5]. DOA
//    leaves through port A's output register (REGMODE_A, OCEA), DOB through port B's
//    (REGMODE_B, OCEB); Lattice's tools set both REGMODEs from the PDPW16KD's one.
//  * A port acts at its clock edge when CEx is high and CSx[2:0] equals CSDECODE_x: with WEx
//    high it writes (and, WRITEMODE NORMAL, its data output holds; WRITETHROUGH shows the new
//    word; READBEFOREWRITE the old one), otherwise it reads the word into its output latch.
//  * REGMODE_x = "OUTREG" adds the output register: one more cycle of read latency; OCEx is its
//    clock enable (it takes the latch at an edge where OCEx is high). "NOREG": DOx is the latch.
//  * Initial contents: INITVAL_xx holds words 16*xx .. 16*xx + 15, word i in bits [20*i +: 18]
//    (in 36-bit mode 18-bit halves: word w is halves 2w, low, and 2w + 1).
//  * Narrow modes (DATA_WIDTH_A = DATA_WIDTH_B = 9, 4, 2 or 1: 2048, 4096, 8192 or 16384 words):
//    the word address is ADx[13:3], [13:2], [13:1] or [13:0] (left-justified, as Yosys's
//    brams_map_16kd.v drives it; the pins below it are 0), no byte enables, data on
//    DIx/DOx[W-1:0]. Initial contents are not modelled in these modes (SpikeForge only builds
//    them with all-zero contents).
// Not modelled (the model stops the simulation if they are used): ports of different data
// widths, RSTx high, GSR. A read of a word written by the other port at the same edge is undefined on the device:
// the model gives X (Icarus shows it; Verilator turns X into 0).
`timescale 1ns / 1ps
module DP16KD (
  input DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9, DIA8, DIA7, DIA6, DIA5,
  input DIA4, DIA3, DIA2, DIA1, DIA0,
  input ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4, ADA3, ADA2, ADA1, ADA0,
  input CEA, OCEA, CLKA, WEA, RSTA, CSA2, CSA1, CSA0,
  output DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6, DOA5,
  output DOA4, DOA3, DOA2, DOA1, DOA0,
  input DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9, DIB8, DIB7, DIB6, DIB5,
  input DIB4, DIB3, DIB2, DIB1, DIB0,
  input ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4, ADB3, ADB2, ADB1, ADB0,
  input CEB, OCEB, CLKB, WEB, RSTB, CSB2, CSB1, CSB0,
  output DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6, DOB5,
  output DOB4, DOB3, DOB2, DOB1, DOB0
);
  parameter DATA_WIDTH_A = 18;
  parameter DATA_WIDTH_B = 18;
  parameter REGMODE_A = "NOREG";
  parameter REGMODE_B = "NOREG";
  parameter RESETMODE = "SYNC";
  parameter ASYNC_RESET_RELEASE = "SYNC";
  parameter CSDECODE_A = "0b000";
  parameter CSDECODE_B = "0b000";
  parameter WRITEMODE_A = "NORMAL";
  parameter WRITEMODE_B = "NORMAL";
  parameter CLKAMUX = "CLKA";
  parameter CLKBMUX = "CLKB";
  parameter GSR = "ENABLED";
  parameter [319:0] INITVAL_00 = 320'h0;
  parameter [319:0] INITVAL_01 = 320'h0;
  parameter [319:0] INITVAL_02 = 320'h0;
  parameter [319:0] INITVAL_03 = 320'h0;
  parameter [319:0] INITVAL_04 = 320'h0;
  parameter [319:0] INITVAL_05 = 320'h0;
  parameter [319:0] INITVAL_06 = 320'h0;
  parameter [319:0] INITVAL_07 = 320'h0;
  parameter [319:0] INITVAL_08 = 320'h0;
  parameter [319:0] INITVAL_09 = 320'h0;
  parameter [319:0] INITVAL_0A = 320'h0;
  parameter [319:0] INITVAL_0B = 320'h0;
  parameter [319:0] INITVAL_0C = 320'h0;
  parameter [319:0] INITVAL_0D = 320'h0;
  parameter [319:0] INITVAL_0E = 320'h0;
  parameter [319:0] INITVAL_0F = 320'h0;
  parameter [319:0] INITVAL_10 = 320'h0;
  parameter [319:0] INITVAL_11 = 320'h0;
  parameter [319:0] INITVAL_12 = 320'h0;
  parameter [319:0] INITVAL_13 = 320'h0;
  parameter [319:0] INITVAL_14 = 320'h0;
  parameter [319:0] INITVAL_15 = 320'h0;
  parameter [319:0] INITVAL_16 = 320'h0;
  parameter [319:0] INITVAL_17 = 320'h0;
  parameter [319:0] INITVAL_18 = 320'h0;
  parameter [319:0] INITVAL_19 = 320'h0;
  parameter [319:0] INITVAL_1A = 320'h0;
  parameter [319:0] INITVAL_1B = 320'h0;
  parameter [319:0] INITVAL_1C = 320'h0;
  parameter [319:0] INITVAL_1D = 320'h0;
  parameter [319:0] INITVAL_1E = 320'h0;
  parameter [319:0] INITVAL_1F = 320'h0;
  parameter [319:0] INITVAL_20 = 320'h0;
  parameter [319:0] INITVAL_21 = 320'h0;
  parameter [319:0] INITVAL_22 = 320'h0;
  parameter [319:0] INITVAL_23 = 320'h0;
  parameter [319:0] INITVAL_24 = 320'h0;
  parameter [319:0] INITVAL_25 = 320'h0;
  parameter [319:0] INITVAL_26 = 320'h0;
  parameter [319:0] INITVAL_27 = 320'h0;
  parameter [319:0] INITVAL_28 = 320'h0;
  parameter [319:0] INITVAL_29 = 320'h0;
  parameter [319:0] INITVAL_2A = 320'h0;
  parameter [319:0] INITVAL_2B = 320'h0;
  parameter [319:0] INITVAL_2C = 320'h0;
  parameter [319:0] INITVAL_2D = 320'h0;
  parameter [319:0] INITVAL_2E = 320'h0;
  parameter [319:0] INITVAL_2F = 320'h0;
  parameter [319:0] INITVAL_30 = 320'h0;
  parameter [319:0] INITVAL_31 = 320'h0;
  parameter [319:0] INITVAL_32 = 320'h0;
  parameter [319:0] INITVAL_33 = 320'h0;
  parameter [319:0] INITVAL_34 = 320'h0;
  parameter [319:0] INITVAL_35 = 320'h0;
  parameter [319:0] INITVAL_36 = 320'h0;
  parameter [319:0] INITVAL_37 = 320'h0;
  parameter [319:0] INITVAL_38 = 320'h0;
  parameter [319:0] INITVAL_39 = 320'h0;
  parameter [319:0] INITVAL_3A = 320'h0;
  parameter [319:0] INITVAL_3B = 320'h0;
  parameter [319:0] INITVAL_3C = 320'h0;
  parameter [319:0] INITVAL_3D = 320'h0;
  parameter [319:0] INITVAL_3E = 320'h0;
  parameter [319:0] INITVAL_3F = 320'h0;

  localparam WIDE = DATA_WIDTH_A == 36 && DATA_WIDTH_B == 36;
  localparam NARROW = DATA_WIDTH_A == DATA_WIDTH_B
                      && (DATA_WIDTH_A == 9 || DATA_WIDTH_A == 4 || DATA_WIDTH_A == 2
                          || DATA_WIDTH_A == 1);
  // Narrow modes: the word address's first pin, and the data bits of a word.
  localparam SHIFT = DATA_WIDTH_A == 9 ? 3 : DATA_WIDTH_A == 4 ? 2 : DATA_WIDTH_A == 2 ? 1 : 0;
  localparam [8:0] MASK = (9'd1 << DATA_WIDTH_A) - 9'd1;
  reg [17:0] mem [0:1023];
  reg [8:0] nmem [0:16383];
  reg [17:0] latch_a, latch_b, out_a, out_b;
  integer i;

  // the three CSDECODE digits, "0b<CS2><CS1><CS0>": the low bit of each character
  localparam [2:0] CS_A = {CSDECODE_A[16], CSDECODE_A[8], CSDECODE_A[0]};
  localparam [2:0] CS_B = {CSDECODE_B[16], CSDECODE_B[8], CSDECODE_B[0]};

  initial begin
    if (!(DATA_WIDTH_A == 18 && DATA_WIDTH_B == 18) && !WIDE && !NARROW) begin
      $display("ERROR: DP16KD model: only DATA_WIDTH_A = DATA_WIDTH_B (1, 2, 4, 9, 18 or 36) is modelled");
      $finish;
    end
    for (i = 0; i < 16384; i = i + 1) nmem[i] = 0;
    latch_a = 0; latch_b = 0; out_a = 0; out_b = 0;
    for (i = 0; i < 16; i = i + 1) begin
      mem[0 + i] = INITVAL_00[20 * i +: 18];
      mem[16 + i] = INITVAL_01[20 * i +: 18];
      mem[32 + i] = INITVAL_02[20 * i +: 18];
      mem[48 + i] = INITVAL_03[20 * i +: 18];
      mem[64 + i] = INITVAL_04[20 * i +: 18];
      mem[80 + i] = INITVAL_05[20 * i +: 18];
      mem[96 + i] = INITVAL_06[20 * i +: 18];
      mem[112 + i] = INITVAL_07[20 * i +: 18];
      mem[128 + i] = INITVAL_08[20 * i +: 18];
      mem[144 + i] = INITVAL_09[20 * i +: 18];
      mem[160 + i] = INITVAL_0A[20 * i +: 18];
      mem[176 + i] = INITVAL_0B[20 * i +: 18];
      mem[192 + i] = INITVAL_0C[20 * i +: 18];
      mem[208 + i] = INITVAL_0D[20 * i +: 18];
      mem[224 + i] = INITVAL_0E[20 * i +: 18];
      mem[240 + i] = INITVAL_0F[20 * i +: 18];
      mem[256 + i] = INITVAL_10[20 * i +: 18];
      mem[272 + i] = INITVAL_11[20 * i +: 18];
      mem[288 + i] = INITVAL_12[20 * i +: 18];
      mem[304 + i] = INITVAL_13[20 * i +: 18];
      mem[320 + i] = INITVAL_14[20 * i +: 18];
      mem[336 + i] = INITVAL_15[20 * i +: 18];
      mem[352 + i] = INITVAL_16[20 * i +: 18];
      mem[368 + i] = INITVAL_17[20 * i +: 18];
      mem[384 + i] = INITVAL_18[20 * i +: 18];
      mem[400 + i] = INITVAL_19[20 * i +: 18];
      mem[416 + i] = INITVAL_1A[20 * i +: 18];
      mem[432 + i] = INITVAL_1B[20 * i +: 18];
      mem[448 + i] = INITVAL_1C[20 * i +: 18];
      mem[464 + i] = INITVAL_1D[20 * i +: 18];
      mem[480 + i] = INITVAL_1E[20 * i +: 18];
      mem[496 + i] = INITVAL_1F[20 * i +: 18];
      mem[512 + i] = INITVAL_20[20 * i +: 18];
      mem[528 + i] = INITVAL_21[20 * i +: 18];
      mem[544 + i] = INITVAL_22[20 * i +: 18];
      mem[560 + i] = INITVAL_23[20 * i +: 18];
      mem[576 + i] = INITVAL_24[20 * i +: 18];
      mem[592 + i] = INITVAL_25[20 * i +: 18];
      mem[608 + i] = INITVAL_26[20 * i +: 18];
      mem[624 + i] = INITVAL_27[20 * i +: 18];
      mem[640 + i] = INITVAL_28[20 * i +: 18];
      mem[656 + i] = INITVAL_29[20 * i +: 18];
      mem[672 + i] = INITVAL_2A[20 * i +: 18];
      mem[688 + i] = INITVAL_2B[20 * i +: 18];
      mem[704 + i] = INITVAL_2C[20 * i +: 18];
      mem[720 + i] = INITVAL_2D[20 * i +: 18];
      mem[736 + i] = INITVAL_2E[20 * i +: 18];
      mem[752 + i] = INITVAL_2F[20 * i +: 18];
      mem[768 + i] = INITVAL_30[20 * i +: 18];
      mem[784 + i] = INITVAL_31[20 * i +: 18];
      mem[800 + i] = INITVAL_32[20 * i +: 18];
      mem[816 + i] = INITVAL_33[20 * i +: 18];
      mem[832 + i] = INITVAL_34[20 * i +: 18];
      mem[848 + i] = INITVAL_35[20 * i +: 18];
      mem[864 + i] = INITVAL_36[20 * i +: 18];
      mem[880 + i] = INITVAL_37[20 * i +: 18];
      mem[896 + i] = INITVAL_38[20 * i +: 18];
      mem[912 + i] = INITVAL_39[20 * i +: 18];
      mem[928 + i] = INITVAL_3A[20 * i +: 18];
      mem[944 + i] = INITVAL_3B[20 * i +: 18];
      mem[960 + i] = INITVAL_3C[20 * i +: 18];
      mem[976 + i] = INITVAL_3D[20 * i +: 18];
      mem[992 + i] = INITVAL_3E[20 * i +: 18];
      mem[1008 + i] = INITVAL_3F[20 * i +: 18];
    end
  end

  wire clk_a = (CLKAMUX == "INV") ? ~CLKA : CLKA;
  wire clk_b = (CLKBMUX == "INV") ? ~CLKB : CLKB;
  wire [9:0] addr_a = {ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4};
  wire [9:0] addr_b = {ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4};
  wire [1:0] be_a = {ADA1, ADA0};
  wire [1:0] be_b = {ADB1, ADB0};
  wire [17:0] di_a = {DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9, DIA8, DIA7,
                      DIA6, DIA5, DIA4, DIA3, DIA2, DIA1, DIA0};
  wire [17:0] di_b = {DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9, DIB8, DIB7,
                      DIB6, DIB5, DIB4, DIB3, DIB2, DIB1, DIB0};
  wire act_a = CEA && ({CSA2, CSA1, CSA0} == CS_A);
  wire act_b = CEB && ({CSB2, CSB1, CSB0} == CS_B);
  wire wr_a = act_a && WEA;
  wire wr_b = act_b && WEB;

  function [17:0] merge(input [17:0] old, input [17:0] din, input [1:0] be);
    merge = {be[1] ? din[17:9] : old[17:9], be[0] ? din[8:0] : old[8:0]};
  endfunction

  // Both modes: the unmodelled resets stop the simulation; each port's output register.
  always @(posedge clk_a) begin
    if (RSTA === 1'b1) begin
      $display("ERROR: DP16KD model: RSTA is not modelled");
      $finish;
    end
    if (OCEA) out_a <= latch_a;
  end
  always @(posedge clk_b) begin
    if (RSTB === 1'b1) begin
      $display("ERROR: DP16KD model: RSTB is not modelled");
      $finish;
    end
    if (OCEB) out_b <= latch_b;
  end

  always @(posedge clk_a) if (!WIDE && !NARROW) begin
    if (wr_a) begin
      mem[addr_a] <= merge(mem[addr_a], di_a, be_a);
      if (WRITEMODE_A == "WRITETHROUGH") latch_a <= merge(mem[addr_a], di_a, be_a);
      else if (WRITEMODE_A == "READBEFOREWRITE") latch_a <= mem[addr_a];
    end else if (act_a) begin
      latch_a <= (wr_b && addr_b == addr_a) ? 18'bx : mem[addr_a];
    end
  end

  always @(posedge clk_b) if (!WIDE && !NARROW) begin
    if (wr_b) begin
      mem[addr_b] <= merge(mem[addr_b], di_b, be_b);
      if (WRITEMODE_B == "WRITETHROUGH") latch_b <= merge(mem[addr_b], di_b, be_b);
      else if (WRITEMODE_B == "READBEFOREWRITE") latch_b <= mem[addr_b];
    end else if (act_b) begin
      latch_b <= (wr_a && addr_a == addr_b) ? 18'bx : mem[addr_b];
    end
  end

  // 36-bit mode: port A writes both halves of word addr_w, port B reads them into latch_a (low)
  // and latch_b (high); each half has its port's output register.
  wire [8:0] addr_w = addr_a[9:1], addr_r = addr_b[9:1];
  wire [3:0] be_w = {ADA3, ADA2, ADA1, ADA0};
  always @(posedge clk_a) if (WIDE) begin
    if (wr_a) begin
      mem[{addr_w, 1'b0}] <= merge(mem[{addr_w, 1'b0}], di_a, be_w[1:0]);
      mem[{addr_w, 1'b1}] <= merge(mem[{addr_w, 1'b1}], di_b, be_w[3:2]);
    end
  end
  always @(posedge clk_b) if (WIDE) begin
    if (WEB === 1'b1 && act_b) begin
      $display("ERROR: DP16KD model: a write through port B is not modelled in 36-bit mode");
      $finish;
    end
    if (act_b) begin
      latch_a <= (wr_a && be_w[1:0] != 0 && addr_w == addr_r) ? 18'bx : mem[{addr_r, 1'b0}];
      latch_b <= (wr_a && be_w[3:2] != 0 && addr_w == addr_r) ? 18'bx : mem[{addr_r, 1'b1}];
    end
  end

  // Narrow modes: both ports read and write words of DATA_WIDTH_A bits at naddr_x.
  wire [13:0] full_a = {ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4, ADA3,
                        ADA2, ADA1, ADA0};
  wire [13:0] full_b = {ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4, ADB3,
                        ADB2, ADB1, ADB0};
  wire [13:0] naddr_a = full_a >> SHIFT, naddr_b = full_b >> SHIFT;
  always @(posedge clk_a) if (NARROW) begin
    if (wr_a) begin
      nmem[naddr_a] <= di_a[8:0] & MASK;
      if (WRITEMODE_A == "WRITETHROUGH") latch_a <= {9'd0, di_a[8:0] & MASK};
      else if (WRITEMODE_A == "READBEFOREWRITE") latch_a <= {9'd0, nmem[naddr_a]};
    end else if (act_a) latch_a <= (wr_b && naddr_b == naddr_a) ? 18'bx : {9'd0, nmem[naddr_a]};
  end
  always @(posedge clk_b) if (NARROW) begin
    if (wr_b) begin
      nmem[naddr_b] <= di_b[8:0] & MASK;
      if (WRITEMODE_B == "WRITETHROUGH") latch_b <= {9'd0, di_b[8:0] & MASK};
      else if (WRITEMODE_B == "READBEFOREWRITE") latch_b <= {9'd0, nmem[naddr_b]};
    end else if (act_b) latch_b <= (wr_a && naddr_a == naddr_b) ? 18'bx : {9'd0, nmem[naddr_b]};
  end

  wire [17:0] do_a = (REGMODE_A == "OUTREG") ? out_a : latch_a;
  wire [17:0] do_b = (REGMODE_B == "OUTREG") ? out_b : latch_b;
  assign {DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6, DOA5,
          DOA4, DOA3, DOA2, DOA1, DOA0} = do_a;
  assign {DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6, DOB5,
          DOB4, DOB3, DOB2, DOB1, DOB0} = do_b;
endmodule
