"""Memories of the units: :class:`RegisteredReadMemory`, a memory with a registered read (read
latency 2, 3 with its input stage) in either :data:`RAM_STYLES`, whose block-RAM form on ECP5
reads through the DP16KD's own output register."""

from collections.abc import Mapping

from amaranth.hdl import ClockSignal, Const, Instance, Module, Shape, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from spikeforge.contract.configs import block_layout

from .params import check_int, check_choice
from .replica import kept_register
from .target import family_of

__all__ = ["RegisteredReadMemory", "RAM_STYLES", "BLOCKS_PER_COPY", "uses_ecp5_ebr",
           "lut_ram_attrs"]

# How a memory is built: "block" (block RAM: dense; on ECP5 read through the EBR's output
# register, see RegisteredReadMemory) or "distributed" (LUT RAM, read asynchronously from a
# registered address; its multiplexer tree and address fan-out grow with the depth).
RAM_STYLES = ("distributed", "block")

# The DP16KD's shapes are the contract's (spikeforge.contract.configs.BLOCK_SHAPES["ecp5-ebr"],
# Lattice TN1264), chosen by its block_layout. In 36-bit mode the block is a pseudo dual port
# (port A writes DIA and DIB, port B reads DOA and DOB); in the others port A writes DIA and
# port B reads DOB. The row address is left-justified in ADx[13:0]: its low pins are the byte
# write enables in 18-bit (2) and 36-bit (4) mode, zero in the narrow modes.
_ENABLES = {18: 2, 36: 4}

#: DP16KD blocks that one copy of the input stage's address and enable registers drives (see
#: :class:`RegisteredReadMemory`'s ``input_stage``): one register for all 60 blocks of a wide
#: memory was the routed accelerator's critical path (18.95 ns of routing, no logic).
BLOCKS_PER_COPY = 4

# The inputs the input stage registers, in the order RegisteredReadMemory._inputs gives them.
_INPUTS = ("w_addr", "w_data", "w_en", "r_addr", "r_en")


def uses_ecp5_ebr(platform):
    """Whether elaboration for ``platform`` builds DP16KD primitives: ``platform.family`` is
    ``"ecp5"`` (Amaranth's Lattice platforms and the synthesis flow's ``SynthTarget`` have a
    ``family``); ``None`` (simulation, ``verilog.convert`` without a platform) is not."""
    return family_of(platform) == "ecp5"


def lut_ram_attrs(platform):
    """Attributes of a ``lib.memory.Memory`` read asynchronously that must stay LUT RAM on
    ``platform``: ``ram_style = "distributed"`` (Yosys would otherwise fold a registered read
    address into a block RAM's read port), none on iCE40, which has no LUT RAM (Yosys's
    mapping of that attribute fails there; it picks block RAM or flip-flops itself)."""
    return {} if family_of(platform) == "ice40" else {"ram_style": "distributed"}


