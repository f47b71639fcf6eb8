"""Hardware configurations of the accelerator by name, in one place: the capacities the RTL is
elaborated with and the compiler fits a model into. ``ulx3s-85f`` is the default everywhere
(what is simulated is what the board runs).

Sizing (``docs/accelerator.md``). A memory of ``depth`` words of ``w`` bits takes
``min over (d, a) of ceil(depth / d) * ceil(w / a)`` blocks of a family whose block can be
configured as ``d`` words of ``a`` bits (:data:`BLOCK_SHAPES`). Per buffer:

* ``program``: 32-bit words; ``DESCRIPTOR_WORDS * (layers + 2)`` used.
* ``weights``: ``lanes * weight_bits`` per row; a layer uses ``rows << group_bits`` rows
  (``rows`` = its fan-in, ``group_bits`` = bit length of ``ceil(C_out / lanes) - 1``).
* ``biases``, ``thresholds``: ``lanes * bias_bits`` / ``lanes * threshold_bits`` per row;
  ``ceil(C_out / lanes)`` rows per conv / LIF.
* ``spikes``: ``word_bits`` per word; a tensor of ``B`` planes takes
  ``T * N * B * ceil(C / word_bits)`` words while live (from its layer to its last reader).
* ``values``: ``lanes * value_bits`` per row; a tensor takes ``T * N * ceil(C / lanes)`` rows
  while live.
* ``membranes``: ``lanes * membrane_bits`` per row; only the current layer's:
  ``N * ceil(C / lanes)`` rows.
* ``scores``: ``lanes * score_bits`` per row, ``ceil(classes / lanes)`` rows (LUT RAM).
"""

from dataclasses import dataclass, fields

from .program import FIELD_BITS, memory_map
from .sizes import ceil_div

__all__ = ["Config", "CONFIGS", "DEFAULT_CONFIG", "get_config", "BLOCK_SHAPES", "DEVICES",
           "blocks", "block_layout"]

#: Block RAM families: the (depth, width) shapes one block can take.
BLOCK_SHAPES = {
    "ecp5-ebr": ((16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36)),
    "ice40-ebr": ((2048, 2), (1024, 4), (512, 8), (256, 16)),
    "ice40-spram": ((16384, 16),),
}

#: Device → block family → blocks available.
DEVICES = {
    "ecp5-85k": {"ecp5-ebr": 208},
    "ice40-up5k": {"ice40-ebr": 30, "ice40-spram": 4},
}


def block_layout(family, depth, width):
    """``(rows, bits, banks, columns)``: the shape of ``family`` (``BLOCK_SHAPES``) that holds
    ``depth`` words of ``width`` bits in the fewest blocks (``banks * columns``), then the
    fewest banks (no read multiplexer where one shape holds every word)."""
    options = [(ceil_div(depth, d) * ceil_div(width, a), ceil_div(depth, d), d, a,
                ceil_div(width, a)) for d, a in BLOCK_SHAPES[family]]
    _, banks, rows, bits, columns = min(options)
    return rows, bits, banks, columns


def blocks(family, depth, width):
    """Blocks of ``family`` that hold ``depth`` words of ``width`` bits."""
    _, _, banks, columns = block_layout(family, depth, width)
    return banks * columns


