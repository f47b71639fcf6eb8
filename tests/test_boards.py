"""Board builds (``synth/boards.py``, ``synth/board_top.py``, ``spikeforge synth board``): the ECP5
PLL calculator, the UART rate check, the build plans of both boards from the CLI (the whole
accelerator, its pins and clock constraints, no tools), ``--program``'s refusals; then, marked
``synth``, both boards through the real tools with a small stand-in for the accelerator (the
PLL, the clock constraint and the pins as nextpnr sees them, ≈ 10 s); and, only with
``SPIKEFORGE_BOARD_BUILD=1``, the whole accelerator's ULX3S bitstream (hours).
"""

import json
import os
import re
import stat

from types import SimpleNamespace

import pytest
from amaranth.hdl import Fragment, Module, Signal
from amaranth.lib import io, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from spikeforge.cli import main
from spikeforge.commands.synth import BOARD_NAMES
from spikeforge.hdl.uart import UARTReceiver, UARTTransmitter
from spikeforge.synth import board_top, boards
from spikeforge.synth.board_top import (LED_ROLES, PLL_OUTPUT_HZ, PLL_PFD_HZ, PLL_TOLERANCE,
                                        PLL_VCO_HZ, BoardTop, ecp5_pll)
from spikeforge.synth.boards import BOARDS, ProgrammerError, build_board, uart_setting

ULX3S_PINS = {"uart_0__rx__io": "M1", "uart_0__tx__io": "L4", "led_0__io": "B2",
              "led_1__io": "C2", "led_2__io": "C1", "led_3__io": "D2"}
ICEBREAKER_PINS = {"uart_0__rx__io": "6", "uart_0__tx__io": "9", "led_g_1__io": "27",
                   "led_g_0__io": "37", "led_r_0__io": "11", "led_r_1__io": "26"}


def run_cli(args, capsys):
    """``spikeforge ARGS`` → (exit status, stdout, stderr)."""
    with pytest.raises(SystemExit) as exit:
        main([str(arg) for arg in args])
    out, err = capsys.readouterr()
    return exit.value.code, out, err


@pytest.fixture
def build_root(tmp_path, monkeypatch):
    """Builds go below ``tmp_path`` (``build_board`` reads ``BUILD_ROOT`` when called)."""
    monkeypatch.setattr("spikeforge.verif.toolchain.BUILD_ROOT", tmp_path)
    return tmp_path


# --- the ECP5 PLL ----------------------------------------------------------------------------

@pytest.mark.parametrize("mhz", [45, 50, 60, 75, 100, 33.3, 12.5, 200, 137])
def test_pll_makes_the_clock(mhz):
    """Within tolerance, inside the data sheet's limits, and its dividers give its output."""
    setting = ecp5_pll(input_hz=25e6, output_hz=mhz * 1e6)
    assert abs(setting.output_hz - mhz * 1e6) <= PLL_TOLERANCE * mhz * 1e6
    assert PLL_VCO_HZ[0] <= setting.vco_hz <= PLL_VCO_HZ[1]
    assert PLL_PFD_HZ[0] <= setting.pfd_hz and PLL_OUTPUT_HZ[0] <= setting.output_hz
    assert 1 <= setting.clki_div <= 128 and 1 <= setting.clkfb_div <= 80
    assert 1 <= setting.clkop_div <= 128 and setting.clkop_cphase == setting.clkop_div - 1
    assert setting.output_hz == pytest.approx(25e6 * setting.clkfb_div / setting.clki_div)
    assert setting.vco_hz == pytest.approx(setting.output_hz * setting.clkop_div)


def test_pll_45_mhz_is_ecppll_s():
    """The ULX3S default: the same dividers prjtrellis' ``ecppll -i 25 -o 45`` prints."""
    setting = ecp5_pll(input_hz=25e6, output_hz=45e6)
    assert setting.parameters() == {"CLKI_DIV": 5, "CLKFB_DIV": 9, "CLKOP_DIV": 13,
                                    "CLKOP_CPHASE": 12}
    assert setting.output_hz == 45e6 and setting.vco_hz == 585e6 and setting.pfd_hz == 5e6


