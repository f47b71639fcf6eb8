"""The SpikeForge model file: one ``.npz`` archive holding a JSON manifest and the arrays.

Layout (version 1, documented in ``docs/model-file.md``)
    ``manifest``           uint8 array: UTF-8 JSON (format, version, architecture config, T,
                           quantization, layer program, training record, measured figures)
    ``state/<key>``        float32 (int64 for integer buffers): the float model's ``state_dict``
                           (for ``--backend float`` of float-only models, retraining and
                           re-quantization)
    ``<layer>.weight``     int16 (C_out, C_in/groups, k, k): quantized weights
    ``<layer>.bias``       int64 (C_out,): biases in the output's units
    ``<layer>.weight_f``   float32, ``<layer>.bias_f``: the folded float weights (float backend)

:func:`load_model` is the one way in. It checks the file against that schema in three passes,
so that a bad file is refused before anything large is allocated:

1. the archive: each member's npy header (dtype, shape) is read without its data; the size a
   header declares must be what the zip directory holds, and all of them together at most
   :data:`MAX_ARRAY_BYTES`;
2. the manifest (at most :data:`MAX_MANIFEST_BYTES` of strict JSON: no NaN or infinity, no key
   twice): every field present and no other, each of its type and in its range, each layer
   with exactly the fields of its ``op``, the program chained (channels, map sizes, the value
   range each tensor can hold against the next layer's ``input_bits``, 64-bit membranes, time
   invariance, scale groups), and the arrays that the program and the float model's structure
   (built on PyTorch's ``meta`` device, which allocates nothing) call for present with their
   dtype and shape, and no other array;
3. only then the arrays' data: every float finite, weights within W bits, biases within
   ``acc_bits``.

Every refusal is one :class:`ModelFileError` whose one-line message names the file and the
field (``layers[4] (s0.b0.sep.tail).kernel``, ``array 'stem.bias'``, ``config.stem[0].stride``).
"""

import functools
import io
import json
import math
import os
import re
import stat
import struct
import zipfile
import zlib
from collections import namedtuple
from pathlib import Path

import numpy as np
import torch

from spikeforge.contract.attention import ORDERS, VARIANTS
from spikeforge.contract.sizes import conv_output_size, signed_range, unsigned_range
from spikeforge.errors import UserError

from .lif import RESETS
from .models import ARCHS_ALL, SPIKE_DRIVEN, NetConfig, build_model
from .residual import MAX_BITS as ADD_MAX_BITS, MODES

__all__ = ["FORMAT", "VERSION", "ModelFileError", "ModelFile", "save_model", "load_model",
           "default_model_path", "OPS", "MAX_ARRAY_BYTES", "MAX_MANIFEST_BYTES", "CONFIG_FIELDS",
           "MODEL_FILE_LIMITS"]

FORMAT = "spikeforge-model"
VERSION = 1
OPS = ("conv", "lif", "add", "attention", "sum_tokens", "readout")

#: Most bytes of array data a file may declare (its npy headers' shapes, summed), checked before
#: any data is read. The released ImageNet models need about 600 MB.
MAX_ARRAY_BYTES = 1 << 30
#: Most bytes of the JSON manifest (the shipped model's has about 12 kB).
MAX_MANIFEST_BYTES = 4 << 20
MAX_MEMBERS = 8192
MAX_LAYERS = 4096
#: Names of layers, scale groups and training-record fields.
NAME = re.compile(r"[A-Za-z0-9_.\-]{1,120}")

# (low, high) of the integer fields; a channel count of the program may be a width times a ratio.
_WIDTH = (1, 8192)
_CHANNELS = (1, 1 << 17)
_KERNEL = (1, 15)
_STRIDE = (1, 8)
_PADDING = (0, 7)
_CONFIG_INTS = {"in_channels": (1, 64), "image_size": (1, 1024), "classes": (1, 100_000),
                "time_steps": (1, 64), "heads": (1, 1024), "mlp_ratio": (1, 16),
                "sep_expansion": (1, 16), "sep_kernel": _KERNEL, "channel_ratio": (1, 16),
                "attention_shift": (1, 16)}
#: The :class:`~.models.NetConfig` fields a file's ``config`` holds (all of them).
CONFIG_FIELDS = ("arch", *_CONFIG_INTS, "input_scale", "stem", "stages", "order")
_MAX_BLOCKS = 64
_WINDOW = ("kernel", "stride", "padding")
_MANIFEST_FIELDS = ("format", "version", "arch", "config", "time_steps", "classes", "input",
                    "quant", "groups", "layers", "training", "metrics")
