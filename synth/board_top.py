"""What a board's bitstream holds: the accelerator behind the board's UART, its clock, its LEDs.

::

    clock pin ─▶ [ECP5 PLL] ─▶ sync      uart rx ─▶ AcceleratorLink ─▶ uart tx
                                                        └─▶ LEDs: busy, done, error, line

:class:`~spikeforge.hdl.board.AcceleratorLink` is the whole accelerator behind a UART receiver
(with its FIFO) and transmitter; the bytes on the pins are the host port's frames
(:mod:`spikeforge.contract.host`), 8N1. :class:`BoardTop` puts it on the platform's ``uart``
resource and four LEDs, and clocks it either from the board oscillator directly (the platform's
own ``sync`` domain) or through an ECP5 ``EHXPLLL`` set by :func:`ecp5_pll`.
"""

from dataclasses import dataclass

from amaranth.hdl import ClockDomain, Elaboratable, Instance, Module, Signal
from amaranth.lib import io
from amaranth.lib.cdc import ResetSynchronizer

from spikeforge.hdl.board import AcceleratorLink
from spikeforge.hdl.params import check_int

__all__ = ["PLLSetting", "ecp5_pll", "BoardTop", "LED_ROLES"]

# ECP5 sysCLOCK PLL limits (ECP5 family data sheet FPGA-DS-02012, "sysCLOCK PLL Timing"; the
# same numbers prjtrellis' ecppll uses), in Hz, and the divider ranges of EHXPLLL (FPGA
# Libraries Reference Guide).
PLL_INPUT_HZ = (8e6, 400e6)
PLL_OUTPUT_HZ = (3.125e6, 400e6)
PLL_VCO_HZ = (400e6, 800e6)
PLL_PFD_HZ = (3.125e6, 400e6)
CLKI_DIV = range(1, 129)
CLKFB_DIV = range(1, 81)
CLKOP_DIV = range(1, 129)
# Lattice's tools put the VCO near the middle of its range when they can choose.
_VCO_MIDDLE_HZ = sum(PLL_VCO_HZ) / 2
#: How far (relative) a PLL output may be from the requested clock.
PLL_TOLERANCE = 0.005

#: The LEDs of a board top, in this order: a program runs; the last run reached its end; the
#: last START's error code is not 0; a UART framing error or a byte lost to the full FIFO.
LED_ROLES = ("busy", "done", "error", "line_error")


@dataclass(frozen=True)
class PLLSetting:
    """One setting of the ECP5 ``EHXPLLL`` with CLKOP fed back to CLKFB.

    The phase detector compares ``input_hz / clki_div`` with ``CLKOP / clkfb_div``, so
    ``CLKOP = input_hz * clkfb_div / clki_div``; the VCO runs at ``CLKOP * clkop_div``.
    ``clkop_cphase = clkop_div - 1`` is CLKOP at 0° as LiteX and emard's ``ecp5pll`` set it
    (prjtrellis' ``ecppll`` writes ``clkop_div // 2``, 180°); CLKOP being the feedback, the
    loop aligns it with CLKI either way.
    """

    input_hz: float
    clki_div: int
    clkfb_div: int
    clkop_div: int

    @property
    def pfd_hz(self):
        return self.input_hz / self.clki_div

    @property
    def output_hz(self):
        return self.pfd_hz * self.clkfb_div

    @property
    def vco_hz(self):
        return self.output_hz * self.clkop_div

    @property
    def clkop_cphase(self):
        return self.clkop_div - 1

    def parameters(self):
        """The Verilog parameters of the instance that differ per setting."""
        return {"CLKI_DIV": self.clki_div, "CLKFB_DIV": self.clkfb_div,
                "CLKOP_DIV": self.clkop_div, "CLKOP_CPHASE": self.clkop_cphase}

    def instance(self, *, clki, clkop, lock):
        """The ``EHXPLLL`` instance: ``clki`` in, ``clkop`` out (and fed back), ``lock``."""
        return Instance(
            "EHXPLLL",
            # The loop filter settings ecppll gives every setting.
            a_FREQUENCY_PIN_CLKI=f"{self.input_hz / 1e6:g}",
            a_FREQUENCY_PIN_CLKOP=f"{self.output_hz / 1e6:g}",
            a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1",
            a_MFG_GMCREF_SEL="2",
            p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_CLKOP_ENABLE="ENABLED",
            p_CLKOP_FPHASE=0, p_FEEDBK_PATH="CLKOP",
            **{f"p_{name}": value for name, value in self.parameters().items()},
            i_CLKI=clki, i_CLKFB=clkop, o_CLKOP=clkop, o_LOCK=lock,
            i_RST=0, i_STDBY=0, i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=1, i_PHASESTEP=1,
            i_PHASELOADREG=1, i_PLLWAKESYNC=0, i_ENCLKOP=0)