def test_pll_prefers_a_fast_phase_detector():
    """50 MHz is 25 MHz x 2 or 3.125 MHz x 16, ...: the least jitter is at 25 MHz, the VCO
    nearest 600 MHz."""
    setting = ecp5_pll(input_hz=25e6, output_hz=50e6)
    assert (setting.clki_div, setting.clkfb_div, setting.clkop_div) == (1, 2, 12)


@pytest.mark.parametrize("mhz", [48, 500, 2, 401])
def test_pll_refuses_what_it_cannot_make(mhz):
    # 48 MHz: the phase detector runs at 25/n MHz, n <= 8, and 48 is no multiple of any.
    with pytest.raises(ValueError, match=r"^clock .*MHz") as info:
        ecp5_pll(input_hz=25e6, output_hz=mhz * 1e6)
    assert "\n" not in str(info.value)


# --- the UART rate ---------------------------------------------------------------------------

def test_uart_setting():
    assert uart_setting(clock_hz=45e6, baud=3_000_000) == 15
    assert uart_setting(clock_hz=12e6, baud=3_000_000) == 4
    assert uart_setting(clock_hz=25e6, baud=115_200) == 217        # 0.03 % off
    with pytest.raises(ValueError, match=r"^baud must be at most clock / 4"):
        uart_setting(clock_hz=10e6, baud=3_000_000)                 # 3.3 cycles per bit
    with pytest.raises(ValueError, match=r"^baud 3000000 is 2.0% off"):
        uart_setting(clock_hz=50e6, baud=3_000_000)                 # 16.67 cycles per bit


def test_board_defaults_are_exact():
    """Every board's default clock / baud is an integer of at least 4 (no rate error)."""
    for board in BOARDS.values():
        cycles = board.clock_mhz * 1e6 / board.baud
        assert cycles == int(cycles) >= 4, board.name


# --- build plans (no tools) ------------------------------------------------------------------

def _plan(board, capsys, build_root, *extra):
    status, out, err = run_cli(["synth", "board", "--board", board, "--plan-only", "--json",
                                *extra], capsys)
    assert status == 0, err
    info = json.loads(out)
    folder = build_root / "synth" / "board" / board
    assert info["build_dir"] == str(folder)
    assert {"top.il", "top.ys", "build_top.sh"} <= set(info["files"])
    return info, folder


def _constrained_pins(text, kind):
    if kind == "lpf":
        return dict(re.findall(r'LOCATE COMP "(\w+)" SITE "(\w+)";', text))
    return dict(re.findall(r"set_io (\w+) (\w+)", text))


def _accelerator_inside(rtlil):
    # The whole accelerator, behind the UART link, is in the netlist the tools get.
    for part in ("host", "sequencer", "conv", "lif", "elementwise", "attention"):
        assert f"module \\top.link.accelerator.{part}\n" in rtlil, part
    for part in ("rx", "rx_fifo", "tx"):                # ``rx$32``: beside the port ``rx``
        assert re.search(rf"^module \\top\.link\.{part}(\$\d+)?$", rtlil, re.M), part


