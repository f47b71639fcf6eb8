"""The accelerator's program format: opcodes, the layer descriptor, the memory map and the host
commands and error codes, defined once for the compiler (``spikeforge.compiler``), the
accelerator's golden model (``spikeforge.golden.accelerator``), the RTL decoder (which builds its
``data.StructLayout`` from :data:`FIELDS`) and the host driver. Documented in
``docs/accelerator.md``; :data:`FORMAT_VERSION` is bumped on any incompatible change.

Program
    A program is a sequence of fixed-size descriptors of :data:`DESCRIPTOR_WORDS` 32-bit words
    in the ``program`` memory: descriptor ``i`` starts at word ``i << DESCRIPTOR_SHIFT`` (a
    concatenation, no multiplier). The first descriptor is :attr:`Op.INPUT` (where the host
    writes the input image, not executed), then one descriptor per layer of the integer layer
    program, in order, then :attr:`Op.END`.

Descriptor
    :data:`FIELDS` is the ordered table ``(name, bits)``; field ``i`` occupies the bits after
    those of fields ``0 .. i-1``, least significant first, across the little-endian sequence of
    words (bit ``b`` of the descriptor is bit ``b % 32`` of word ``b // 32``). Every product the
    sequencer would need (tokens, words per token, step strides, lane groups, weight rows) is a
    field the compiler precomputes, so the sequencer walks addresses with counters and adds.

Tensors in memory (``src_mem`` / ``dst_mem`` name the memory of the operands / the output)
    ``spikes`` (``word_bits``-bit words): a tensor of ``B``-bit unsigned values (``B = 1``:
    spikes; ``B > 1``: bit-planes of pixels or SEW spike counts) over ``T`` steps, ``N`` tokens
    and ``C`` channels; word ``w`` of plane ``b`` of token ``n`` of step ``t`` is at
    ``base + t * step + n * token + b * plane_words + w`` with ``plane_words =
    ceil(C / word_bits)``, ``token = B * plane_words``; channel ``c`` is bit ``c % word_bits``
    of word ``c // word_bits``.
    ``values``, ``scores`` (rows of ``lanes`` signed values): lane group ``g`` of token ``n`` of
    step ``t`` is row ``base + t * step + n * token + g`` with ``token = lane_groups``; lane
    ``l`` holds channel ``g * lanes + l`` (0 past ``C``).
    Operands ``a`` and ``c`` share ``a_token`` and ``in_bits``; ``b`` has ``b_token`` and
    ``b_bits`` (a SEW add's stream and branch differ in planes).
    A step stride of 0 broadcasts a time-invariant tensor (``T = 1``) over the layer's steps.

Weights, biases, thresholds (rows of ``lanes`` values)
    Weight row ``r`` of lane group ``g`` is at ``weight_base + (r << group_bits | g)`` (the
    engine's layout, ``hdl/engine/image.py``): ``r = tap * C_in + c`` with ``tap = ky * k + kx``
    for a dense conv (a linear layer is a 1×1 conv), ``r = tap`` for a depthwise conv; lane
    ``l`` holds output channel ``g * lanes + l``. Biases: row ``bias_base + g``. LIF thresholds
    (per channel): row ``threshold_base + g``.
"""

from dataclasses import dataclass
from enum import IntEnum

from .attention import VARIANT_KV_FIRST, VARIANT_QK_FIRST, VARIANT_V1

__all__ = [
    "FORMAT_VERSION", "PROGRAM_WORD_BITS", "Op", "Variant", "Reset", "AddMode", "Memory",
    "Command", "Error", "FIELDS", "FIELD_BITS", "DESCRIPTOR_BITS", "DESCRIPTOR_WORDS",
    "DESCRIPTOR_SHIFT", "pack", "unpack", "field_offsets", "MemorySpec", "memory_map",
    "group_bits", "weight_address", "lane_rows", "VARIANT_CODES", "ELEMENT_BITS",
    "IMAGE_MEMORIES",
]

#: Version of the program format (the ``version`` field of every descriptor).
FORMAT_VERSION = 1
#: Bits of a program word.
PROGRAM_WORD_BITS = 32