def ecp5_pll(*, input_hz, output_hz, tolerance=PLL_TOLERANCE):
    """The :class:`PLLSetting` that makes ``output_hz`` from ``input_hz``.

    Every divider combination within the data sheet's limits (phase detector 3.125-400 MHz, VCO
    400-800 MHz, output 3.125-400 MHz) is tried; the closest output wins, then the highest
    phase detector frequency (least jitter), then the VCO nearest 600 MHz. A clock that no
    setting makes within ``tolerance`` (relative) raises ``ValueError`` naming ``clock``.
    """
    mhz = f"{output_hz / 1e6:g} MHz"
    if not PLL_INPUT_HZ[0] <= input_hz <= PLL_INPUT_HZ[1]:
        raise ValueError(f"the ECP5 PLL takes 8-400 MHz, not {input_hz / 1e6:g} MHz")
    if not PLL_OUTPUT_HZ[0] <= output_hz <= PLL_OUTPUT_HZ[1]:
        raise ValueError(f"clock must be 3.125-400 MHz for the ECP5 PLL, not {mhz}")
    best, best_key = None, None
    for clki_div in CLKI_DIV:
        if input_hz / clki_div < PLL_PFD_HZ[0]:
            break
        for clkfb_div in CLKFB_DIV:
            made = input_hz / clki_div * clkfb_div
            if not PLL_OUTPUT_HZ[0] <= made <= PLL_OUTPUT_HZ[1]:
                continue
            for clkop_div in CLKOP_DIV:
                if PLL_VCO_HZ[0] <= made * clkop_div <= PLL_VCO_HZ[1]:
                    key = (round(abs(made - output_hz)), clki_div,
                           abs(made * clkop_div - _VCO_MIDDLE_HZ))
                    if best_key is None or key < best_key:
                        best_key = key
                        best = PLLSetting(input_hz, clki_div, clkfb_div, clkop_div)
    if best is None or abs(best.output_hz - output_hz) > tolerance * output_hz:
        near = "" if best is None else f" (nearest {best.output_hz / 1e6:.4g} MHz)"
        raise ValueError(f"clock {mhz} cannot be made from {input_hz / 1e6:g} MHz by the ECP5 "
                         f"PLL within {tolerance:.1%}{near}")
    return best


class BoardTop(Elaboratable):
    """The accelerator of configuration ``config`` on a board.

    Parameters
    ----------
    config : str
        Accelerator configuration (:data:`spikeforge.contract.configs.CONFIGS`).
    divisor : int
        Clock cycles per UART bit (at least 4).
    leds : sequence of (str, int)
        The platform resources (name, number) of the :data:`LED_ROLES` LEDs, in that order.
    pll : PLLSetting, optional
        Clock ``sync`` from this ECP5 PLL fed by the platform's default clock pin, held in
        reset until the PLL locks, and constrained to its output frequency. Without it the
        platform's own ``sync`` domain (the oscillator, the platform's power-on reset) is used.
    """

    def __init__(self, *, config, divisor, leds, pll=None):
        self._divisor = check_int("divisor", divisor, min=4)
        leds = tuple(leds)
        if len(leds) != len(LED_ROLES):
            raise ValueError(f"leds must name {len(LED_ROLES)} LEDs ({', '.join(LED_ROLES)}), "
                             f"not {len(leds)}")
        self._config, self._leds, self._pll = config, leds, pll

    config = property(lambda self: self._config)
    divisor = property(lambda self: self._divisor)
    pll = property(lambda self: self._pll)

    def elaborate(self, platform):
        m = Module()
        if self._pll is not None:
            clk_pin = platform.request(platform.default_clk, dir="-")
            m.submodules.clk_buffer = clk_buffer = io.Buffer("i", clk_pin)
            m.domains.sync = sync = ClockDomain("sync")
            # The clock constraint names this net, kept through synthesis: without `keep` Yosys
            # names the net after the domain's `clk` and nextpnr finds no `clkop`; and the
            # domain's own signal is named after one of the many modules it reaches.
            clkop = Signal(attrs={"keep": 1})
            lock = Signal()
            m.submodules.pll = self._pll.instance(clki=clk_buffer.i, clkop=clkop, lock=lock)
            m.d.comb += sync.clk.eq(clkop)
            m.submodules.reset_sync = ResetSynchronizer(~lock, domain="sync")
            platform.add_clock_constraint(clkop, self._pll.output_hz)

        m.submodules.link = link = AcceleratorLink(config=self._config, divisor=self._divisor)
        uart = platform.request("uart", 0, dir="-")
        m.submodules.uart_rx = rx = io.Buffer("i", uart.rx)
        m.submodules.uart_tx = tx = io.Buffer("o", uart.tx)
        m.d.comb += [link.rx.eq(rx.i), tx.o.eq(link.tx)]

        shown = {"busy": link.busy, "done": link.done, "error": link.error != 0,
                 "line_error": link.line_error}
        for role, (name, number) in zip(LED_ROLES, self._leds):
            led = platform.request(name, number, dir="-")
            m.submodules[f"led_{role}"] = buffer = io.Buffer("o", led)
            m.d.comb += buffer.o.eq(shown[role])
        return m
