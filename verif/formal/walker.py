"""Formal harness of :class:`~spikeforge.hdl.engine.walker.WindowWalker`: a 2x2 frame of 1-bit
words, a 2x2 kernel (one window of four taps), so each frame's window covers every pixel."""

from amaranth.hdl import Cat, Signal

from spikeforge.hdl.engine.walker import WindowWalker

from .harness import Harness, Mutation, valid_drops
from .properties import (ShadowQueue, drops_last, forces_ready, implies, popcount, stream_sink,
                         stream_source, transfer)

__all__ = ["WalkerHarness", "DistributedWalkerHarness"]

# Frames between the end of their load and the end of their window: the one loaded, and one
# per register of the read pipeline (read, output register, skid buffer), which may each hold
# the (single) word of an earlier frame's window.
READ_REGISTERS = 3
FRAMES_IN_FLIGHT = 1 + READ_REGISTERS


class WalkerHarness(Harness):
    """Input: spike words (a frame is ``in_height * in_width`` one-word tokens); output:
    window words tagged by tap."""

    unit = "walker"
    component = WindowWalker
    params = {"word_bits": 1, "words": 1, "in_height": 2, "in_width": 2, "kernel": 2,
              "stride": 1, "padding": 0, "tag_step": 1, "tag_bits": 2, "ram_style": "block"}
    bound_depth = 22
    cover_depth = 16
    # its state is the frame memory and the window walk: bounded checks, benchmark set only
    suite_groups = ()
    mutations = {
        "valid_drops": valid_drops(comb=True),
        "drops_last": Mutation(catches="window_words",
                               text="a window's final word loses its last flag",
                               after=drops_last("o", comb=True)),
        "ready_while_walking": Mutation(catches=("window_words", "windows_per_frame",
                                                 "no_zero_taps"),
                                        text="i.ready stays high while a frame is walked",
                                        after=forces_ready("i")),
    }
    suite_mutation = "drops_last"


    def check(self, m, checks, dut, internals):
        pixels = self.params["in_height"] * self.params["in_width"]
        stream_source(m, checks, dut.i, name="i")
        stream_sink(m, checks, dut.o, name="o", group="bound")

        # The frames as loaded: one occupancy bit per pixel (the single window sees them all);
        # the next frame loads while the last words of a window are still in the output
        # buffers, so the harness queues them.
        pixel = Signal(range(pixels), name="in_pixel")
        occupied = Signal(pixels, name="occupied")
        with m.If(transfer(dut.i)):
            m.d.sync += [pixel.eq(pixel + 1),
                         occupied.bit_select(pixel, 1).eq(dut.i.payload.data.any())]
            with m.If(pixel == pixels - 1):
                m.d.sync += pixel.eq(0)
        loaded = transfer(dut.i) & (pixel == pixels - 1)
        window_done = transfer(dut.o) & dut.o.payload.last
        frames = ShadowQueue(
            m, push=loaded, pop=window_done, capacity=FRAMES_IN_FLIGHT + 1, name="frames",
            data=Cat(occupied[:pixels - 1], dut.i.payload.data.any()))
        checks.bound("windows_per_frame",
                     (frames.count <= FRAMES_IN_FLIGHT) & implies(window_done, frames.count != 0),
                     f"frames loaded - windows walked <= {FRAMES_IN_FLIGHT} (windows' last "
                     f"words may wait in the read pipeline while the next frame loads); no "
                     f"window without a frame")
        frame = frames.entries[0]

        words = Signal(range(pixels + 2), name="window_words_out")
        with m.If(transfer(dut.o)):
            m.d.sync += words.eq(words + 1)
            with m.If(dut.o.payload.last):
                m.d.sync += words.eq(0)
        expected = popcount(frame)
        size = expected + (expected == 0)
        checks.bound("window_words",
                     implies(transfer(dut.o), words < size)
                     & implies(transfer(dut.o) & dut.o.payload.last, words + 1 == size),
                     "a window is one word per occupied tap (one empty word if none), "
                     "its final word marked last")
        checks.bound("no_zero_taps",
                     implies(dut.o.valid & (expected != 0), dut.o.payload.data.any()),
                     "a window with occupied taps emits no all-zero word")
        checks.cover("window_done", transfer(dut.o) & dut.o.payload.last & (expected == 3),
                     "a window of three occupied taps is walked")


def _loads_under_last_read(dut, m, internals):
    """A mutation's ``after``: the LUT-RAM walker loads the next frame as soon as it issues a
    frame's last read (its ``may_load`` forced high, as before the fix)."""
    m.d.comb += internals("may_load").eq(1)


class DistributedWalkerHarness(WalkerHarness):
    """The LUT-RAM frame memory (``ram_style="distributed"``). Its first read register holds
    the address, not the row (:class:`~spikeforge.hdl.memory.RegisteredReadMemory`), so the
    walker holds the next frame's load (``may_load``) until a frame's last read has been taken
    into the output register. Without that hold (mutation ``loads_under_last_read``, the bug
    this harness found), a stalled output lets the next frame overwrite the word before it is
    read: ``no_zero_taps`` fails at step 13."""

    unit = "walker_distributed"
    params = {**WalkerHarness.params, "ram_style": "distributed"}
    mutations = {
        **WalkerHarness.mutations,
        "loads_under_last_read": Mutation(
            catches="no_zero_taps",
            text="the next frame loads while a frame's last read waits for the output",
            after=_loads_under_last_read),
    }
    suite_mutation = "loads_under_last_read"