_QUANT = {"weight_bits": (2, 16), "stream_bits": (4, 32), "acc_bits": (8, 48)}
#: ``(low, high)`` of the fields a trainer chooses: ``config.time_steps``, ``quant.*``.
MODEL_FILE_LIMITS = {"time_steps": _CONFIG_INTS["time_steps"], **_QUANT}
_METRICS = ("train_accuracy", "float_accuracy", "golden_accuracy")
_LAYER_FIELDS = {
    "conv": ("input", "in_channels", "out_channels", "kernel", "stride", "padding", "groups",
             "input_bits", "acc_bits", "time_invariant", "scale", "group"),
    "lif": ("input", "threshold", "tau_log2", "frac_bits", "reset", "membrane_bits", "vth",
            "count", "group"),
    "add": ("inputs", "mode", "bits"),
    "attention": ("inputs", "variant", "heads", "shift"),
    "sum_tokens": ("input",),
    "readout": ("input",),
}
_INPUTS = {"add": 2, "attention": 3}

_NPY_HEADER_BYTES = 10_000
_PLAIN_DTYPES = frozenset(np.dtype(code) for code in "?bBhHiIlLqQefd")
_ZIP_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
# What zipfile, zlib and numpy's npy header parser raise on a damaged archive.
_ARCHIVE_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError,
                   ValueError, TypeError, SyntaxError, KeyError, IndexError, OverflowError,
                   struct.error, NotImplementedError, RuntimeError, RecursionError)
# What building a float model of a checked, but inconsistent, configuration raises.
_BUILD_ERRORS = (TypeError, ValueError, KeyError, IndexError, ZeroDivisionError, RuntimeError)


class ModelFileError(UserError, ValueError):
    """A model file that is missing, truncated, malformed, out of range or of another version.

    A :class:`~spikeforge.errors.UserError` (the CLI prints its one line and exits with status
    2) and a ``ValueError``.
    """


def default_model_path():
    """The shipped model: ``golden/models/default.npz`` (trained by ``spikeforge train``)."""
    return Path(__file__).resolve().parent / "models" / "default.npz"


class ModelFile:
    """A validated model file.

    Attributes
    ----------
    path : Path
    manifest : dict
    config : NetConfig
    time_steps : int
    layers : list of dict or None
        The integer layer program (``None`` for float-only architectures).
    arrays : dict of str → numpy array
        Program arrays (weights, biases, folded float weights).
    state : dict of str → torch.Tensor
        The float model's ``state_dict``.
    """

    def __init__(self, path, manifest, arrays, state):
        self.path = Path(path)
        self.manifest = manifest
        self.config = NetConfig.from_dict(manifest["config"])
        self.time_steps = manifest["time_steps"]
        self.layers = manifest["layers"]
        self.arrays = arrays
        self.state = state

    @property
    def spike_driven(self):
        return self.layers is not None

    def float_model(self):
        """The float ``nn.Module`` with the stored weights, in eval mode."""
        model = build_model(self.config)
        model.load_state_dict(self.state)
        return model.eval()

    def check_images(self, images):
        """Refuse ``images`` ``(B, C, H, W)`` (integer pixels) that this model does not take.

        Raises
        ------
        ModelFileError
            Naming ``input`` when the channels or the size differ from the manifest's, or
            ``input.bits`` when a spike-driven model's unsigned input bits cannot hold a pixel.
        """
        check = _Checker(self.path)
        spec = self.manifest["input"]
        want = (spec["channels"], spec["size"], spec["size"])
        got = tuple(images.shape[1:])
        if got != want:
            check.fail("input", f"the model takes {_dims(want)} images, not {_dims(got)}")
        if self.spike_driven and len(images):
            low, high = int(images.min()), int(images.max())
            top = unsigned_range(spec["bits"])[1]
            if low < 0 or high > top:
                check.fail("input.bits", f"{spec['bits']} bits (0..{top}) cannot hold the "
                           f"pixels {low}..{high}")


def _dims(shape):
    return "×".join(map(str, shape))


