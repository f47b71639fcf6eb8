"""The engine's geometry: one frozen, checked configuration object shared by the component
(:class:`~.core.SpikeEngine`), its memory image (:mod:`.image`) and its model
(``verif/engine_model.py``)."""

from dataclasses import dataclass

from amaranth.hdl import signed

from spikeforge.contract.sizes import accumulator_bits, ceil_div, conv_output_size

from ..layouts import lane_beat, spike_word, weight_load
from ..memory import RAM_STYLES
from ..params import check_bool, check_int, check_choice

__all__ = ["EngineConfig", "KINDS"]

KINDS = ("linear", "conv", "depthwise")


@dataclass(frozen=True, kw_only=True)
class EngineConfig:
    """Parameters of an event-driven linear / k×k convolution / depthwise layer on ``lanes``
    adder lanes, checked at construction (a bad value raises naming its parameter), and the
    sizes that follow from them.

    Parameters
    ----------
    kind : {"linear", "conv", "depthwise"}
    c_in, c_out : int
        Channels; ``depthwise`` needs ``c_out == c_in``.
    lanes : int
        Adder lanes P.
    in_height, in_width, kernel, stride, padding : int
        Input frame size and kernel geometry (``conv``, ``depthwise``; must stay 1, 1, 1, 1, 0
        for ``linear``).
    input_bits : int
        Bits per input value; 1 for spikes.
    input_signed : bool
        Two's-complement inputs (the top bit-plane is subtracted).
    weight_bits, bias_bits, acc_bits : int
        Signed widths of weights, biases and output values.
    word_bits : int
        Bits per spike word; a multiple of ``lanes`` for ``depthwise``.
    ram_style : {"distributed", "block"}
        Weight and frame memories (:data:`~spikeforge.hdl.memory.RAM_STYLES`).
    """

    kind: str
    c_in: int
    c_out: int
    lanes: int
    in_height: int = 1
    in_width: int = 1
    kernel: int = 1
    stride: int = 1
    padding: int = 0
    input_bits: int = 1
    input_signed: bool = False
    weight_bits: int = 8
    bias_bits: int = 16
    acc_bits: int = 16
    word_bits: int = 32
    ram_style: str = "block"

    def __post_init__(self):
        check_choice("ram_style", self.ram_style, RAM_STYLES)
        check_choice("kind", self.kind, KINDS)
        check_int("c_in", self.c_in, min=1)
        check_int("c_out", self.c_out, min=1)
        check_int("lanes", self.lanes, min=1)
        check_int("input_bits", self.input_bits, min=1, max=16)
        check_bool("input_signed", self.input_signed)
        if self.input_signed and self.input_bits < 2:
            raise ValueError("input_bits must be at least 2 for input_signed=True, not 1")
        check_int("word_bits", self.word_bits, min=1)
        check_int("weight_bits", self.weight_bits, min=2, max=32)
        check_int("bias_bits", self.bias_bits, min=2, max=48)
        check_int("acc_bits", self.acc_bits, min=2, max=64)
        for name in ("in_height", "in_width", "kernel", "stride"):
            check_int(name, getattr(self, name), min=1)
        check_int("padding", self.padding, min=0)
        if self.kind == "linear":
            for name, want in (("in_height", 1), ("in_width", 1), ("kernel", 1), ("stride", 1),
                               ("padding", 0)):
                if getattr(self, name) != want:
                    raise ValueError(f"{name} must be {want} for kind='linear', "
                                     f"not {getattr(self, name)!r}")
        else:
            if self.padding >= self.kernel:
                raise ValueError(f"padding must be less than kernel ({self.kernel}), "
                                 f"not {self.padding!r}")
            if self.kernel > min(self.in_height, self.in_width) + 2 * self.padding:
                raise ValueError(f"kernel must fit the padded input ({self.in_height}x"
                                 f"{self.in_width}, padding {self.padding}), "
                                 f"not {self.kernel!r}")
        if self.kind == "depthwise":
            if self.c_out != self.c_in:
                raise ValueError(f"c_out must equal c_in ({self.c_in}) for kind='depthwise', "
                                 f"not {self.c_out!r}")
            if self.word_bits % self.lanes:
                raise ValueError(f"word_bits must be a multiple of lanes ({self.lanes}) for "
                                 f"kind='depthwise', not {self.word_bits!r}")

    @property
    def lane_groups(self):
        """Lane groups of an output token, ``ceil(c_out / lanes)``."""
        return ceil_div(self.c_out, self.lanes)

    @property
    def conv_groups(self):
        """Convolution groups (PyTorch meaning) of the golden op: ``c_in`` for depthwise, else 1."""
        return self.c_in if self.kind == "depthwise" else 1

    @property
    def taps(self):
        return self.kernel * self.kernel

    @property
    def rows(self):
        """Logical weight rows: ``taps * c_in`` (linear: ``c_in``), ``taps`` for depthwise. This
        is also an output's fan-in."""
        return self.taps if self.kind == "depthwise" else self.taps * self.c_in

    @property
    def sum_bits(self):
        """Partial-sum width: no partial sum of an output can overflow, whatever the event
        order (:func:`spikeforge.contract.sizes.accumulator_bits`)."""
        return accumulator_bits(fan_in=self.rows, weight_bits=self.weight_bits,
                                input_bits=self.input_bits, bias_bits=self.bias_bits)

    @property
    def value_bits(self):
        """Signed width of a value on the load port (a weight or a bias)."""
        return max(self.weight_bits, self.bias_bits)

    @property
    def plane_words(self):
        """Spike words of one bit-plane of a token, ``ceil(c_in / word_bits)``."""
        return ceil_div(self.c_in, self.word_bits)

    @property
    def words(self):
        """Spike words of one input token: ``input_bits`` planes."""
        return self.input_bits * self.plane_words

    @property
    def tag_bits(self):
        """Bits of the walker's per-word tag (a tap's first weight row); 0 for linear."""
        return 0 if self.kind == "linear" else max(1, (self.rows - 1).bit_length())

    @property
    def out_height(self):
        return conv_output_size(self.in_height, kernel=self.kernel, stride=self.stride,
                                padding=self.padding)

    @property
    def out_width(self):
        return conv_output_size(self.in_width, kernel=self.kernel, stride=self.stride,
                                padding=self.padding)

    @property
    def weight_shape(self):
        """Shape of the golden op's weight: (c_out, c_in), (c_out, c_in, k, k) or
        (c_out, 1, k, k)."""
        k = self.kernel
        return {"linear": (self.c_out, self.c_in), "conv": (self.c_out, self.c_in, k, k),
                "depthwise": (self.c_out, 1, k, k)}[self.kind]

    @property
    def spike_layout(self):
        """Payload of the ``spikes`` port: :func:`~spikeforge.hdl.layouts.spike_word`."""
        return spike_word(word_bits=self.word_bits)

    @property
    def load_layout(self):
        """Payload of the ``load`` port: :func:`~spikeforge.hdl.layouts.weight_load`."""
        return weight_load(rows=self.rows, lane_groups=self.lane_groups, lanes=self.lanes,
                           value_bits=self.value_bits)

    @property
    def output_layout(self):
        """Payload of the ``o`` port: :func:`~spikeforge.hdl.layouts.lane_beat` of
        ``signed(acc_bits)`` values."""
        return lane_beat(lanes=self.lanes, shape=signed(self.acc_bits),
                         lane_groups=self.lane_groups)
