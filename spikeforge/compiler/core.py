"""Model file + hardware configuration → program words, memory images and a manifest.

One descriptor per layer of the golden integer layer program (``docs/model-file.md``), preceded
by :attr:`~spikeforge.contract.program.Op.INPUT` and followed by ``END``. Every layer's output
is a tensor in the ``spikes`` (spikes and bit-planes), ``values`` (signed multi-bit) or
``scores`` memory, allocated first-fit while it is live (from its layer to its last reader; an
output never overlaps its inputs). Weights, biases and thresholds are packed per lane group as
the engine reads them (``spikeforge.contract.program``).

A model that does not fit the configuration, or is not spike-driven, raises
:class:`CompileError` (a :class:`~spikeforge.errors.UserError`): one line naming the layer, the
limit and the value.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from spikeforge.contract.attention import VARIANT_V1, lif_membrane_bits
from spikeforge.contract.configs import get_config
from spikeforge.contract.program import (DESCRIPTOR_WORDS, FORMAT_VERSION, IMAGE_MEMORIES,
                                         AddMode, Memory, Op, Reset, VARIANT_CODES, group_bits,
                                         lane_rows, pack, weight_address)
from spikeforge.contract.sizes import ceil_div, signed_range
from spikeforge.errors import UserError

__all__ = ["CompileError", "Compiled", "TensorPlace", "compile_model", "IMAGE_MEMORIES"]

class CompileError(UserError, ValueError):
    """A model the configuration cannot run: one line naming the layer, the limit, the value."""


@dataclass(frozen=True)
class TensorPlace:
    """Where a layer's output lives: memory, base, strides and geometry."""
    memory: str
    base: int
    step: int
    token: int
    steps: int
    channels: int
    height: int
    width: int
    bits: int

    @property
    def tokens(self):
        return self.height * self.width

    @property
    def size(self):
        return self.steps * self.step if self.steps > 1 else self.tokens * self.token

    def to_dict(self):
        return dict(self.__dict__)