class Op(IntEnum):
    """Opcodes (field ``op``)."""
    END = 0             #: end of the program: the sequencer sets done
    INPUT = 1           #: where the host writes the input (``dst_*``, geometry); not executed
    CONV = 2            #: engine: bias + Σ weight · input (bit-planes), saturated to out_bits
    LIF = 3             #: LIF over the steps, per-channel thresholds, membranes memory
    ADD = 4             #: residual add (``mode``: membrane or SEW), saturating to out_bits
    ATTENTION = 5       #: attention unit (``variant``, ``heads``, ``shift``)
    SUM_TOKENS = 6      #: sum over the tokens of each step
    READOUT = 7         #: sum over the steps → scores memory


class Variant(IntEnum):
    """Attention variants (field ``variant``), the integer datapaths of
    :data:`spikeforge.contract.attention.VARIANTS`."""
    V1 = 0
    KV_FIRST = 1
    QK_FIRST = 2


#: Model-file variant string → :class:`Variant`.
VARIANT_CODES = {VARIANT_V1: Variant.V1, VARIANT_KV_FIRST: Variant.KV_FIRST,
                 VARIANT_QK_FIRST: Variant.QK_FIRST}


class Reset(IntEnum):
    """LIF reset (field ``reset``)."""
    HARD = 0
    SOFT = 1


class AddMode(IntEnum):
    """Residual add (field ``mode``): signed values or unsigned SEW spike counts."""
    MEMBRANE = 0
    SEW = 1


class Memory(IntEnum):
    """The memories of the accelerator; the number is the memory id of the host commands and of
    the ``src_mem`` / ``dst_mem`` fields."""
    PROGRAM = 0         #: descriptors, 32-bit words
    WEIGHTS = 1         #: lanes × weight_bits per row
    BIASES = 2          #: lanes × bias_bits per row
    THRESHOLDS = 3      #: lanes × threshold_bits per row (LIF thresholds per channel)
    SPIKES = 4          #: word_bits per word: spike tensors and bit-planes (input image, SEW)
    VALUES = 5          #: lanes × value_bits per row: conv outputs, residual stream, sums
    MEMBRANES = 6       #: lanes × membrane_bits per row: the current layer's LIF state
    SCORES = 7          #: lanes × score_bits per row: the readout (class scores)


class Command(IntEnum):
    """Host commands (first byte of a packet's payload; the framing, COBS with a CRC-16, is the
    RTL's host port).

    ``WRITE memory address count data…`` writes ``count`` words of memory ``memory`` (a
    :class:`Memory`) from ``address``; ``READ memory address count`` answers them; ``START``
    runs the program from descriptor 0; ``STATUS`` answers busy, done, the error code and the
    current layer; ``CYCLES layer`` answers the cycle counter of one layer; ``RESET`` stops and
    clears the status (memories keep their contents); ``INFO`` answers :data:`FORMAT_VERSION`
    and the configuration's capacities (lanes, word bits, every memory's depth)."""
    WRITE = 1
    READ = 2
    START = 3
    STATUS = 4
    CYCLES = 5
    RESET = 6
    INFO = 7


class Error(IntEnum):
    """Error codes of the status and of every answer. A command that fails changes nothing."""
    OK = 0
    BAD_FRAME = 1           #: a framing (COBS) error or a truncated packet
    BAD_CHECKSUM = 2        #: the CRC-16 does not match
    UNKNOWN_COMMAND = 3     #: a command byte that is not a :class:`Command`
    BAD_MEMORY = 4          #: a memory id that is not a :class:`Memory`
    ADDRESS_RANGE = 5       #: address + count past the memory's depth
    BAD_LENGTH = 6          #: a payload longer or shorter than its command takes
    BUSY = 7                #: WRITE or START while the program runs
    BAD_VERSION = 8         #: a descriptor whose ``version`` is not FORMAT_VERSION
    BAD_OPCODE = 9          #: a descriptor whose ``op`` is not an :class:`Op`
    CAPACITY = 10           #: a descriptor past a capacity (channels, tokens, steps, a depth)
    NO_END = 11             #: the program runs past the program memory without END


