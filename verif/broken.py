"""Deliberately broken designs, for the tests that show a unit's testbench catches a bug.

Each unit's tests keep one mutated design that its cocotb testbench must fail (README): a
subclass of the unit's component with one behaviour changed, registered for the duration of a
test as a copy of the unit (:func:`broken_variant`) so that
:func:`~spikeforge.verif.runner.simulate` builds and checks it like the real one.
"""

from contextlib import contextmanager
from dataclasses import replace

from .units import UNITS, get_unit

__all__ = ["broken_variant", "ignoring_back_pressure"]


@contextmanager
def broken_variant(base, component, **stimulus):
    """Register ``component`` (``"module:Class"``) as unit ``<base>-broken``: ``base``'s
    testbench, defaults and stimulus (updated by ``stimulus``). Yields the name; the unit is
    removed again on exit."""
    unit = get_unit(base)
    broken = replace(unit, name=f"{base}-broken", summary=f"deliberately broken {base}",
                     component=component, stimulus={**unit.stimulus, **stimulus})
    UNITS[broken.name] = broken
    try:
        yield broken.name
    finally:
        del UNITS[broken.name]


def ignoring_back_pressure(component_class, port):
    """A subclass of ``component_class`` whose input stream ``port`` is always ready: it takes
    beats it has no room for, so beats are lost (the classic handshake bug)."""

    def elaborate(self, platform):
        m = component_class.elaborate(self, platform)
        m.d.comb += getattr(self, port).ready.eq(1)
        return m

    return type(f"{component_class.__name__}IgnoringBackPressure", (component_class,), {
        "elaborate": elaborate,
        "__doc__": f"{component_class.__name__} that ignores back-pressure on ``{port}``.",
    })