@dataclass
class Compiled:
    """A compiled model: ``program`` (words), ``images`` (``{memory: int64 array}``: program
    ``(words,)``, the row memories ``(rows, lanes)``), the ``used`` words of every memory and
    per layer its name, op and output place."""
    model: str
    config: object
    program: list
    images: dict
    used: dict
    layers: list = field(default_factory=list)

    @property
    def fits(self):
        return all(self.used[n] <= s.depth for n, s in self.config.memories().items())

    def summary(self):
        """The ``spikeforge compile --json`` object."""
        return {"model": self.model, "config": self.config.name, "layers": len(self.layers),
                "program_words": len(self.program),
                "memories": {name: {"used": self.used[name], "capacity": spec.depth}
                             for name, spec in self.config.memories().items()},
                "fits": self.fits}

    def manifest(self):
        """JSON-able manifest: the summary, the format version, the memory map and the layers."""
        memories = {name: {"id": int(spec.memory), "word_bits": spec.word_bits,
                           "lanes": spec.lanes, "element_bits": spec.element_bits,
                           "depth": spec.depth, "used": self.used[name],
                           "image": f"{name}.npy" if name in self.images else None}
                    for name, spec in self.config.memories().items()}
        return {**self.summary(), "format_version": FORMAT_VERSION,
                "descriptor_words": DESCRIPTOR_WORDS, "memories": memories,
                "layer_table": self.layers}

    def save(self, directory):
        """Write ``<memory>.npy`` per image and ``manifest.json`` into ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        for name, image in self.images.items():
            np.save(directory / f"{name}.npy", image)
        (directory / "manifest.json").write_text(json.dumps(self.manifest(), indent=1) + "\n")
        return directory


class _Allocator:
    """First-fit allocation of address ranges in one memory; ``high`` is the peak use."""

    def __init__(self):
        self.free = [(0, None)]             # (start, end or None = unbounded)
        self.high = 0

    def alloc(self, size):
        for i, (start, end) in enumerate(self.free):
            if end is None or end - start >= size:
                self.free[i] = (start + size, end)
                if self.free[i][1] is not None and self.free[i][0] == self.free[i][1]:
                    del self.free[i]
                self.high = max(self.high, start + size)
                return start
        raise AssertionError("unreachable: the last free range is unbounded")

    def release(self, start, size):
        self.free.append((start, start + size))
        self.free.sort(key=lambda r: (r[0], r[1] is None))
        merged = []
        for s, e in self.free:
            if merged and merged[-1][1] == s:
                merged[-1] = (merged[-1][0], e)
            else:
                merged.append((s, e))
        self.free = merged


class _Compiler:
    def __init__(self, model, config):
        self.model = model
        self.config = config
        self.lanes = config.lanes
        self.steps = model.time_steps
        self.alloc = {"spikes": _Allocator(), "values": _Allocator(), "scores": _Allocator()}
        self.places = {}
        self.words = []
        self.rows = {"weights": [], "biases": [], "thresholds": []}
        self.table = []
        self.layer = "input"

    # -- refusals -----------------------------------------------------------------------------
    def fail(self, what):
        raise CompileError(f"cannot compile {self.model.path.name} for {self.config.name}: "
                           f"layer {self.layer}: {what}")

    def limit(self, what, value, attr):
        bound = getattr(self.config, attr)
        if value > bound:
            self.fail(f"{what} {value} exceeds {attr} {bound}")

    # -- tensors ------------------------------------------------------------------------------
    def place(self, memory, *, steps, channels, height, width, bits):
        """Allocate an output tensor."""
        tokens = height * width
        if memory == "spikes":
            token = bits * ceil_div(channels, self.config.word_bits)
        else:
            token = ceil_div(channels, self.lanes)
        place = TensorPlace(memory, 0, tokens * token, token, steps, channels, height, width,
                            bits)
        base = self.alloc[memory].alloc(place.size)
        place = TensorPlace(memory, base, place.step, token, steps, channels, height, width,
                            bits)
        depth = getattr(self.config, f"{memory}_depth")
        if self.alloc[memory].high > depth:
            self.fail(f"memory {memory} needs {self.alloc[memory].high} words, exceeds "
                      f"{memory}_depth {depth}")
        return place

    def operand(self, name, prefix, layer_steps):
        """Descriptor fields of operand ``prefix`` (a, b, c) reading tensor ``name``."""
        p = self.places[name]
        step = 0 if p.steps == 1 and layer_steps > 1 else p.step
        return {f"{prefix}_base": p.base, f"{prefix}_step": step}

    def rows_of(self, memory, rows):
        """Append ``rows`` (lists of lanes) to a parameter memory; return their base."""
        base = len(self.rows[memory])
        self.rows[memory].extend(rows)
        depth = getattr(self.config, f"{memory}_depth")
        if len(self.rows[memory]) > depth:
            self.fail(f"memory {memory} needs {len(self.rows[memory])} rows, exceeds "
                      f"{memory}_depth {depth}")
        return base

    def lane_rows(self, values, bits, what, attr):
        lo, hi = signed_range(bits)
        values = [int(v) for v in values]
        if values and (min(values) < lo or max(values) > hi):
            bad = max(values, key=abs)
            self.fail(f"{what} {bad} does not fit {attr} {bits}")
        return lane_rows(values, self.lanes)

    def geometry(self, src, dst):
        g = ceil_div(dst.channels, self.lanes)
        return {"steps": dst.steps, "in_steps": src.steps,
                "in_channels": src.channels, "out_channels": dst.channels,
                "in_height": src.height, "in_width": src.width,
                "out_height": dst.height, "out_width": dst.width,
                "in_tokens": src.tokens, "out_tokens": dst.tokens,
                "in_bits": src.bits if src.memory == "spikes" else 1,
                "out_bits": dst.bits,
                "in_plane_words": ceil_div(src.channels, self.config.word_bits),
                "out_plane_words": ceil_div(dst.channels, self.config.word_bits),
                "lane_groups": g, "group_bits": group_bits(g),
                "src_mem": int(Memory[src.memory.upper()]),
                "dst_mem": int(Memory[dst.memory.upper()]),
                "a_token": src.token, "dst_base": dst.base, "dst_step": dst.step,
                "dst_token": dst.token}

    def emit(self, fields):
        try:
            self.words.extend(pack(fields))
        except ValueError as exc:
            self.fail(str(exc))

    def check_counts(self, place):
        self.limit("channels", place.channels, "max_channels")
        self.limit("tokens", place.tokens, "max_tokens")
        self.limit("steps", place.steps, "max_steps")

    # -- the program --------------------------------------------------------------------------
    def run(self):
        model = self.model
        if not model.spike_driven:
            self.layer = "-"
            self.fail(f"arch {model.config.arch!r} is not spike-driven (softmax attention, "
                      "LayerNorm): it has no integer layer program")
        self.limit("time steps", self.steps, "max_steps")
        spec = model.manifest["input"]
        self.limit("input bits", spec["bits"], "max_input_bits")
        x = self.place("spikes", steps=1, channels=spec["channels"], height=spec["size"],
                       width=spec["size"], bits=spec["bits"])
        self.check_counts(x)
        self.places["input"] = x
        self.emit({"op": Op.INPUT, **self.geometry(x, x)})
        layers = model.layers
        last_use = {}
        for i, layer in enumerate(layers):
            for src in layer.get("inputs", [layer.get("input")]):
                last_use[src] = i
        for i, layer in enumerate(layers):
            self.layer = f"{layer['name']} ({layer['op']})"
            sources = layer["inputs"] if "inputs" in layer else [layer["input"]]
            out, fields = getattr(self, "_" + layer["op"])(layer, [self.places[s]
                                                                   for s in sources], layers)
            self.check_counts(out)
            fields.update(self.operand(sources[0], "a", out.steps))
            for prefix, src in zip("bc", sources[1:]):
                fields.update(self.operand(src, prefix, out.steps))
            self.emit(fields)
            self.places[layer["name"]] = out
            self.table.append({"name": layer["name"], "op": layer["op"],
                               "output": out.to_dict()})
            for src in set(sources):
                if last_use[src] == i:
                    p = self.places[src]
                    self.alloc[p.memory].release(p.base, p.size)
        self.layer = "END"
        self.emit({"op": Op.END})
        self.limit_memory("program", len(self.words))
        return self.finish()

    def limit_memory(self, memory, used):
        depth = getattr(self.config, f"{memory}_depth")
        if used > depth:
            self.fail(f"memory {memory} needs {used} words, exceeds {memory}_depth {depth}")

    def finish(self):
        lanes = self.lanes
        images = {"program": np.asarray(self.words, dtype=np.int64)}
        for memory, rows in self.rows.items():
            images[memory] = np.asarray(rows, dtype=np.int64).reshape(-1, lanes)
        used = {"program": len(self.words), **{m: len(r) for m, r in self.rows.items()},
                **{m: a.high for m, a in self.alloc.items()},
                "membranes": self.membranes}
        return Compiled(model=str(self.model.path), config=self.config, program=self.words,
                        images=images, used=used, layers=self.table)

    membranes = 0

    def need_membranes(self, place):
        rows = place.tokens * ceil_div(place.channels, self.lanes)
        self.limit_memory("membranes", rows)
        self.membranes = max(self.membranes, rows)

    # -- ops ----------------------------------------------------------------------------------
    def _conv(self, layer, srcs, layers):
        (src,) = srcs
        config, name = self.config, layer["name"]
        if src.memory != "spikes":
            self.fail("a conv must read spikes or bit-planes, not multi-bit values")
        cin, cout, k = layer["in_channels"], layer["out_channels"], layer["kernel"]
        groups = layer["groups"]
        depthwise = groups > 1
        if depthwise and not groups == cin == cout:
            self.fail(f"groups {groups} is neither 1 nor depthwise (C_in {cin}, C_out {cout})")
        self.limit("kernel", k, "max_kernel")
        self.limit("input bits", layer["input_bits"], "max_input_bits")
        self.limit("acc_bits", layer["acc_bits"], "acc_bits")
        self.limit("acc_bits", layer["acc_bits"], "value_bits")
        weight = np.asarray(self.model.arrays[f"{name}.weight"], dtype=np.int64)
        bias = np.asarray(self.model.arrays[f"{name}.bias"], dtype=np.int64)
        size = [(n + 2 * layer["padding"] - k) // layer["stride"] + 1
                for n in (src.height, src.width)]
        out = self.place("values", steps=src.steps, channels=cout, height=size[0],
                         width=size[1], bits=layer["acc_bits"])
        taps = k * k
        rows = taps if depthwise else taps * cin
        g = ceil_div(cout, self.lanes)
        gbits = (g - 1).bit_length()
        w = weight.reshape(cout, -1, taps)
        image = [[0] * self.lanes for _ in range(rows << gbits)]
        for row in range(rows):
            tap, c = (row, 0) if depthwise else divmod(row, cin)
            for group, lane_values in enumerate(self.lane_rows(
                    w[:, c, tap], config.weight_bits, "weight", "weight_bits")):
                image[weight_address(row, group, gbits)] = lane_values
        fields = {"op": Op.CONV, **self.geometry(src, out), "kernel": k,
                  "stride": layer["stride"], "padding": layer["padding"],
                  "depthwise": int(depthwise), "in_bits": layer["input_bits"], "rows": rows,
                  "weight_base": self.rows_of("weights", image),
                  "bias_base": self.rows_of("biases", self.lane_rows(
                      bias, config.bias_bits, "bias", "bias_bits"))}
        return out, fields

    def _lif(self, layer, srcs, layers):
        (src,) = srcs
        if src.memory != "values":
            self.fail("a LIF must read values")
        if layer["membrane_bits"] is None:
            self.fail(f"an unbounded membrane exceeds membrane_bits {self.config.membrane_bits}")
        self.limit("membrane_bits", layer["membrane_bits"], "membrane_bits")
        out = self.place("spikes", steps=self.steps, channels=src.channels, height=src.height,
                         width=src.width, bits=1)
        self.need_membranes(out)
        threshold = self.lane_rows([int(layer["threshold"])] * src.channels,
                                   self.config.threshold_bits, "threshold", "threshold_bits")
        fields = {"op": Op.LIF, **self.geometry(src, out),
                  "membrane_bits": layer["membrane_bits"],
                  "threshold_base": self.rows_of("thresholds", threshold),
                  "tau_log2": layer["tau_log2"], "frac_bits": layer["frac_bits"],
                  "reset": int(Reset[layer["reset"].upper()])}
        return out, fields

    def _add(self, layer, srcs, layers):
        a, b = srcs
        mode = AddMode[layer["mode"].upper()]
        memory = "values" if mode == AddMode.MEMBRANE else "spikes"
        if a.memory != memory or b.memory != memory:
            self.fail(f"a {layer['mode']} add must read {memory}")
        if mode == AddMode.MEMBRANE:
            self.limit("bits", layer["bits"], "value_bits")
        out = self.place(memory, steps=max(a.steps, b.steps), channels=a.channels,
                         height=a.height, width=a.width, bits=layer["bits"])
        fields = {"op": Op.ADD, **self.geometry(a, out), "in_steps": out.steps,
                  "mode": int(mode),
                  "b_token": b.token, "b_bits": b.bits if memory == "spikes" else 1}
        return out, fields

    def _attention(self, layer, srcs, layers):
        q = srcs[0]
        if any(s.memory != "spikes" or s.bits != 1 for s in srcs):
            self.fail("attention must read spikes")
        self.limit("heads", layer["heads"], "max_heads")
        out = self.place("spikes", steps=self.steps, channels=q.channels, height=q.height,
                         width=q.width, bits=1)
        if layer["variant"] != VARIANT_V1:
            self.need_membranes(out)
            self.limit("attention membrane bits",
                       lif_membrane_bits(shift=layer["shift"], steps=self.steps),
                       "membrane_bits")
        fields = {"op": Op.ATTENTION, **self.geometry(q, out),
                  "variant": int(VARIANT_CODES[layer["variant"]]), "heads": layer["heads"],
                  "head_channels": q.channels // layer["heads"], "shift": layer["shift"]}
        return out, fields

    def _sum_tokens(self, layer, srcs, layers):
        (src,) = srcs
        grow = (src.tokens - 1).bit_length()
        if src.memory == "spikes":
            bits = src.bits + grow
            self.limit("input bits of the sum", bits, "max_input_bits")
        else:
            bits = src.bits + grow
            self.limit("value bits of the sum", bits, "value_bits")
        out = self.place(src.memory, steps=src.steps, channels=src.channels, height=1,
                         width=1, bits=bits)
        return out, {"op": Op.SUM_TOKENS, **self.geometry(src, out)}

    def _readout(self, layer, srcs, layers):
        (src,) = srcs
        if src.memory != "values":
            self.fail("the readout must read values")
        bits = src.bits + (src.steps - 1).bit_length()
        self.limit("score bits", bits, "score_bits")
        out = self.place("scores", steps=1, channels=src.channels * src.tokens, height=1,
                         width=1, bits=bits)
        return out, {"op": Op.READOUT, **self.geometry(src, out)}


def compile_model(model, config=None):
    """Compile ``model`` (a :class:`~spikeforge.golden.modelfile.ModelFile`) for ``config`` (a
    :class:`~spikeforge.contract.configs.Config` or its name; default the ULX3S one).

    Raises :class:`CompileError` when it does not fit or is not spike-driven.
    """
    if config is None or isinstance(config, str):
        try:
            config = get_config(config)
        except ValueError as exc:
            raise UserError(str(exc)) from None
    return _Compiler(model, config).run()
