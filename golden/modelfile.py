"""The SpikeForge model file: one ``.npz`` archive holding a JSON manifest and the arrays.

Layout (version 1, documented in ``docs/model-file.md``)
    ``manifest``           uint8 array: UTF-8 JSON (format, version, architecture config, T,
                           quantization, layer program, training record, measured figures)
    ``state/<key>``        float32: the float model's ``state_dict`` (for ``--backend float`` of
                           float-only models, retraining and re-quantization)
    ``<layer>.weight``     int16 (C_out, C_in/groups, k, k): quantized weights
    ``<layer>.bias``       int64 (C_out,): biases in the output's units
    ``<layer>.weight_f``   float32, ``<layer>.bias_f``: the folded float weights (float backend)

:func:`load_model` is the one way in: it validates everything and raises
:class:`ModelFileError` (a ``ValueError``) with one message naming the file and the bad field.
"""

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import torch

from .models import NetConfig

__all__ = ["FORMAT", "VERSION", "ModelFileError", "ModelFile", "save_model", "load_model",
           "default_model_path", "OPS"]

FORMAT = "spikeforge-model"
VERSION = 1
OPS = ("conv", "lif", "add", "attention", "sum_tokens", "readout")


class ModelFileError(ValueError):
    """A model file that is missing, truncated, malformed, out of range or of another version."""


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
        from .models import build_model
        model = build_model(self.config)
        model.load_state_dict(self.state)
        return model.eval()


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


# -- validation ---------------------------------------------------------------------------------

class _Checker:
    def __init__(self, path):
        self.path = path

    def fail(self, field, message):
        raise ModelFileError(f"model file {self.path}: {field}: {message}")

    def int_field(self, obj, key, where, low=None, high=None, optional=False):
        field = f"{where}.{key}" if where else key
        if key not in obj:
            self.fail(field, "missing")
        value = obj[key]
        if value is None and optional:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(field, f"must be an integer, not {value!r}")
        if (low is not None and value < low) or (high is not None and value > high):
            self.fail(field, f"{value} is out of range [{low}, {high}]")
        return value

    def choice(self, obj, key, where, choices):
        field = f"{where}.{key}"
        value = obj.get(key)
        if value not in choices:
            self.fail(field, f"must be one of {', '.join(map(str, choices))}, not {value!r}")
        return value


def _read_archive(path, check):
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        check.fail("file", f"cannot be read ({exc.strerror or exc})")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as exc:
        check.fail("file", f"is truncated or not an .npz archive ({type(exc).__name__})")