#: The layer descriptor: ``(field, bits)`` in order, least significant first.
FIELDS = (
    ("op", 4),                  # Op
    ("version", 4),             # FORMAT_VERSION
    ("src_mem", 3),             # Memory of operands a, b, c
    ("dst_mem", 3),             # Memory of the output
    ("reset", 1),               # Reset (LIF)
    ("mode", 1),                # AddMode (ADD)
    ("variant", 2),             # Variant (ATTENTION)
    ("depthwise", 1),           # CONV: groups == C_in == C_out
    ("steps", 5),               # steps T of the output (1: time-invariant)
    ("in_steps", 5),            # steps of the input (READOUT sums them)
    ("in_channels", 11),
    ("out_channels", 11),
    ("in_height", 7),
    ("in_width", 7),
    ("out_height", 7),
    ("out_width", 7),
    ("kernel", 4),
    ("stride", 3),
    ("padding", 3),
    ("in_tokens", 14),          # in_height * in_width
    ("out_tokens", 14),         # out_height * out_width
    ("in_bits", 5),             # planes of a spikes input (1: spikes)
    ("out_bits", 6),            # saturation width (values) or planes (spikes) of the output
    ("in_plane_words", 6),      # ceil(in_channels / word_bits)
    ("out_plane_words", 6),     # ceil(out_channels / word_bits)
    ("lane_groups", 8),         # ceil(out_channels / lanes)
    ("group_bits", 4),          # bit length of lane_groups - 1
    ("rows", 16),               # weight rows per lane group (fan-in): taps * C_in or taps
    ("weight_base", 20),
    ("bias_base", 16),
    ("threshold_base", 16),
    ("membrane_bits", 6),       # LIF: signed width the membrane saturates to
    ("tau_log2", 3),
    ("frac_bits", 6),
    ("heads", 6),
    ("head_channels", 11),      # out_channels / heads
    ("shift", 5),               # attention scale 2**-shift
    ("a_base", 20), ("a_step", 20),
    ("b_base", 20), ("b_step", 20),
    ("c_base", 20), ("c_step", 20),
    ("a_token", 12),            # token stride of a (and c)
    ("b_token", 12),            # token stride of b
    ("b_bits", 5),              # planes of a spikes operand b (ADD, SEW)
    ("dst_base", 20), ("dst_step", 20),
    ("dst_token", 12),          # token stride of the output
)

#: Field name → bits.
FIELD_BITS = dict(FIELDS)
#: log2 of the descriptor's words: descriptor i starts at word ``i << DESCRIPTOR_SHIFT``.
DESCRIPTOR_SHIFT = 4
#: Words of a descriptor (the fields, padded with zeros to a power of two of words).
DESCRIPTOR_WORDS = 1 << DESCRIPTOR_SHIFT
#: Bits of a descriptor.
DESCRIPTOR_BITS = DESCRIPTOR_WORDS * PROGRAM_WORD_BITS

if len(FIELD_BITS) != len(FIELDS) or sum(FIELD_BITS.values()) > DESCRIPTOR_BITS:
    raise AssertionError("FIELDS must have unique names and fit DESCRIPTOR_BITS")


def field_offsets():
    """``{field: (offset, bits)}``: the bit offset of every field in the descriptor."""
    offsets, at = {}, 0
    for name, bits in FIELDS:
        offsets[name] = (at, bits)
        at += bits
    return offsets


_OFFSETS = field_offsets()


def pack(fields):
    """The :data:`DESCRIPTOR_WORDS` words (ints) of a descriptor from ``{field: int}``.

    Missing fields are 0; ``version`` defaults to :data:`FORMAT_VERSION`. Raises
    ``ValueError`` naming an unknown field or a value that does not fit its field's bits
    (unsigned), ``TypeError`` for a value that is not an integer.
    """
    fields = {"version": FORMAT_VERSION, **fields}
    value = 0
    for name, v in fields.items():
        if name not in _OFFSETS:
            raise ValueError(f"unknown descriptor field {name!r}")
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"descriptor field {name!r} must be an int, not {v!r}")
        offset, bits = _OFFSETS[name]
        if not 0 <= v < 1 << bits:
            raise ValueError(f"descriptor field {name!r} ({bits} bits) cannot hold {v}")
        value |= int(v) << offset
    mask = (1 << PROGRAM_WORD_BITS) - 1
    return [(value >> (PROGRAM_WORD_BITS * i)) & mask for i in range(DESCRIPTOR_WORDS)]