def test_ulx3s_plan(capsys, build_root):
    info, folder = _plan("ulx3s-85f", capsys, build_root)
    assert "top.lpf" in info["files"]
    assert (info["clock_mhz"], info["baud"], info["divisor"]) == (45.0, 3_000_000, 15)
    assert info["config"] == "ulx3s-85f"
    assert info["pll"] == {"CLKI_DIV": 5, "CLKFB_DIV": 9, "CLKOP_DIV": 13, "CLKOP_CPHASE": 12,
                           "vco_mhz": 585.0, "pfd_mhz": 5.0}
    rtlil = (folder / "top.il").read_text()
    _accelerator_inside(rtlil)
    pll = rtlil[rtlil.index("cell \\EHXPLLL \\pll"):]
    pll = pll[:pll.index("  end")]
    for name, value in info["pll"].items():
        if name.isupper():
            assert f"parameter \\{name} {value}\n" in pll, name
    assert 'parameter \\FEEDBK_PATH "CLKOP"' in pll and "connect \\LOCK \\lock" in pll
    # CLKOP drives the domain's clock and comes back on CLKFB; the kept net `clkop` is it.
    clock = re.search(r"connect \\CLKOP (\\\S+)", pll)[1]
    assert re.search(rf"connect \\CLKFB {re.escape(clock)}( \[0\])?\n", pll)
    assert re.search(rf"connect \\clkop {re.escape(clock)}( \[0\])?$", rtlil, re.M)
    assert "attribute \\keep 1\n  wire width 1 \\clkop\n" in rtlil
    # held in reset until the PLL locks
    assert re.search(r"^module \\top\.reset_sync(\$\d+)?$", rtlil, re.M)
    lpf = (folder / "top.lpf").read_text()
    assert _constrained_pins(lpf, "lpf") == {"clk25_0__io": "G2", **ULX3S_PINS}
    assert 'FREQUENCY NET "clkop" 45000000.0 HZ;' in lpf
    script = (folder / "top.ys").read_text()
    assert "rename -unescape w:*] x:* %d" in script and "stat -json" in script
    # the whole accelerator only routes with the static placer and router2
    build = (folder / "build_top.sh").read_text()
    assert "--placer static --router router2" in build
    # by default the seed the build is known to route with
    assert info["seed"] == BOARDS["ulx3s-85f"].seed == 1 and "--seed 1 " in build


def test_icebreaker_plan(capsys, build_root):
    info, folder = _plan("icebreaker", capsys, build_root)
    assert "top.pcf" in info["files"]
    assert (info["clock_mhz"], info["baud"], info["divisor"]) == (12.0, 3_000_000, 4)
    assert info["config"] == "icebreaker-up5k" and info["pll"] is None
    assert info["seed"] == BOARDS["icebreaker"].seed == 1
    rtlil = (folder / "top.il").read_text()
    _accelerator_inside(rtlil)
    assert "EHXPLLL" not in rtlil and "SB_PLL" not in rtlil
    pcf = (folder / "top.pcf").read_text()
    assert _constrained_pins(pcf, "pcf") == {"clk12_0__io": "35", **ICEBREAKER_PINS}
    assert "set_frequency clk12_0__io 12.0" in pcf


def test_plan_at_another_clock(capsys, build_root):
    info, folder = _plan("ulx3s-85f", capsys, build_root, "--clock", "60", "--baud", "2000000")
    assert (info["clock_mhz"], info["divisor"]) == (60.0, 30)
    assert 'FREQUENCY NET "clkop" 60000000.0 HZ;' in (folder / "top.lpf").read_text()


def test_plan_with_another_seed(capsys, build_root):
    info, folder = _plan("ulx3s-85f", capsys, build_root, "--seed", "5")
    assert info["seed"] == 5 and "--seed 5 " in (folder / "build_top.sh").read_text()


@pytest.mark.parametrize("args,word", [
    (["--board", "ulx3s-85f", "--clock", "48"], "clock"),           # no PLL setting
    (["--board", "ulx3s-85f", "--clock", "500"], "clock"),
    (["--board", "icebreaker", "--clock", "24"], "clock"),          # its oscillator only
    (["--board", "icebreaker", "--baud", "4000000"], "baud"),       # 3 cycles per bit
    (["--board", "ulx3s-85f", "--clock", "50"], "baud"),            # 16.67 cycles per bit
])
def test_cli_refuses_clock_and_baud(args, word, capsys, build_root):
    status, out, err = run_cli(["synth", "board", *args, "--plan-only"], capsys)
    lines = err.strip().splitlines()
    assert status == 2 and out == "" and len(lines) == 2, err        # progress, then error
    assert lines[-1].startswith(f"spikeforge: error: {word}"), err
    assert not (build_root / "synth").exists()                      # refused before any work