def load_model(path=None):
    """Load and validate a model file (default: the shipped one); see the module doc.

    Raises
    ------
    ModelFileError
        Naming the file and the first bad field.
    """
    path = Path(path) if path is not None else default_model_path()
    check = _Checker(path)
    arrays = _read_archive(path, check)
    if "manifest" not in arrays:
        check.fail("manifest", "missing (not a SpikeForge model file)")
    try:
        manifest = json.loads(arrays.pop("manifest").tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        check.fail("manifest", f"is not valid JSON ({exc})")
    if not isinstance(manifest, dict):
        check.fail("manifest", "must be a JSON object")
    if manifest.get("format") != FORMAT:
        check.fail("format", f"must be {FORMAT!r}, not {manifest.get('format')!r}")
    version = manifest.get("version")
    if version != VERSION:
        check.fail("version", f"is {version!r}; this SpikeForge reads version {VERSION}")
    if not isinstance(manifest.get("config"), dict):
        check.fail("config", "missing or not an object")
    try:
        config = NetConfig.from_dict(manifest["config"])
    except (TypeError, ValueError) as exc:
        check.fail("config", str(exc))
    steps = check.int_field(manifest, "time_steps", "", 1, 64)
    if steps != config.time_steps:
        check.fail("time_steps", f"{steps} differs from config.time_steps {config.time_steps}")
    state = {}
    for key in list(arrays):
        if key.startswith("state/"):
            state[key[len("state/"):]] = torch.from_numpy(arrays.pop(key).copy())
    if not state:
        check.fail("state", "no float weights (state/*) in the archive")
    from .models import build_model
    try:
        model = build_model(config)
    except (TypeError, ValueError, KeyError) as exc:
        check.fail("config", f"does not build a model ({exc})")
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        check.fail("state", f"does not fit the config ({_first_line(exc)})")
    layers = manifest.get("layers")
    if layers is not None:
        _check_program(check, manifest, layers, arrays, config)
    return ModelFile(path, manifest, arrays, state)


def _first_line(exc):
    return " ".join(str(exc).split())[:160]


def _check_program(check, manifest, layers, arrays, config):
    quant = manifest.get("quant")
    if not isinstance(quant, dict):
        check.fail("quant", "missing or not an object")
    wbits = check.int_field(quant, "weight_bits", "quant", 2, 16)
    check.int_field(quant, "stream_bits", "quant", 4, 32)
    acc = check.int_field(quant, "acc_bits", "quant", 8, 48)
    if not isinstance(layers, list) or not layers:
        check.fail("layers", "must be a non-empty list")
    shapes = {"input": (config.in_channels, config.image_size, config.image_size)}
    names = {"input"}
    for i, layer in enumerate(layers):
        where = f"layers[{i}]"
        if not isinstance(layer, dict):
            check.fail(where, "must be an object")
        name = layer.get("name")
        if not isinstance(name, str) or not name or name in names:
            check.fail(f"{where}.name", f"must be a new, non-empty string, not {name!r}")
        where = f"layers[{i}] ({name})"
        op = check.choice(layer, "op", where, OPS)
        inputs = layer.get("inputs") if op in ("add", "attention") else [layer.get("input")]
        if not isinstance(inputs, list) or len(inputs) != {"add": 2, "attention": 3}.get(op, 1):
            check.fail(f"{where}.inputs", "wrong number of inputs")
        for src in inputs:
            if src not in names:
                check.fail(f"{where}.input", f"{src!r} is not an earlier layer or 'input'")
        shape = shapes[inputs[0]]
        if op == "conv":
            shape = _check_conv(check, layer, where, arrays, shape, wbits, acc)
        elif op == "lif":
            check.int_field(layer, "threshold", where, 1, (1 << 40))
            check.int_field(layer, "tau_log2", where, 1, 8)
            check.int_field(layer, "frac_bits", where, 0, 32)
            check.int_field(layer, "membrane_bits", where, 2, 62, optional=True)
            check.choice(layer, "reset", where, ("hard", "soft"))
            if not isinstance(layer.get("vth"), (int, float)) or layer["vth"] <= 0:
                check.fail(f"{where}.vth", f"must be a positive number, not {layer.get('vth')!r}")
        elif op == "add":
            check.choice(layer, "mode", where, ("membrane", "sew"))
            check.int_field(layer, "bits", where, 1, 62)
            if shapes[inputs[1]] != shape:
                check.fail(f"{where}.inputs", f"shapes {shape} and {shapes[inputs[1]]} differ")
        elif op == "attention":
            check.choice(layer, "variant", where, ("v1", "ssa", "qk_first"))
            heads = check.int_field(layer, "heads", where, 1, 1024)
            check.int_field(layer, "shift", where, 1, 16)
            if shape[0] % heads:
                check.fail(f"{where}.heads", f"{heads} does not divide {shape[0]} channels")
        elif op == "sum_tokens":
            shape = (shape[0], 1, 1)
        elif op == "readout" and i != len(layers) - 1:
            check.fail(f"{where}.op", "readout must be the last layer")
        shapes[name] = shape
        names.add(name)
    if layers[-1]["op"] != "readout":
        check.fail("layers", "the last layer must be a readout")
    if shapes[layers[-1]["name"]][0] != config.classes:
        check.fail("layers", f"the readout gives {shapes[layers[-1]['name']][0]} classes, "
                   f"config.classes is {config.classes}")


def _check_conv(check, layer, where, arrays, shape, wbits, acc):
    cin = check.int_field(layer, "in_channels", where, 1)
    cout = check.int_field(layer, "out_channels", where, 1)
    k = check.int_field(layer, "kernel", where, 1, 15)
    stride = check.int_field(layer, "stride", where, 1, 8)
    pad = check.int_field(layer, "padding", where, 0, 8)
    groups = check.int_field(layer, "groups", where, 1, cin)
    check.int_field(layer, "input_bits", where, 1, 16)
    check.int_field(layer, "acc_bits", where, 8, 48)
    if cin != shape[0]:
        check.fail(f"{where}.in_channels", f"{cin} but its input has {shape[0]} channels")
    if cin % groups or cout % groups:
        check.fail(f"{where}.groups", f"{groups} does not divide {cin} and {cout}")
    name = layer["name"]
    qmax = (1 << (wbits - 1)) - 1
    bmax = (1 << (acc - 1)) - 1
    expect = {"weight": (cout, cin // groups, k, k), "bias": (cout,),
              "weight_f": (cout, cin // groups, k, k), "bias_f": (cout,)}
    for field, want in expect.items():
        key = f"{name}.{field}"
        if key not in arrays:
            check.fail(f"array {key!r}", "missing")
        value = arrays[key]
        if tuple(value.shape) != want:
            check.fail(f"array {key!r}", f"has shape {tuple(value.shape)}, expected {want}")
        if field.endswith("_f"):
            if value.dtype.kind != "f" or not np.isfinite(value).all():
                check.fail(f"array {key!r}", "must hold finite floats")
            continue
        if value.dtype.kind not in "iu":
            check.fail(f"array {key!r}", f"must hold integers, not {value.dtype}")
        limit = qmax if field == "weight" else bmax
        if value.size and int(np.abs(value.astype(np.int64)).max()) > limit:
            check.fail(f"array {key!r}", f"holds values outside ±{limit} "
                       f"({'quant.weight_bits' if field == 'weight' else 'quant.acc_bits'})")
    size = (shape[1] + 2 * pad - k) // stride + 1
    if size < 1:
        check.fail(f"{where}.kernel", f"{k} does not fit the {shape[1]}×{shape[2]} input")
    return (cout, size, size)