def save_model(path, *, config, state_dict, program=None, training=None, metrics=None):
    """Write a model file (``program`` is a finalized :class:`~.quantize.Program` or ``None``)."""
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "arch": config.arch,
        "config": config.to_dict(),
        "time_steps": config.time_steps,
        "classes": config.classes,
        "input": {"channels": config.in_channels, "size": config.image_size,
                  "bits": None, "scale": config.input_scale},
        "quant": None,
        "groups": None,
        "layers": None,
        "training": training or {},
        "metrics": metrics or {},
    }
    arrays = {f"state/{k}": v.detach().cpu().float().numpy() if v.is_floating_point()
              else v.detach().cpu().numpy() for k, v in state_dict.items()}
    if program is not None:
        manifest["quant"] = {"weight_bits": program.weight_bits,
                             "stream_bits": program.stream_bits, "acc_bits": program.acc_bits}
        manifest["groups"] = dict(program.groups)
        manifest["layers"] = program.layers
        manifest["input"]["bits"] = next(l["input_bits"] for l in program.layers
                                         if l.get("input") == "input")
        for key, value in program.arrays.items():
            if key.endswith("_f"):
                arrays[key] = value.astype(np.float32)
            elif key.endswith(".weight"):
                arrays[key] = value.astype(np.int16)        # W <= 16 bits
            else:
                arrays[key] = value.astype(np.int64)
    text = json.dumps(manifest, indent=1, sort_keys=False)
    arrays["manifest"] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    path = Path(path)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    path.write_bytes(buffer.getvalue())
    return path


# -- JSON field checks --------------------------------------------------------------------------