def _all_zero(value):
    if isinstance(value, Mapping):
        return all(_all_zero(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return all(_all_zero(v) for v in value)
    return value == 0


class RegisteredReadMemory(wiring.Component):
    """``depth`` rows of ``shape``: one write port and one read port with read latency 2 (3
    with ``input_stage``).

    Write: with ``w_en`` high at a clock edge, ``w_data`` is stored in row ``w_addr``.
    Read: with ``r_en`` high at edge *n*, row ``r_addr`` is read into a first register (which
    otherwise holds); at every edge where ``o_en`` is high the output register ``r_data`` takes
    that first register. So with ``o_en`` high throughout, ``r_data`` shows row ``r_addr`` of
    edge *n* after edge *n + 1*. Both registers start at 0 and have no reset. A read of the row
    being written at the same edge is undefined (the callers never do it: they load and read in
    separate phases).

    ``input_stage=True``: ``w_addr``, ``w_data``, ``w_en``, ``r_addr`` and ``r_en`` first pass
    one reset-less register each, so everything above happens one edge later (``o_en`` is not
    delayed). On the DP16KD path the address and enable registers are replicated, one copy per
    :data:`BLOCKS_PER_COPY` blocks of a bank (:func:`~.replica.kept_register`: Yosys would
    merge identical registers back into one), and a bank's write enable is decoded before its
    registers.

    ``style="distributed"``: a ``lib.memory`` :class:`Memory` read asynchronously (LUT RAM);
    the first register holds the read address (enable ``r_en``) and the output register the
    row read from it (enable ``o_en``), so the timing is the same, but the row is read when the
    output register takes it: a write to that row after the read and before then is seen (a
    caller writing while reads wait, as the window walker loading its next frame, holds the
    write until the read is taken).

    ``style="block"``: the implementation is chosen from the elaboration platform, here and
    nowhere else (:func:`uses_ecp5_ebr`):

    * ``platform.family == "ecp5"`` (the synthesis flow passes ``SynthTarget(family=...)``)
      and all-zero ``init``: DP16KD block RAMs, port A writing, port B reading with the
      output register (``REGMODE = "OUTREG"``), so the output register is the EBR's own
      (``CEB = r_en``, ``OCE = o_en``): Yosys 0.70 never enables that register when it
      infers block RAM, and the DP16KD's clock-to-output delay without it (5.83 ns on speed
      grade 6) is most of a clock cycle at 150 MHz on its own. The blocks take the shape of
      :func:`~spikeforge.contract.configs.block_layout` (16384 × 1 to 512 × 36, the fewest
      blocks, then the fewest banks): ``columns`` blocks side by side per bank; with more than
      one bank, each bank is written when the address's high bits name it, all are read, and
      ``r_data`` is a
      multiplexer over the banks' output registers selected by the read address's high bits,
      registered with the read.
    * otherwise (no platform, i.e. simulation; iCE40; nonzero initial contents, which the
      primitive path does not load): a ``lib.memory`` :class:`Memory` with
      a synchronous read port (enable ``r_en``) and a reset-less fabric register (enable
      ``o_en``). Identical behaviour, no error: only the ECP5 speed-up is lost.

    The primitive path is simulated with ``verif/models/dp16kd.v`` (see ``docs/engine.md``).

    Parameters
    ----------
    shape : shape-like
        Shape of a row (e.g. a ``data.ArrayLayout``).
    depth : int
        Rows.
    init : list or None
        Initial rows (as ``lib.memory.Memory``'s ``init``).
    style : {"distributed", "block"}
        LUT RAM or block RAM (see above and :data:`RAM_STYLES`).
    attrs : dict or None
        Attributes of the behavioural ``Memory`` (e.g. ``{"ram_style": "block"}``);
        ``style="distributed"`` adds ``ram_style = "distributed"`` unless given (not for an
        iCE40 ``platform``, which has no LUT RAM).
    input_stage : bool
        Register the inputs first (see above).

    Members
    -------
    w_addr : In(range(depth))
    w_data : In(shape)
    w_en : In(1)
    r_addr : In(range(depth))
    r_en : In(1)
        Read enable of the first register (the memory read).
    o_en : In(1, init=1)
        Enable of the output register.
    r_data : Out(shape)
        The output register.
    """

    def __init__(self, *, shape, depth, init=None, style="block", attrs=None,
                 input_stage=False):
        self._style = check_choice("style", style, RAM_STYLES)
        self._input_stage = check_choice("input_stage", input_stage, (False, True))
        self._shape = shape
        self._row_bits = Shape.cast(shape).width
        check_int("bits of shape", self._row_bits, min=1)
        self._depth = check_int("depth", depth, min=1)
        self._init = list(init or [])
        if len(self._init) > depth:
            raise ValueError(f"init must have at most depth ({depth}) rows, not "
                             f"{len(self._init)}")
        self._attrs = dict(attrs or {})
        super().__init__({
            "w_addr": In(range(depth)), "w_data": In(shape), "w_en": In(1),
            "r_addr": In(range(depth)), "r_en": In(1), "o_en": In(1, init=1),
            "r_data": Out(shape),
        })

    def primitive(self, platform):
        """Whether elaboration for ``platform`` uses DP16KD blocks (see the class docstring)."""
        return (self._style == "block" and uses_ecp5_ebr(platform)
                and _all_zero(self._init))

    style = property(lambda self: self._style)
    depth = property(lambda self: self._depth)
    input_stage = property(lambda self: self._input_stage)

    def elaborate(self, platform):
        if self.primitive(platform):
            return self._elaborate_ecp5(platform)
        m = Module()
        w_addr, w_data, w_en, r_addr, r_en = self._inputs(m)
        attrs = dict(self._attrs)
        if self._style == "distributed":
            attrs = {**lut_ram_attrs(platform), **attrs}
        m.submodules.memory = memory = Memory(shape=self._shape, depth=self._depth,
                                              init=self._init, attrs=attrs)
        if self._style == "distributed":
            read = memory.read_port(domain="comb")
            addr = Signal.like(read.addr)
            with m.If(r_en):
                m.d.sync += addr.eq(r_addr)
            m.d.comb += read.addr.eq(addr)
        else:
            read = memory.read_port(domain="sync")
            m.d.comb += [read.addr.eq(r_addr), read.en.eq(r_en)]
        write = memory.write_port()
        m.d.comb += [write.addr.eq(w_addr), write.data.eq(w_data), write.en.eq(w_en)]
        out = Signal(self._row_bits, reset_less=True)
        with m.If(self.o_en):
            m.d.sync += out.eq(read.data)
        m.d.comb += self.r_data.eq(out)
        return m

    def _inputs(self, m):
        """``w_addr, w_data, w_en, r_addr, r_en`` as the memory sees them: the ports, or their
        input-stage registers."""
        ports = [Value.cast(getattr(self, name)) for name in _INPUTS]
        if not self._input_stage:
            return ports
        staged = [Signal(len(p), name=f"{name}_staged", reset_less=True)
                  for name, p in zip(_INPUTS, ports)]
        m.d.sync += [s.eq(p) for s, p in zip(staged, ports)]
        return staged

    def _elaborate_ecp5(self, platform):
        # Pins as Yosys's own block RAM mapping (share/lattice/brams_map_16kd.v) drives them
        # (see _ENABLES above). REGMODE "OUTREG" adds the output register (one more cycle),
        # clocked with OCE (set on both ports: in 36-bit mode the read data leaves through both
        # DOA and DOB); CE enables the read itself; CSDECODE "0b000" with CS = 0 selects the
        # block (Lattice TN1264, "ECP5 and ECP5-5G Memory Usage Guide", DP16KD section).
        m = Module()
        rows, width, banks, columns = block_layout("ecp5-ebr", self._depth, self._row_bits)
        row_bits = (rows - 1).bit_length()
        # with the input stage only its w_data and the bank select's r_addr and r_en are used
        # here (the blocks take their own copies below); Yosys drops the others
        w_addr, w_data, w_en, r_addr, r_en = self._inputs(m)
        outputs = []
        for b in range(banks):
            bank_w_en = Value.cast(self.w_en & (self.w_addr[row_bits:] == b) if banks > 1
                                   else self.w_en)
            rdata = Signal(self._row_bits, name=f"bank{b}")
            for k in range(columns):
                if not self._input_stage:
                    controls = (w_addr[:row_bits], r_addr[:row_bits], bank_w_en, r_en)
                elif k % BLOCKS_PER_COPY == 0:      # the next blocks' copy of the registers
                    copy = f"b{b}_c{k // BLOCKS_PER_COPY}"
                    controls = [kept_register(m, value, name=f"{name}_{copy}", platform=platform)
                                for name, value in (("w_addr", self.w_addr[:row_bits]),
                                                    ("r_addr", self.r_addr[:row_bits]),
                                                    ("w_en", bank_w_en), ("r_en", self.r_en))]
                self._ecp5_block(m, b, k, width, w_data, rdata, *controls)
            outputs.append(rdata)
        if banks == 1:
            m.d.comb += self.r_data.eq(outputs[0])
            return m
        first, second = Signal(range(banks)), Signal(range(banks))
        with m.If(r_en):
            m.d.sync += first.eq(r_addr[row_bits:])
        with m.If(self.o_en):
            m.d.sync += second.eq(first)
        with m.Switch(second):
            for b, rdata in enumerate(outputs):
                with m.Case(b):
                    m.d.comb += self.r_data.eq(rdata)
        return m

    def _ecp5_block(self, m, bank, k, width, wdata, rdata, waddr, raddr, w_en, r_en):
        """DP16KD ``k`` (``width`` bits) of bank ``bank``: it stores row bits from ``k * width``
        of ``wdata`` and drives the same bits of ``rdata``; written at ``waddr`` with ``w_en``,
        read at ``raddr`` with ``r_en``."""
        wide = width == 36
        half = min(width, 18)                       # data pins per port in use
        low = 14 - len(waddr)                       # the row address's first pin
        enables = _ENABLES.get(width, 0)
        one, zero = Const(1, 1), Const(0, 1)
        lo = k * width
        hi = min(lo + width, self._row_bits)
        dout = Signal(width, name=f"dout{bank}_{k}")
        m.d.comb += rdata[lo:hi].eq(dout[:hi - lo])
        ports = {
            "p_DATA_WIDTH_A": width, "p_DATA_WIDTH_B": width,
            "p_REGMODE_A": "OUTREG" if wide else "NOREG", "p_REGMODE_B": "OUTREG",
            "p_RESETMODE": "SYNC", "p_ASYNC_RESET_RELEASE": "SYNC",
            "p_CSDECODE_A": "0b000", "p_CSDECODE_B": "0b000",
            "p_WRITEMODE_A": "NORMAL", "p_WRITEMODE_B": "NORMAL", "p_GSR": "DISABLED",
            "i_CLKA": ClockSignal(), "i_CEA": one, "i_OCEA": self.o_en if wide else one,
            "i_WEA": w_en, "i_RSTA": zero,
            "i_CLKB": ClockSignal(), "i_CEB": r_en, "i_OCEB": self.o_en,
            "i_WEB": zero, "i_RSTB": zero,
        }

        def bit(j):
            return wdata[lo + j] if j < width and lo + j < hi else zero

        for j in range(18):
            ports[f"i_DIA{j}"] = bit(j) if j < half else zero
            ports[f"i_DIB{j}"] = bit(18 + j) if wide else zero
            if wide:
                ports[f"o_DOA{j}"] = dout[j]
                ports[f"o_DOB{j}"] = dout[18 + j]
            elif j < width:
                ports[f"o_DOB{j}"] = dout[j]
        for j in range(14):
            ports[f"i_ADA{j}"] = (waddr[j - low] if j >= low
                                  else one if j < enables else zero)
            ports[f"i_ADB{j}"] = raddr[j - low] if j >= low else zero
        for j in range(3):
            ports[f"i_CSA{j}"] = zero
            ports[f"i_CSB{j}"] = zero
        m.submodules[f"ebr{bank}_{k}" if bank else f"ebr{k}"] = Instance("DP16KD", **ports)