@dataclass(frozen=True, kw_only=True)
class Config:
    """One hardware configuration: elaboration parameters of the accelerator.

    Parameters
    ----------
    name : str
    device : str or None
        A :data:`DEVICES` key (``None``: simulation only, no block budget).
    lanes : int
        Adder lanes P (also the lanes of every row memory); a power of two.
    word_bits : int
        Bits per spike word; a power of two and a multiple of ``lanes`` (a word holds whole
        lane groups, so the RTL finds a group's bits by shifts).
    weight_bits, bias_bits, threshold_bits : int
        Signed widths of a weight, a bias, a LIF threshold (positive).
    acc_bits : int
        The widest saturation width of the engine's output (a conv's ``acc_bits``).
    value_bits : int
        Signed width of a ``values`` element (conv outputs, the residual stream, token sums).
    membrane_bits : int
        Signed width of the LIF membrane.
    score_bits : int
        Signed width of a class score.
    max_channels, max_tokens, max_steps, max_input_bits, max_kernel, max_heads : int
        Counts a layer may have.
    program_depth … scores_depth : int
        Depth (addresses) of each memory.
    placement : tuple of (memory name, block family or "lut")
        Where each memory lives (for the block budget); memories not named use the device's
        first family.
    """

    name: str
    device: object
    lanes: int
    word_bits: int
    weight_bits: int
    bias_bits: int
    threshold_bits: int
    acc_bits: int
    value_bits: int
    membrane_bits: int
    score_bits: int
    max_channels: int
    max_tokens: int
    max_steps: int
    max_input_bits: int
    max_kernel: int
    max_heads: int
    program_depth: int
    weights_depth: int
    biases_depth: int
    thresholds_depth: int
    spikes_depth: int
    values_depth: int
    membranes_depth: int
    scores_depth: int
    placement: tuple = ()

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "int" or f.type is int:
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise ValueError(f"config {self.name}: {f.name} must be a positive int, "
                                     f"not {value!r}")
        limits = {"max_channels": "out_channels", "max_tokens": "out_tokens",
                  "max_steps": "steps", "max_input_bits": "in_bits", "max_kernel": "kernel",
                  "max_heads": "heads"}
        for attr, field in limits.items():
            if getattr(self, attr) >= 1 << FIELD_BITS[field]:
                raise ValueError(f"config {self.name}: {attr} does not fit the descriptor "
                                 f"field {field!r} ({FIELD_BITS[field]} bits)")
        for attr in ("lanes", "word_bits"):
            value = getattr(self, attr)
            if value & (value - 1):
                raise ValueError(f"config {self.name}: {attr} must be a power of two, "
                                 f"not {value}")
        if self.word_bits % self.lanes:
            raise ValueError(f"config {self.name}: word_bits ({self.word_bits}) must be a "
                             f"multiple of lanes ({self.lanes})")
        for name, spec in self.memories().items():
            if spec.depth > 1 << FIELD_BITS["a_base"]:
                raise ValueError(f"config {self.name}: {name}_depth exceeds the "
                                 f"{FIELD_BITS['a_base']}-bit address fields")

    def memories(self):
        """``{name: MemorySpec}``: :func:`spikeforge.contract.program.memory_map`."""
        return memory_map(self)

    def block_use(self):
        """``{family: blocks}`` the memories take on the device (empty without a device)."""
        if self.device is None:
            return {}
        families = DEVICES[self.device]
        where = dict(self.placement)
        use = {family: 0 for family in families}
        for name, spec in self.memories().items():
            family = where.get(name, next(iter(families)))
            if family != "lut":
                use[family] += blocks(family, spec.depth, spec.word_bits)
        return use


_ULX3S = Config(
    name="ulx3s-85f", device="ecp5-85k", lanes=16, word_bits=32,
    weight_bits=8, bias_bits=24, threshold_bits=24, acc_bits=24, value_bits=24,
    membrane_bits=32, score_bits=32,
    max_channels=512, max_tokens=1024, max_steps=16, max_input_bits=16, max_kernel=7,
    max_heads=16,
    program_depth=1024, weights_depth=8192, biases_depth=512, thresholds_depth=512,
    spikes_depth=8192, values_depth=2048, membranes_depth=1024, scores_depth=16,
    placement=(("scores", "lut"),))

_UP5K = Config(
    name="icebreaker-up5k", device="ice40-up5k", lanes=2, word_bits=16,
    weight_bits=8, bias_bits=16, threshold_bits=16, acc_bits=16, value_bits=16,
    membrane_bits=24, score_bits=24,
    max_channels=128, max_tokens=256, max_steps=8, max_input_bits=8, max_kernel=7,
    max_heads=8,
    program_depth=512, weights_depth=32768, biases_depth=256, thresholds_depth=256,
    spikes_depth=2048, values_depth=16384, membranes_depth=1024, scores_depth=16,
    placement=(("weights", "ice40-spram"), ("values", "ice40-spram"), ("scores", "lut")))

_SIM = Config(
    name="sim-small", device=None, lanes=8, word_bits=16,
    weight_bits=8, bias_bits=24, threshold_bits=24, acc_bits=24, value_bits=24,
    membrane_bits=32, score_bits=32,
    max_channels=128, max_tokens=64, max_steps=4, max_input_bits=8, max_kernel=7,
    max_heads=4,
    program_depth=1024, weights_depth=16384, biases_depth=128, thresholds_depth=128,
    spikes_depth=4096, values_depth=4096, membranes_depth=512, scores_depth=8)

#: Name → :class:`Config`.
CONFIGS = {c.name: c for c in (_ULX3S, _UP5K, _SIM)}
#: The default configuration (the ULX3S board's).
DEFAULT_CONFIG = _ULX3S.name


def get_config(name=None):
    """The :class:`Config` named ``name`` (default :data:`DEFAULT_CONFIG`); ``ValueError``
    naming the known ones otherwise."""
    name = DEFAULT_CONFIG if name is None else name
    try:
        return CONFIGS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown config {name!r} (configs: {', '.join(CONFIGS)})") from None