def test_program_needs_a_build(capsys, build_root):
    status, _, err = run_cli(["synth", "board", "--board", "icebreaker", "--plan-only",
                              "--program"], capsys)
    assert status == 2 and "--program" in err and len(err.strip().splitlines()) == 1


def test_program_without_openfpgaloader(capsys, build_root, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(ProgrammerError, match="openFPGALoader"):
        build_board("icebreaker", program=True)
    status, _, err = run_cli(["synth", "board", "--board", "ulx3s-85f", "--program"], capsys)
    lines = err.strip().splitlines()
    assert status == 2 and "openFPGALoader" in lines[-1] and len(lines) == 2, err  # + progress
    assert not (build_root / "synth").exists()                      # refused before building


def test_program_runs_openfpgaloader(monkeypatch, tmp_path):
    record = tmp_path / "args"
    tool = tmp_path / "bin" / "openFPGALoader"
    tool.parent.mkdir()
    tool.write_text(f'#!/bin/sh\necho "$@" > {record}\n')
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{tool.parent}{os.pathsep}{os.environ['PATH']}")
    boards.program_board("ulx3s-85f", tmp_path / "top.bit")
    assert record.read_text().split() == ["-b", "ulx3s", "-m", str(tmp_path / "top.bit")]
    boards.program_board("icebreaker", tmp_path / "top.bin")
    assert record.read_text().split() == ["-b", "ice40_generic", "-f", str(tmp_path / "top.bin")]
    tool.write_text("#!/bin/sh\necho 'JTAG init failed' >&2\nexit 1\n")
    with pytest.raises(ProgrammerError, match="JTAG init failed"):
        boards.program_board("ulx3s-85f", tmp_path / "top.bit")


def test_help_is_true_to_the_boards(capsys):
    assert BOARD_NAMES == tuple(BOARDS)
    status, out, _ = run_cli(["synth", "board", "--help"], capsys)
    text = " ".join(out.split())
    assert status == 0
    ulx3s, icebreaker = BOARDS["ulx3s-85f"], BOARDS["icebreaker"]
    assert f"{ulx3s.clock_mhz:g} on ulx3s-85f, made by the ECP5 PLL" in text and ulx3s.pll
    assert f"{icebreaker.clock_mhz:g} on icebreaker, its oscillator" in text
    assert not icebreaker.pll
    assert f"[default: {ulx3s.baud}]" in text and ulx3s.baud == icebreaker.baud
    assert f"within {boards.MAX_BAUD_ERROR:.0%} of the rate" in text
    assert f"{ulx3s.seed} on ulx3s-85f, the seed" in text
    assert f"{icebreaker.seed} on icebreaker]" in text


# --- the board top in the simulator ---------------------------------------------------------

class _SimulatedPins:
    """A platform for the simulator: each requested resource a ``SimulationPort``."""

    def __init__(self):
        self.ports = {}

    def request(self, name, number=0, *, dir):
        if name == "uart":
            port = SimpleNamespace(rx=io.SimulationPort("i", 1), tx=io.SimulationPort("o", 1))
        else:
            port = io.SimulationPort("o", 1)
        self.ports[name, number] = port
        return port


@pytest.mark.parametrize("board", ["ulx3s-85f", "icebreaker"])
def test_pins_and_leds_show_the_link(board, monkeypatch):
    """The UART pins reach the link; each LED of the board's table lights for its role alone
    (error: for any nonzero code)."""
    links = []

    class Idle(wiring.Component):
        def __init__(self, *, config, divisor):
            super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1), "busy": Out(1),
                              "done": Out(1), "error": Out(4), "line_error": Out(1)})
            links.append(self)

        def elaborate(self, platform):
            return Module()

    monkeypatch.setattr(board_top, "AcceleratorLink", Idle)
    spec = BOARDS[board]
    pins = _SimulatedPins()
    fragment = Fragment.get(BoardTop(config=spec.config, divisor=4, leds=spec.leds), pins)
    link, uart = links[0], pins.ports["uart", 0]
    leds = [pins.ports[led] for led in spec.leds]

    async def bench(ctx):
        for level in (0, 1):
            ctx.set(uart.rx.i, level)
            ctx.set(link.tx, level)
            await ctx.delay(1e-9)
            assert ctx.get(link.rx) == level and ctx.get(uart.tx.o) == level
        for role, value in [("busy", 1), ("done", 1), ("error", 1), ("error", 12),
                            ("line_error", 1)]:
            ctx.set(getattr(link, role), value)
            await ctx.delay(1e-9)
            assert [ctx.get(led.o) for led in leds] == [int(r == role) for r in LED_ROLES]
            ctx.set(getattr(link, role), 0)

    sim = Simulator(fragment)
    sim.add_testbench(bench)
    sim.run()