def unpack(words):
    """``{field: int}`` of a descriptor's :data:`DESCRIPTOR_WORDS` words (inverse of
    :func:`pack`). Raises ``ValueError`` for a wrong word count, a word out of range or bits
    set past the last field."""
    words = [int(w) for w in words]
    if len(words) != DESCRIPTOR_WORDS:
        raise ValueError(f"a descriptor has {DESCRIPTOR_WORDS} words, not {len(words)}")
    value = 0
    for i, w in enumerate(words):
        if not 0 <= w < 1 << PROGRAM_WORD_BITS:
            raise ValueError(f"descriptor word {i} ({w}) is not a {PROGRAM_WORD_BITS}-bit word")
        value |= w << (PROGRAM_WORD_BITS * i)
    used = sum(FIELD_BITS.values())
    if value >> used:
        raise ValueError(f"descriptor has bits set past its last field (bit {used} on)")
    return {name: (value >> offset) & ((1 << bits) - 1)
            for name, (offset, bits) in _OFFSETS.items()}


def group_bits(lane_groups):
    """Address bits of a lane group: a weight row's address is ``row << group_bits | group``, so
    a group index is concatenated, never multiplied (0 for a single lane group)."""
    return (lane_groups - 1).bit_length()


def weight_address(row, group, group_bits):
    """Offset from ``weight_base`` of weight row ``row`` of lane group ``group``:
    ``row << group_bits | group`` (a concatenation)."""
    return row << group_bits | group


def lane_rows(values, lanes, lane_groups=None):
    """``values`` (one per channel) as rows of ``lanes``: row ``g`` holds channels
    ``g * lanes .. g * lanes + lanes - 1``, 0 past the last channel; ``lane_groups`` rows
    (default: as many as the values need)."""
    values = [int(v) for v in values]
    if lane_groups is None:
        lane_groups = -(-len(values) // lanes)
    padded = values + [0] * (lane_groups * lanes - len(values))
    return [padded[g * lanes:(g + 1) * lanes] for g in range(lane_groups)]


#: Memory → the configuration attribute giving the bits of one element (``None``: one word of
#: the memory is one element: program, spikes).
ELEMENT_BITS = {
    Memory.PROGRAM: None, Memory.WEIGHTS: "weight_bits", Memory.BIASES: "bias_bits",
    Memory.THRESHOLDS: "threshold_bits", Memory.SPIKES: None, Memory.VALUES: "value_bits",
    Memory.MEMBRANES: "membrane_bits", Memory.SCORES: "score_bits",
}


#: The memories a compiled model has an image of (loaded before a run); the others hold
#: run-time state.
IMAGE_MEMORIES = ("program", "weights", "biases", "thresholds")


@dataclass(frozen=True)
class MemorySpec:
    """One memory of a configuration: ``word_bits`` per address, ``depth`` addresses;
    ``lanes`` elements of ``element_bits`` per word (1 element for program and spikes)."""
    memory: Memory
    lanes: int
    element_bits: int
    depth: int

    @property
    def name(self):
        return self.memory.name.lower()

    @property
    def word_bits(self):
        return self.lanes * self.element_bits

    @property
    def bits(self):
        return self.word_bits * self.depth


def memory_map(config):
    """``{name: MemorySpec}`` of every :class:`Memory` of ``config`` (an object with ``lanes``,
    ``word_bits``, the ``*_bits`` of :data:`ELEMENT_BITS` and ``<name>_depth`` per memory,
    :class:`spikeforge.contract.configs.Config`)."""
    out = {}
    for memory in Memory:
        attr = ELEMENT_BITS[memory]
        name = memory.name.lower()
        if attr is None:
            bits = PROGRAM_WORD_BITS if memory == Memory.PROGRAM else config.word_bits
            spec = MemorySpec(memory, 1, bits, getattr(config, f"{name}_depth"))
        else:
            spec = MemorySpec(memory, config.lanes, getattr(config, attr),
                              getattr(config, f"{name}_depth"))
        out[name] = spec
    return out
