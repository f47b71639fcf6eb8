"""Layer cases for the accelerator's executors: the memories just before and just after one
descriptor runs, from the accelerator's golden model (:mod:`spikeforge.golden.accelerator`) on
a compiled shipped model, so an executor is checked on the very descriptors and data the whole
design sees."""

from dataclasses import dataclass


from spikeforge.compiler import compile_model
from spikeforge.contract.program import Op
from spikeforge.golden.accelerator import Accelerator
from spikeforge.golden.data import load_digits
from spikeforge.golden.modelfile import load_model

__all__ = ["LayerCase", "layer_cases", "shipped_model_path"]

_STATE = ("spikes", "values", "scores")


@dataclass
class LayerCase:
    """Descriptor ``index`` (``desc``: ``{field: int}``) of ``model`` on ``config``:
    ``params`` (``weights``, ``biases``, ``thresholds``: ``(rows, lanes)`` int64), ``before``
    and ``after`` (``spikes`` ``(depth,)``, ``values`` / ``scores`` ``(depth, lanes)``) for one
    sample."""
    model: str
    config: object
    index: int
    name: str
    desc: dict
    params: dict
    before: dict
    after: dict

    @property
    def op(self):
        return Op(self.desc["op"])


def shipped_model_path(name):
    """Path of a shipped model: ``default``, ``sdt-v1`` or ``spikformer``."""
    from importlib import resources
    return resources.files("spikeforge.golden.models") / f"{name}.npz"


def layer_cases(model="default", config=None, *, sample=0, ops=None):
    """Every :class:`LayerCase` of shipped model ``model`` (or a path) compiled for ``config``
    on test image ``sample``; only ``ops`` (a set of :class:`Op`) if given."""
    path = shipped_model_path(model) if model in ("default", "sdt-v1", "spikformer") else model
    compiled = compile_model(load_model(path), config)
    accelerator = Accelerator(compiled.config, compiled.images)
    pixels = load_digits()[1].images[sample:sample + 1]
    snaps = {}

    def trace(index, d, acc):
        snaps[index] = (d, {name: getattr(acc, name)[0].copy() for name in _STATE})

    accelerator.run(pixels, trace=trace)
    params = {name: accelerator.params[name] for name in ("weights", "biases", "thresholds")}
    cases = []
    for index in sorted(snaps)[:-1]:
        d, before = snaps[index]
        if ops is not None and Op(d["op"]) not in ops:
            continue
        cases.append(LayerCase(model=str(model), config=compiled.config, index=index,
                               name=compiled.layers[index - 1]["name"], desc=d,
                               params=params, before=before, after=snaps[index + 1][1]))
    return cases