# --- through the tools, with a stand-in for the accelerator ----------------------------------

class _StandIn(wiring.Component):
    """``AcceleratorLink``'s ports around a UART echo and a counter: the board top's clock,
    reset, pins and LEDs through the real tools in seconds."""

    def __init__(self, *, config, divisor):
        self._divisor = divisor
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1), "busy": Out(1),
                          "done": Out(1), "error": Out(4), "line_error": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.rx = rx = UARTReceiver(divisor=self._divisor)
        m.submodules.tx = tx = UARTTransmitter(divisor=self._divisor)
        wiring.connect(m, rx.o, tx.i)
        count = Signal(24)
        m.d.sync += count.eq(count + 1)
        m.d.comb += [rx.rx.eq(self.rx), self.tx.eq(tx.tx), self.busy.eq(count[-1]),
                     self.done.eq(count[-2]), self.error.eq(count[-6:-2]),
                     self.line_error.eq(rx.error)]
        return m


@pytest.mark.parametrize("board", ["ulx3s-85f", "icebreaker"])
@pytest.mark.synth
@pytest.mark.xdist_group("synth")
def test_board_plumbing_through_the_tools(board, tmp_path, monkeypatch):
    monkeypatch.setattr(board_top, "AcceleratorLink", _StandIn)
    info = build_board(board, build_dir=tmp_path)
    spec = BOARDS[board]
    assert info["bitstream"].endswith(f".{spec.suffix}") and info["bytes"] > 50_000
    assert info["meets"] and info["fmax_mhz"] > info["clock_mhz"] == spec.clock_mhz
    assert info["lut"] > 0 and info["ff"] > 24 and info["dsp"] == 0
    log = (tmp_path / "top.tim").read_text()
    if spec.pll:
        assert info["placed"]["EHXPLLL"] == 1
        assert "constraining clock net 'clkop' to 45.00 MHz" in log
    else:
        assert "constraining clock net 'clk12_0__io' to 12.00 MHz" in log
    assert "does not exist in design" not in log


@pytest.mark.synth
@pytest.mark.xdist_group("synth")
def test_missed_clock_exits_1(monkeypatch, capsys, build_root):
    """A build below its clock prints its figures, then one error line, and exits 1."""
    monkeypatch.setattr(board_top, "AcceleratorLink", _StandIn)
    status, out, err = run_cli(["synth", "board", "--board", "ulx3s-85f", "--clock", "375",
                                "--json"], capsys)
    info = json.loads(out)
    assert status == 1 and not info["meets"] and info["fmax_mhz"] < info["clock_mhz"] == 375
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("spikeforge: error: Fmax "), err


@pytest.mark.skipif(not os.environ.get("SPIKEFORGE_BOARD_BUILD"),
                    reason="the whole accelerator through the tools takes about 20 minutes: "
                           "set SPIKEFORGE_BOARD_BUILD=1")
@pytest.mark.synth
def test_ulx3s_bitstream(tmp_path):
    info = build_board("ulx3s-85f", build_dir=tmp_path)
    assert info["bitstream"].endswith(".bit") and info["meets"], info
    assert info["ebr"] > 100 and info["dsp"] == 0
