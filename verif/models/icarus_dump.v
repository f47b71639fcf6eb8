// Waves of an Icarus run (spikeforge.verif.runner, --waves): a second root module that dumps
// every signal under `top` into the file named by +dumpfile_path=... (vvp -fst makes it FST).
// Verilog-2005, as Icarus compiles the designs here: cocotb's own dump module declares a
// SystemVerilog `string`, which -g2005 refuses.
module spikeforge_icarus_dump();
reg [8*1024-1:0] path;
initial begin
    if ($value$plusargs("dumpfile_path=%s", path))
        $dumpfile(path);
    else
        $dumpfile("dump.fst");
    $dumpvars(0, top);
end
endmodule