def _show(value, limit=60):
    """``repr(value)``, cut to ``limit`` characters (messages stay one short line)."""
    text = " ".join(repr(value).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _join(where, key):
    """The field path of ``key`` in the object at ``where``; an odd key shown quoted."""
    key = key if isinstance(key, str) and NAME.fullmatch(key) else _show(key, 40)
    return f"{where}.{key}" if where else key


def _first_line(exc):
    return " ".join(str(exc).split())[:160]


class _Checker:
    """Raises :class:`ModelFileError` naming the file and a field; checks JSON values.

    ``where`` is the field path of the object holding ``key`` (``""`` for the manifest).
    """

    def __init__(self, path):
        self.path = path

    def fail(self, field, message):
        raise ModelFileError(f"model file {self.path}: {field}: {message}")

    def fields(self, obj, where, required, optional=()):
        """``obj``, which must be an object holding every ``required`` key and no key beyond
        them and ``optional``."""
        if not isinstance(obj, dict):
            self.fail(where, f"must be an object, not {_show(obj)}")
        for key in required:
            if key not in obj:
                self.fail(_join(where, key), "missing")
        for key in obj:
            if key not in required and key not in optional:
                self.fail(_join(where, key), "is not a field of this format")
        return obj

    def mapping(self, obj, where, limit):
        """``obj``, which must be an object of at most ``limit`` entries with valid names."""
        if not isinstance(obj, dict):
            self.fail(where, f"must be an object, not {_show(obj)}")
        if len(obj) > limit:
            self.fail(where, f"holds {len(obj)} entries, at most {limit}")
        for key in obj:
            if not NAME.fullmatch(key):
                self.fail(_join(where, key), "is not a valid name")
        return obj

    def value(self, obj, key, where):
        if key not in obj:
            self.fail(_join(where, key), "missing")
        return obj[key]

    def integer(self, obj, key, where, low, high, *, null=False):
        value = self.value(obj, key, where)
        if value is None and null:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(_join(where, key), f"must be an integer, not {_show(value)}")
        if not low <= value <= high:
            self.fail(_join(where, key), f"{_show(value)} is out of range [{low}, {high}]")
        return value

    def number(self, obj, key, where, low, high, *, positive=False, null=False):
        """A finite real (JSON integer or float) in ``[low, high]``; above ``low`` if
        ``positive``."""
        value = self.value(obj, key, where)
        if value is None and null:
            return None
        if (isinstance(value, bool) or not isinstance(value, (int, float))
                or (isinstance(value, float) and not math.isfinite(value))):
            self.fail(_join(where, key), f"must be a finite number, not {_show(value)}")
        if not low <= value <= high or (positive and value <= low):
            span = f"({low}, {high}]" if positive else f"[{low}, {high}]"
            self.fail(_join(where, key), f"{_show(value)} is out of range {span}")
        return value

    def flag(self, obj, key, where):
        value = self.value(obj, key, where)
        if not isinstance(value, bool):
            self.fail(_join(where, key), f"must be true or false, not {_show(value)}")
        return value

    def choice(self, obj, key, where, choices):
        value = self.value(obj, key, where)
        if not isinstance(value, str) or value not in choices:
            self.fail(_join(where, key),
                      f"must be one of {', '.join(map(str, choices))}, not {_show(value)}")
        return value

    def name(self, obj, key, where):
        value = self.value(obj, key, where)
        if not isinstance(value, str) or not NAME.fullmatch(value):
            self.fail(_join(where, key), f"must be a name of 1 to 120 letters, digits and "
                      f"'_.-', not {_show(value)}")
        return value

    def items(self, obj, key, where, low, high):
        value = self.value(obj, key, where)
        if not isinstance(value, list) or not low <= len(value) <= high:
            self.fail(_join(where, key), f"must be a list of {low} to {high} entries, "
                      f"not {_show(value)}")
        return value


# -- the archive --------------------------------------------------------------------------------

_Member = namedtuple("_Member", "key info dtype shape fortran offset nbytes")


def _guard(check, field, what, call, *args):
    """``call(*args)``, with what a damaged archive raises turned into a refusal of ``field``."""
    try:
        return call(*args)
    except ModelFileError:
        raise
    except _ARCHIVE_ERRORS as exc:
        kind = type(exc)
        name = kind.__qualname__ if kind.__module__ == "builtins" else \
            f"{kind.__module__}.{kind.__qualname__}"
        check.fail(field, f"{what} ({name}: {_first_line(exc)})")


def _read_header(archive, info):
    """``(dtype, shape, fortran_order, data offset)`` from a member's npy header alone."""
    with archive.open(info) as file:
        version = np.lib.format.read_magic(file)
        if version == (1, 0):
            header = np.lib.format.read_array_header_1_0(file, _NPY_HEADER_BYTES)
        elif version == (2, 0):
            header = np.lib.format.read_array_header_2_0(file, _NPY_HEADER_BYTES)
        else:
            raise ValueError(f"npy version {version} is not supported")
        shape, fortran, dtype = header
        return dtype, shape, fortran, file.tell()


def _read_headers(archive, check):
    """``{key: _Member}`` of every archive member, from the headers; no data is read."""
    infos = _guard(check, "file", "is truncated or not an .npz archive", archive.infolist)
    if len(infos) > MAX_MEMBERS:
        check.fail("file", f"holds {len(infos)} arrays, at most {MAX_MEMBERS}")
    members, total = {}, 0
    for info in infos:
        key = info.filename[:-len(".npy")]
        field = f"array {_show(key, 80)}"
        if not info.filename.endswith(".npy"):
            check.fail(f"array {_show(info.filename, 80)}", "is not an .npy member")
        if key in members:
            check.fail(field, "appears twice in the archive")
        if info.flag_bits & 0x1:
            check.fail(field, "is encrypted")
        if info.compress_type not in _ZIP_METHODS:
            check.fail(field, f"uses compression method {info.compress_type} (only stored "
                       "and deflated are read)")
        dtype, shape, fortran, offset = _guard(check, field, "is damaged", _read_header,
                                               archive, info)
        if dtype not in _PLAIN_DTYPES:
            check.fail(field, f"has dtype {_show(dtype.str)}, not a little-endian number type")
        if len(shape) > 8:
            check.fail(field, f"has {len(shape)} dimensions, at most 8")
        nbytes = math.prod(shape) * dtype.itemsize
        if info.file_size != offset + nbytes:
            check.fail(field, f"its header declares {_show(tuple(shape))} {dtype} "
                       f"({nbytes} bytes) but the archive holds {info.file_size - offset}")
        total += nbytes
        if total > MAX_ARRAY_BYTES:
            check.fail("file", f"declares more than {MAX_ARRAY_BYTES} bytes of arrays "
                       f"(at {field})")
        members[key] = _Member(key, info, dtype, tuple(shape), fortran, offset, nbytes)
    return members


def _read_data(archive, member, check):
    """The member's array (its header's size was checked against the zip directory)."""
    def read():
        with archive.open(member.info) as file:
            file.read(member.offset)
            data = file.read(member.nbytes)
            return data, file.read(1)          # reading to the end checks the CRC

    field = f"array {member.key!r}"
    data, rest = _guard(check, field, "is damaged", read)
    if len(data) != member.nbytes or rest:
        check.fail(field, f"is damaged (its header declares {member.nbytes} bytes)")
    array = np.frombuffer(bytearray(data), dtype=member.dtype)
    return array.reshape(member.shape, order="F" if member.fortran else "C")


def _unique_keys(pairs):
    obj = {}
    for key, value in pairs:
        if key in obj:
            raise ValueError(f"key {_show(key, 40)} appears twice")
        obj[key] = value
    return obj


def _finite(text):
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{_show(text, 40)} is not a finite number")
    return value


def _no_constant(name):
    raise ValueError(f"{name} is not a number")


def _read_manifest(archive, members, check):
    member = members.get("manifest")
    if member is None:
        check.fail("manifest", "missing (not a SpikeForge model file)")
    if member.dtype != np.uint8 or len(member.shape) != 1:
        check.fail("manifest", f"must be a uint8 vector, not {member.dtype} {member.shape}")
    if member.nbytes > MAX_MANIFEST_BYTES:
        check.fail("manifest", f"holds {member.nbytes} bytes, at most {MAX_MANIFEST_BYTES}")
    try:
        text = _read_data(archive, member, check).tobytes().decode("utf-8")
    except UnicodeDecodeError:
        check.fail("manifest", "is not UTF-8 text")
    try:
        manifest = json.loads(text, object_pairs_hook=_unique_keys, parse_float=_finite,
                              parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        check.fail("manifest", f"is not valid JSON ({_first_line(exc)})")
    if not isinstance(manifest, dict):
        check.fail("manifest", "must be a JSON object")
    return manifest


# -- the manifest -------------------------------------------------------------------------------

def _check_manifest(check, manifest):
    """Every top-level field; returns the :class:`NetConfig`."""
    if manifest.get("format") != FORMAT:
        check.fail("format", f"must be {FORMAT!r}, not {_show(manifest.get('format'))}")
    version = manifest.get("version")
    if type(version) is not int or version != VERSION:
        check.fail("version", f"is {_show(version)}; this SpikeForge reads version {VERSION}")
    check.fields(manifest, "", _MANIFEST_FIELDS)
    config = _check_config(check, manifest["config"])
    for key, want in (("arch", config.arch), ("time_steps", config.time_steps),
                      ("classes", config.classes)):
        if type(manifest[key]) is not type(want) or manifest[key] != want:
            check.fail(key, f"{_show(manifest[key])} differs from config.{key} {want!r}")
    spec = check.fields(manifest["input"], "input", ("channels", "size", "bits", "scale"))
    for key, attr in (("channels", "in_channels"), ("size", "image_size"),
                      ("scale", "input_scale")):
        want = getattr(config, attr)
        if isinstance(spec[key], bool) or spec[key] != want:
            check.fail(f"input.{key}", f"{_show(spec[key])} differs from config.{attr} {want!r}")
    if manifest["layers"] is None:
        for field, value in (("input.bits", spec["bits"]), ("quant", manifest["quant"]),
                             ("groups", manifest["groups"])):
            if value is not None:
                check.fail(field, "must be null in a file without a layer program")
    else:
        if config.arch not in SPIKE_DRIVEN:
            check.fail("layers", f"{config.arch} is not spike-driven: its file has no layer "
                       "program (null)")
        check.integer(spec, "bits", "input", 1, 16)
        quant = check.fields(manifest["quant"], "quant", tuple(_QUANT))
        for key, (low, high) in _QUANT.items():
            check.integer(quant, key, "quant", low, high)
        groups = check.mapping(manifest["groups"], "groups", MAX_LAYERS)
        for key in groups:
            check.integer(groups, key, "groups", 1, 1 << 30)
    _check_training(check, manifest["training"])
    metrics = check.fields(manifest["metrics"], "metrics", (), optional=_METRICS)
    for key in metrics:
        check.number(metrics, key, "metrics", 0, 1, null=True)
    return config


def _check_training(check, record):
    """The training record: named scalars (the options a run was given and its figures)."""
    check.mapping(record, "training", 64)
    for key, value in record.items():
        if isinstance(value, str):
            if len(value) > 200:
                check.fail(f"training.{key}", "is longer than 200 characters")
        elif value is not None and not isinstance(value, bool):
            check.number(record, key, "training", -1e30, 1e30)


def _check_window(check, spec, where, size):
    """A ``kernel``/``stride``/``padding`` window over a ``size`` map; its output size."""
    kernel = check.integer(spec, "kernel", where, *_KERNEL)
    stride = check.integer(spec, "stride", where, *_STRIDE)
    padding = check.integer(spec, "padding", where, *_PADDING)
    out = conv_output_size(size, kernel=kernel, stride=stride, padding=padding)
    if out < 1:
        check.fail(f"{where}.kernel", f"{kernel} does not fit the {size}×{size} map "
                   f"(padding {padding})")
    return out


def _check_config(check, data):
    """The ``config`` object: every :class:`NetConfig` field, typed and bounded (so that the
    model it describes is of a size the archive's arrays can match), map sizes that stay at
    least 1."""
    check.fields(data, "config", CONFIG_FIELDS)
    check.choice(data, "arch", "config", ARCHS_ALL)
    for key, (low, high) in _CONFIG_INTS.items():
        check.integer(data, key, "config", low, high)
    check.number(data, "input_scale", "config", 0, 1e6, positive=True)
    check.choice(data, "order", "config", ORDERS)
    size = data["image_size"]
    for i, conv in enumerate(check.items(data, "stem", "config", 1, 8)):
        where = f"config.stem[{i}]"
        check.fields(conv, where, ("width", *_WINDOW))
        check.integer(conv, "width", where, *_WIDTH)
        size = _check_window(check, conv, where, size)
    blocks = 0
    for i, stage in enumerate(check.items(data, "stages", "config", 1, 16)):
        where = f"config.stages[{i}]"
        check.fields(stage, where, ("width", "downsample", "block", "depth"))
        width = check.integer(stage, "width", where, *_WIDTH)
        block = check.choice(stage, "block", where, ("conv", "transformer"))
        blocks += check.integer(stage, "depth", where, 1, _MAX_BLOCKS)
        if blocks > _MAX_BLOCKS:
            check.fail(f"{where}.depth", f"makes {blocks} blocks, at most {_MAX_BLOCKS}")
        if stage["downsample"] is not None:
            check.fields(stage["downsample"], f"{where}.downsample", _WINDOW)
            size = _check_window(check, stage["downsample"], f"{where}.downsample", size)
        if block == "transformer" and width % data["heads"]:
            check.fail("config.heads", f"{data['heads']} does not divide {where}.width {width}")
    try:
        return NetConfig.from_dict(data)
    except (TypeError, ValueError) as exc:
        check.fail("config", _first_line(exc))


# -- the arrays the manifest calls for ----------------------------------------------------------

# dtype and shape of an array; ``limit``: largest magnitude of an integer array, named ``field``.
_Array = namedtuple("_Array", "dtype shape limit field", defaults=(None, None))


def _state_arrays(check, config):
    """``{"state/<key>": _Array}`` of the float model's ``state_dict``, from a model built on
    the ``meta`` device (no storage is allocated)."""
    try:
        return dict(_meta_state(json.dumps(config.to_dict(), sort_keys=True)))
    except _BUILD_ERRORS as exc:
        check.fail("config", f"does not build a model ({_first_line(exc)})")


@functools.lru_cache(maxsize=8)
def _meta_state(config_json):
    """``((key, _Array), …)`` of the model of a config (its JSON): built once per config."""
    with torch.device("meta"):
        model = build_model(NetConfig.from_dict(json.loads(config_json)))
    return tuple((f"state/{key}", _Array(torch.empty(0, dtype=value.dtype).numpy().dtype,
                                         tuple(value.shape)))
                 for key, value in model.state_dict().items())


# What one tensor of the program holds: (C, H, W), the range of its integers, and whether it is
# time-invariant (computed once per sample: the input and the convs that read only it).
_Tensor = namedtuple("_Tensor", "shape low high invariant")


class _Program:
    """Checks the layer program layer by layer; :meth:`run` returns the arrays it calls for."""

    def __init__(self, check, manifest, config):
        self.check = check
        self.manifest = manifest
        self.config = config
        self.quant = manifest["quant"]
        self.groups = manifest["groups"]
        self.used = set()
        self.arrays = {}

    def run(self):
        check, config = self.check, self.config
        layers = check.items(self.manifest, "layers", "", 1, MAX_LAYERS)
        size = config.image_size
        tensors = {"input": _Tensor((config.in_channels, size, size),
                                    *unsigned_range(self.manifest["input"]["bits"]), True)}
        for i, layer in enumerate(layers):
            if not isinstance(layer, dict):
                check.fail(f"layers[{i}]", f"must be an object, not {_show(layer)}")
            name = check.name(layer, "name", f"layers[{i}]")
            if name in tensors:
                check.fail(f"layers[{i}].name", f"{name!r} is already taken")
            where = f"layers[{i}] ({name})"
            op = check.choice(layer, "op", where, OPS)
            check.fields(layer, where, ("op", "name", *_LAYER_FIELDS[op]))
            if op in _INPUTS:
                sources, field = layer["inputs"], f"{where}.inputs"
                if not isinstance(sources, list) or len(sources) != _INPUTS[op]:
                    check.fail(field, f"must list {_INPUTS[op]} earlier layers, "
                               f"not {_show(sources)}")
            else:
                sources, field = [layer["input"]], f"{where}.input"
            for source in sources:
                if not isinstance(source, str) or source not in tensors:
                    check.fail(field, f"{_show(source)} is not an earlier layer or 'input'")
            if op == "readout" and i != len(layers) - 1:
                check.fail(f"{where}.op", "readout must be the last layer")
            inputs = [tensors[source] for source in sources]
            tensors[name] = getattr(self, op)(layer, where, *inputs)
        if layers[-1]["op"] != "readout":
            check.fail("layers", "the last layer must be a readout")
        classes = math.prod(tensors[layers[-1]["name"]].shape)
        if classes != config.classes:
            check.fail("layers", f"the readout gives {classes} classes, config.classes is "
                       f"{config.classes}")
        unused = sorted(set(self.groups) - self.used)
        if unused:
            check.fail(f"groups.{unused[0]}", "no layer uses this scale group")
        return self.arrays

    def group(self, layer, where):
        name = self.check.name(layer, "group", where)
        if name not in self.groups:
            self.check.fail(f"{where}.group", f"{name!r} is not one of the groups")
        self.used.add(name)
        return self.groups[name]

    def conv(self, layer, where, x):
        check = self.check
        cin = check.integer(layer, "in_channels", where, *_CHANNELS)
        cout = check.integer(layer, "out_channels", where, *_CHANNELS)
        kernel = check.integer(layer, "kernel", where, *_KERNEL)
        stride = check.integer(layer, "stride", where, *_STRIDE)
        padding = check.integer(layer, "padding", where, *_PADDING)
        groups = check.integer(layer, "groups", where, 1, cin)
        input_bits = check.integer(layer, "input_bits", where, 1, 16)
        acc_bits = check.integer(layer, "acc_bits", where, *_QUANT["acc_bits"])
        invariant = check.flag(layer, "time_invariant", where)
        check.number(layer, "scale", where, 0, 1e30, positive=True)
        self.group(layer, where)
        if cin != x.shape[0]:
            check.fail(f"{where}.in_channels", f"{cin} but its input has {x.shape[0]} channels")
        if cin % groups or cout % groups:
            check.fail(f"{where}.groups", f"{groups} does not divide {cin} and {cout}")
        if x.low < 0 or x.high > unsigned_range(input_bits)[1]:
            check.fail(f"{where}.input_bits", f"{input_bits}-bit unsigned inputs cannot hold "
                       f"the values {x.low}..{x.high} of its input {layer['input']!r}")
        if invariant != x.invariant:
            check.fail(f"{where}.time_invariant", f"must be {str(x.invariant).lower()}: its "
                       f"input is {'' if x.invariant else 'not '}time-invariant")
        sizes = [conv_output_size(n, kernel=kernel, stride=stride, padding=padding)
                 for n in x.shape[1:]]
        if min(sizes) < 1:
            check.fail(f"{where}.kernel", f"{kernel} does not fit the {_dims(x.shape[1:])} "
                       f"input (padding {padding})")
        weight = (cout, cin // groups, kernel, kernel)
        qmax = signed_range(self.quant["weight_bits"])[1]
        bmax = signed_range(self.quant["acc_bits"])[1]
        name = layer["name"]
        self.arrays.update({
            f"{name}.weight": _Array(np.dtype(np.int16), weight, qmax, "quant.weight_bits"),
            f"{name}.bias": _Array(np.dtype(np.int64), (cout,), bmax, "quant.acc_bits"),
            f"{name}.weight_f": _Array(np.dtype(np.float32), weight),
            f"{name}.bias_f": _Array(np.dtype(np.float32), (cout,))})
        return _Tensor((cout, *sizes), *signed_range(acc_bits), invariant)

    def lif(self, layer, where, x):
        check = self.check
        threshold = check.integer(layer, "threshold", where, 1, 1 << 40)
        check.integer(layer, "tau_log2", where, 1, 8)
        frac_bits = check.integer(layer, "frac_bits", where, 0, 32)
        check.integer(layer, "membrane_bits", where, 2, 62, null=True)
        check.choice(layer, "reset", where, RESETS)
        check.number(layer, "vth", where, 0, 1e30, positive=True)
        count = check.integer(layer, "count", where, 1, 1 << 20)
        theta = self.group(layer, where)
        if threshold != count * theta:
            check.fail(f"{where}.threshold", f"{threshold} is not count × groups"
                       f"[{layer['group']!r}] = {count} × {theta}")
        # the membrane steps through (x << F) - V and compares with threshold << F in int64
        magnitude = max(-x.low, x.high)
        if max(magnitude.bit_length() + 1, threshold.bit_length()) + frac_bits > 62:
            check.fail(f"{where}.frac_bits", f"{frac_bits} fractional bits overflow a 64-bit "
                       f"membrane for inputs up to {magnitude} and threshold {threshold}")
        return _Tensor(x.shape, 0, 1, False)

    def add(self, layer, where, a, b):
        check = self.check
        mode = check.choice(layer, "mode", where, MODES)
        bits = check.integer(layer, "bits", where, 1, ADD_MAX_BITS)
        if a.shape != b.shape:
            check.fail(f"{where}.inputs", f"shapes {a.shape} and {b.shape} differ")
        if mode == "sew":
            if min(a.low, b.low) < 0:
                check.fail(f"{where}.mode", "sew adds non-negative spike counts; an input "
                           "can be negative")
            low, high = 0, min(a.high + b.high, unsigned_range(bits)[1])
        else:
            low, high = signed_range(bits)
        return _Tensor(a.shape, low, high, a.invariant and b.invariant)

    def attention(self, layer, where, q, k, v):
        check = self.check
        check.choice(layer, "variant", where, VARIANTS)
        heads = check.integer(layer, "heads", where, 1, 1024)
        check.integer(layer, "shift", where, 1, 16)
        if k.shape != q.shape or v.shape != q.shape:
            check.fail(f"{where}.inputs", f"Q, K and V shapes {q.shape}, {k.shape}, {v.shape} "
                       "differ")
        if any(t.low < 0 or t.high > 1 for t in (q, k, v)):
            check.fail(f"{where}.inputs", "Q, K and V must be spikes (0 or 1)")
        if q.shape[0] % heads:
            check.fail(f"{where}.heads", f"{heads} does not divide {q.shape[0]} channels")
        return _Tensor(q.shape, 0, 1, False)

    def sum_tokens(self, layer, where, x):
        tokens = x.shape[1] * x.shape[2]
        return _Tensor((x.shape[0], 1, 1), x.low * tokens, x.high * tokens, x.invariant)

    def readout(self, layer, where, x):
        steps = self.config.time_steps
        return _Tensor(x.shape, x.low * steps, x.high * steps, False)


def _match(check, members, expected):
    """Every expected array present with its dtype and shape, and no other array."""
    for key, want in expected.items():
        state = key.startswith("state/")
        got = members.get(key)
        if got is not None and got.shape == want.shape and got.dtype == want.dtype:
            continue
        if state:
            name = key[len("state/"):]
            if got is None:
                problem = f"no {name!r}"
            elif got.shape != want.shape:
                problem = f"{name!r} has shape {got.shape}, expected {want.shape}"
            else:
                problem = f"{name!r} is {got.dtype}, expected {want.dtype}"
            check.fail("state", f"does not fit the config ({problem})")
        field = f"array {key!r}"
        if got is None:
            check.fail(field, "missing")
        if got.shape != want.shape:
            check.fail(field, f"has shape {got.shape}, expected {want.shape}")
        if want.dtype.kind in "iu" and got.dtype.kind not in "iu":
            check.fail(field, f"must hold integers ({want.dtype}), not {got.dtype}")
        check.fail(field, f"must be {want.dtype}, not {got.dtype}")
    extra = sorted(set(members) - set(expected) - {"manifest"})
    if extra:
        if extra[0].startswith("state/"):
            check.fail("state", f"does not fit the config (unexpected "
                       f"{_show(extra[0][len('state/'):], 60)})")
        check.fail(f"array {_show(extra[0], 80)}", "is not an array of this model")


def _check_values(check, arrays, expected):
    for key, want in expected.items():
        value, field = arrays[key], f"array {key!r}"
        if value.dtype.kind == "f":
            if not np.isfinite(value).all():
                check.fail(field, "must hold finite floats (it holds NaN or infinity)")
        elif want.limit is not None and value.size:
            if int(value.min()) < -want.limit or int(value.max()) > want.limit:
                check.fail(field, f"holds values outside ±{want.limit} ({want.field})")


def load_model(path=None):
    """Load and validate a model file (default: the shipped one); see the module doc.

    Raises
    ------
    ModelFileError
        Naming the file and the first bad field.
    """
    path = Path(path) if path is not None else default_model_path()
    check = _Checker(path)
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            check.fail("file", "cannot be read (not a regular file)")
        file = open(path, "rb")
    except OSError as exc:
        check.fail("file", f"cannot be read ({exc.strerror or exc})")
    with file:
        archive = _guard(check, "file", "is truncated or not an .npz archive",
                         zipfile.ZipFile, file)
        members = _read_headers(archive, check)
        manifest = _read_manifest(archive, members, check)
        config = _check_manifest(check, manifest)
        expected = _state_arrays(check, config)
        if manifest["layers"] is not None:
            expected.update(_Program(check, manifest, config).run())
        _match(check, members, expected)
        arrays = {key: _read_data(archive, members[key], check) for key in expected}
    _check_values(check, arrays, expected)
    state = {key[len("state/"):]: torch.from_numpy(np.ascontiguousarray(arrays.pop(key)))
             for key in list(arrays) if key.startswith("state/")}
    return ModelFile(path, manifest, arrays, state)
