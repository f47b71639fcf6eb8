"""The registry of simulatable units: what ``spikeforge verilog``/``sim``/``synth`` can name.

Each unit names its Amaranth component, its default elaboration parameters, the cocotb testbench
module that checks it against its golden function, and the default stimulus of that testbench.
Components and testbenches are imported lazily so the CLI starts fast.
"""

import importlib
from dataclasses import dataclass, field

__all__ = ["Unit", "UNITS", "get_unit", "UnknownUnit", "UnknownParameter"]


class UnknownUnit(LookupError):
    pass


class UnknownParameter(LookupError):
    pass


@dataclass(frozen=True)
class Unit:
    name: str
    summary: str
    component: str                       # "module:Class" under spikeforge.hdl
    testbench: str                       # cocotb test module
    defaults: dict = field(default_factory=dict)
    stimulus: dict = field(default_factory=dict)

    def component_class(self):
        module, cls = self.component.split(":")
        return getattr(importlib.import_module(module), cls)

    def resolve(self, overrides=None):
        """Defaults updated by ``overrides``; an unknown name raises :class:`UnknownParameter`."""
        overrides = dict(overrides or {})
        unknown = sorted(set(overrides) - set(self.defaults))
        if unknown:
            known = ", ".join(sorted(self.defaults)) or "none"
            raise UnknownParameter(
                f"unit {self.name!r} has no parameter {unknown[0]!r} (parameters: {known})")
        return {**self.defaults, **overrides}

    def build(self, overrides=None):
        """Construct the component; bad values raise at construction naming the parameter."""
        return self.component_class()(**self.resolve(overrides))


UNITS = {unit.name: unit for unit in [
    Unit(
        name="packer",
        summary="lane beats of spikes -> packed spike words",
        component="spikeforge.hdl.packer:SpikePacker",
        testbench="spikeforge.verif.tb_packer",
        defaults={"lanes": 8, "channels": 36, "width": 16},
        stimulus={"tokens": 300, "in_idle": 0.3, "out_stall": 0.3, "rate": 0.5},
    ),
]}


def get_unit(name):
    try:
        return UNITS[name]
    except KeyError:
        known = ", ".join(sorted(UNITS))
        raise UnknownUnit(f"unknown unit {name!r} (units: {known})") from None
